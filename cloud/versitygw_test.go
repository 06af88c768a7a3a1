package cloud_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
)

// TestS3BucketAgainstVersityGW runs the S3 adapter and the publisher
// against a real S3 server.
func TestS3BucketAgainstVersityGW(t *testing.T) {
	endpoint := testaws.StartVersityGW(t)
	ctx := context.Background()
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: endpoint,
		Credentials: cloud.StaticCredentials(testaws.AccessKey, testaws.SecretKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("site")}); err != nil {
		t.Fatal(err)
	}
	site := releases.Site{Name: "www", Bucket: "site", Prefix: "www/"}
	b := &cloud.S3Bucket{Client: s3c}

	dir := t.TempDir()
	files := map[string]string{
		"index.html":             "<h1>v1</h1>",
		"assets/app.3f9c1b2a.js": "console.log(1)",
		"assets/style.css":       "body{}",
		"deep/a/b/c/page.html":   "deep",
		"name with spaces.txt":   "spaces",
		"unicode-ünïcødé.txt":    "u",
	}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pub := &publish.Publisher{Bucket: b}
	res, err := pub.Publish(ctx, publish.Request{Site: site, Version: "v1", Commit: "abc", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Files != len(files) || res.Uploaded != len(files) {
		t.Fatalf("result %+v", res)
	}
	// A second publish of the same version is refused and sends nothing.
	if _, err := pub.Publish(ctx, publish.Request{Site: site, Version: "v1", Dir: dir}); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("second publish: %v", err)
	}
	// Even a writer that skips that check cannot replace the manifest.
	if err := b.WriteManifest(ctx, site, &releases.Manifest{Version: "v1"}); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("manifest overwrite: %v", err)
	}
	m, err := b.ReadManifest(ctx, site, "v1")
	if err != nil || m.Commit != "abc" || len(m.Files) != len(files) {
		t.Fatalf("manifest %+v %v", m, err)
	}
	for _, f := range m.Files {
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site"), Key: aws.String("www/v1/" + f.Path)})
		if err != nil {
			t.Fatalf("%s: %v", f.Path, err)
		}
		body, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(body) != files[f.Path] || aws.ToString(out.ContentType) != f.ContentType || aws.ToString(out.CacheControl) != f.CacheControl {
			t.Fatalf("%s: %q %q %q, manifest %+v", f.Path, body, aws.ToString(out.ContentType), aws.ToString(out.CacheControl), f)
		}
	}
	checkPutFileSHA256(t, s3c, site)
	// Release files are created only. versitygw (v1.8.0) answers
	// If-None-Match on PutObject and CompleteMultipartUpload as S3 does
	// (412 over an existing key), but ignores it on CopyObject, which
	// then replaces the object: the checks of a copy over an existing
	// key run against the stand-in (TestReleaseFilesAreCreatedOnly), not
	// here.
	same := "<h1>v1</h1>"
	again := releases.File{Path: "index.html", Body: strings.NewReader(same), Size: int64(len(same)), SHA256: sha256hex(same),
		ContentType: "text/html; charset=utf-8", CacheControl: "no-cache"}
	if err := b.PutFile(ctx, site, "v1", again); err != nil {
		t.Fatalf("the same file again: %v", err)
	}
	other := "<h1>v9</h1>"
	again.Body, again.SHA256 = strings.NewReader(other), sha256hex(other)
	if err := b.PutFile(ctx, site, "v1", again); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "s3://site/www/v1/index.html") {
		t.Fatalf("another file over it: %v", err)
	}
	if _, err := b.ReadManifest(ctx, site, "v2"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("missing manifest: %v", err)
	}
	// More manifests than one listing page.
	for i := range 1005 {
		if err := b.WriteManifest(ctx, site, &releases.Manifest{Version: fmt.Sprintf("p%04d", i), PublishedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	vs, err := b.ListVersions(ctx, site)
	if err != nil || len(vs) != 1006 {
		t.Fatalf("listed %d versions, %v", len(vs), err)
	}
}
