package cloud_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

// The newest releases come from the index publish keeps, without a
// listing of the manifests; a bucket from before the index is listed once
// to seed it; a pruned release in the index is skipped; an index that
// cannot give enough falls back to the listing.
func TestLatestManifestsFromTheIndex(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	write := func(v string) {
		t.Helper()
		if err := e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: v, PublishedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
	}
	versions := func(ms []*releases.Manifest) string {
		var vs []string
		for _, m := range ms {
			vs = append(vs, m.Version)
		}
		return strings.Join(vs, ",")
	}
	// A bucket from before the index: manifests without it.
	for i := 1; i <= 3; i++ {
		raw := fmt.Sprintf(`{"version":"v%d","published_at":"2026-01-01T00:00:0%dZ","files":[]}`, i, i)
		if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey(fmt.Sprintf("v%d", i))),
			Body: strings.NewReader(raw)}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond) // distinct LastModified
	}
	if got, err := e.Bucket.LatestManifests(ctx, e.Site, 2, nil); err != nil || versions(got) != "v3,v2" {
		t.Fatalf("without an index: %s %v", versions(got), err)
	}
	write("v4") // seeds the index from a listing
	lists := e.AWS.Calls()["s3 ListObjectsV2"]
	write("v5")
	got, err := e.Bucket.LatestManifests(ctx, e.Site, 3, nil)
	if err != nil || versions(got) != "v5,v4,v3" {
		t.Fatalf("from the index: %s %v", versions(got), err)
	}
	// One listing since: v5's check that it is not published yet, which
	// lists its manifest's key alone (exists.go), not the manifests.
	if n := e.AWS.Calls()["s3 ListObjectsV2"]; n != lists+1 {
		t.Fatalf("%d listings after the index existed, want the one of v5's own key", n-lists)
	}
	// v4 pruned: skipped.
	if _, err := e.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v4"))}); err != nil {
		t.Fatal(err)
	}
	if got, _ := e.Bucket.LatestManifests(ctx, e.Site, 2, nil); versions(got) != "v5,v3" {
		t.Fatalf("with v4 pruned: %s", versions(got))
	}
	// A version published already is refused and does not move up.
	if err := e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: "v3"}); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("publishing v3 again: %v", err)
	}
	if got, _ := e.Bucket.LatestManifests(ctx, e.Site, 1, nil); versions(got) != "v5" {
		t.Fatalf("after a refused republish: %s", versions(got))
	}
	// A damaged index is not used.
	if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.Prefix + ".deploybot/latest.json"),
		Body: strings.NewReader(`{"versions":["../x"]}`)}); err != nil {
		t.Fatal(err)
	}
	if got, err := e.Bucket.LatestManifests(ctx, e.Site, 2, nil); err != nil || versions(got) != "v5,v3" {
		t.Fatalf("with a damaged index: %s %v", versions(got), err)
	}
	// The next publish replaces it, seeded again from the listing.
	write("v6")
	if got, err := e.Bucket.LatestManifests(ctx, e.Site, 3, nil); err != nil || versions(got) != "v6,v5,v3" {
		t.Fatalf("after the damaged index was replaced: %s %v", versions(got), err)
	}
}
