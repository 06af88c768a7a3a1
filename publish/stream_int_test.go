package publish_test

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/publish"
)

// Publish takes the newest releases' files as their manifests are read,
// before it knows a manifest is valid (its version comes last). The newest
// manifest here lists well-formed files and then names another version:
// nothing it listed may be copied or carried (the objects are not there);
// the release before it is the one copied from.
func TestAManifestThatProvesInvalidLendsNoFiles(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	req := func(v string, files map[string]string) publish.Request {
		return publish.Request{Site: e.Site, Version: v, Dir: writeSite(t, files), SkewReleases: 2}
	}
	if _, err := e.pub.Publish(ctx, req("v1", map[string]string{"index.html": "home", "assets/app.0123abcd.css": "css one"})); err != nil {
		t.Fatal(err)
	}
	sum := func(s string) string { h := sha256.Sum256([]byte(s)); return hex.EncodeToString(h[:]) }
	bogus := fmt.Sprintf(`{"files":[{"path":"index.html","size":4,"sha256":%q},{"path":"assets/evil.11111111.css","size":4,"sha256":%q}],"version":"v9","published_at":"2026-01-01T00:00:00Z"}`,
		sum("home"), sum("evil"))
	for key, body := range map[string]string{
		e.Site.ManifestKey("v2"):                 bogus,
		e.Site.Prefix + ".deploybot/latest.json": `{"versions":["v2","v1"]}`,
	} {
		if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	r, err := e.pub.Publish(ctx, req("v3", map[string]string{"index.html": "home", "assets/app.22222222.css": "css two"}))
	if err != nil {
		t.Fatalf("publish after a manifest that proves invalid: %v", err)
	}
	if r.Copied != 1 || r.Uploaded != 1 || r.Carried != 1 {
		t.Fatalf("want index.html copied from v1, the new asset sent, v1's asset carried: %+v", r)
	}
	m, err := e.Bucket.ReadManifest(ctx, e.Site, "v3")
	if err != nil {
		t.Fatal(err)
	}
	if len(m.Carried) != 1 || m.Carried[0].Path != "assets/app.0123abcd.css" || m.Carried[0].From != "v1" {
		t.Fatalf("carried: %+v", m.Carried)
	}
	if got, _ := e.get(t, "www/v3/index.html"); got != "home" {
		t.Fatalf("index.html of v3: %q", got)
	}
	if calls := e.AWS.Calls(); calls["s3 CopyObject"] != 2 {
		t.Fatalf("CopyObject calls %d, want 2 (index.html, the carried asset)", calls["s3 CopyObject"])
	}
}
