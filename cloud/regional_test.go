package cloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// A site whose bucket is in another region than aws.region works through
// every kind of call the doors make: uploads (direct, through the SDK,
// in parts), the manifest, listing, copies, the shared state's
// conditional writes, the history mirror and deletes. The stand-in
// refuses a call signed for another region as S3 does (301 with
// x-amz-bucket-region), so without the per-bucket region nothing here
// works (checked first).
func TestABucketInAnotherRegion(t *testing.T) {
	// eu-west-1 answers 301 naming the region; af-south-1, an opt-in
	// region, answers 400 without naming it, and HeadBucket tells.
	for _, region := range []string{"eu-west-1", "af-south-1"} {
		t.Run(region, func(t *testing.T) { bucketInRegion(t, region) })
	}
}

func bucketInRegion(t *testing.T, region string) {
	a := newAccount(t)
	ctx := context.Background()
	if err := a.srv.EnsureBucketIn("far-site", region); err != nil {
		t.Fatal(err)
	}
	site := releases.Site{Name: "www", Bucket: "far-site", Prefix: "www/"}
	file := func(path, body string) releases.File {
		sum := sha256.Sum256([]byte(body))
		return releases.File{Path: path, Body: strings.NewReader(body), Size: int64(len(body)), ContentType: "text/html", SHA256: hex.EncodeToString(sum[:])}
	}

	plain := &cloud.S3Bucket{Client: a.s3}
	if err := plain.PutFile(ctx, site, "v0", file("index.html", "x")); err == nil {
		t.Fatalf("the stand-in took a call signed for us-east-1 to a bucket in %s; this test would prove nothing", region)
	}

	b := cloud.NewS3Bucket(a.s3, nil)
	b.MultipartThreshold, b.PartSize = 6<<20, 5<<20
	if err := b.PutFile(ctx, site, "v1", file("index.html", "<title>v1</title>")); err != nil {
		t.Fatalf("first upload: %v", err)
	}
	big := strings.Repeat("a", 7<<20)
	for i, f := range []releases.File{file("a.html", "a"), file("b.html", "b"), file("big.bin", big)} {
		if err := b.PutFile(ctx, site, "v1", f); err != nil {
			t.Fatalf("upload %d: %v", i, err)
		}
	}
	if st := b.Uploads.(*cloud.DirectPut).Stats(); st.Direct.Load() < 2 {
		t.Fatalf("uploads after the bucket's region was learnt did not go directly: %d direct, %d through the SDK, %d fallbacks",
			st.Direct.Load(), st.SDK.Load(), st.Fallbacks.Load())
	}
	m := &releases.Manifest{Version: "v1", PublishedAt: time.Unix(1, 0).UTC(), Files: []releases.ManifestFile{
		{Path: "index.html", Size: 17}, {Path: "a.html", Size: 1}, {Path: "b.html", Size: 1}, {Path: "big.bin", Size: int64(len(big))}}}
	if err := b.WriteManifest(ctx, site, m); err != nil {
		t.Fatal(err)
	}
	if vs, err := b.ListVersions(ctx, site); err != nil || len(vs) != 1 || vs[0] != "v1" {
		t.Fatalf("versions %v, %v", vs, err)
	}
	if got, err := b.ReadManifest(ctx, site, "v1"); err != nil || len(got.Files) != 4 {
		t.Fatalf("manifest %+v, %v", got, err)
	}
	if err := b.CopyFile(ctx, site, "v1", "a.html", "v2", releases.File{Path: "a.html", Size: 1, ContentType: "text/html"}); err != nil {
		t.Fatalf("copy: %v", err)
	}
	rc, err := b.OpenFile(ctx, site, "v1", "big.bin")
	if err != nil {
		t.Fatal(err)
	}
	var got bytes.Buffer
	_, _ = got.ReadFrom(rc)
	rc.Close()
	if got.Len() != len(big) {
		t.Fatalf("read back %d bytes of %d", got.Len(), len(big))
	}

	etag, err := b.PutState(ctx, site, "lock.json", []byte(`{"holder":"a"}`), "")
	if err != nil {
		t.Fatalf("state create: %v", err)
	}
	if _, err := b.PutState(ctx, site, "lock.json", []byte(`{"holder":"b"}`), ""); !errors.Is(err, releases.ErrStateChanged) {
		t.Fatalf("a second create of the state object: %v, want a conflict", err)
	}
	if _, err := b.PutState(ctx, site, "lock.json", []byte(`{"holder":"a2"}`), etag); err != nil {
		t.Fatalf("state swap: %v", err)
	}
	if err := b.PutHistory(ctx, site, "deploys/d1.json", []byte(`{}`), false); err != nil {
		t.Fatalf("history: %v", err)
	}
	if n, _, err := b.DeleteFolder(ctx, site, "v2"); err != nil || n != 1 {
		t.Fatalf("delete v2: %d objects, %v", n, err)
	}
}
