package cloud_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"os"
	"path/filepath"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
)

// ciCaller is an S3 bucket adapter signing as a CI runner that holds
// exactly the policy `deploybot iam-policy --role ci` prints for the
// env's site, as the stand-in evaluates it (localaws/identity.go).
func ciCaller(t *testing.T, e *testenv.Env) (*cloud.S3Bucket, *s3.Client) {
	t.Helper()
	doc, err := cloud.Policy(cloud.RoleCI, []releases.Site{e.Site}, "")
	if err != nil {
		t.Fatal(err)
	}
	raw, _ := json.Marshal(doc)
	if err := e.AWS.SetIdentityPolicy("AKIDCIRUNNER", raw); err != nil {
		t.Fatal(err)
	}
	st := e.Settings
	st.Credentials = cloud.StaticCredentials("AKIDCIRUNNER", "secret")
	c, _, err := cloud.NewClients(context.Background(), st)
	if err != nil {
		t.Fatal(err)
	}
	return &cloud.S3Bucket{Client: c, MultipartThreshold: 6 << 20, PartSize: 5 << 20}, c
}

// On a real account, a HEAD (or GET) of a missing key answers 403, not
// 404, to a caller without s3:ListBucket on it, and the CI policy lists
// only under the site's prefix, which no HEAD matches
// (API_HeadObject.html). Publish, run as exactly that caller, still tells
// a new version (published, every file and the manifest, large files in
// parts) from a published one (refused, nothing sent).
func TestPublishAsTheCIRole(t *testing.T) {
	e := testenv.New(t, testenv.Options{})
	ctx := context.Background()
	b, c := ciCaller(t, e)
	// What the caller meets: a missing manifest is a 403.
	_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v1"))})
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != http.StatusForbidden {
		t.Fatalf("HEAD of a missing manifest as CI: %v, want 403", err)
	}

	dir := t.TempDir()
	big := bytes.Repeat([]byte("0123456789abcdef"), (11<<20)/16+3) // two parts and a bit
	for name, body := range map[string][]byte{"index.html": []byte("<h1>v1</h1>"), "assets/app.3f9c1b2a.js": []byte("x()"), "big.bin": big} {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, body, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	pub := &publish.Publisher{Bucket: b}
	res, err := pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Commit: "abc", Dir: dir})
	if err != nil {
		t.Fatalf("a new release, as CI: %v", err)
	}
	if res.Files != 3 || res.Uploaded != 3 {
		t.Fatalf("result %+v", res)
	}
	if _, err := pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: dir}); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("the same version again, as CI: %v, want ECONFLICT", err)
	}
	// A second release copies what did not change from the first.
	if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>v2</h1>"), 0o644); err != nil {
		t.Fatal(err)
	}
	res, err = pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v2", Dir: dir})
	if err != nil {
		t.Fatalf("a second release, as CI: %v", err)
	}
	if res.Uploaded != 1 || res.Copied != 2 {
		t.Fatalf("second release %+v: want the changed file sent and two copied", res)
	}
	for _, v := range []string{"v1", "v2"} {
		m, err := e.Bucket.ReadManifest(ctx, e.Site, v)
		if err != nil || len(m.Files) != 3 {
			t.Fatalf("manifest of %s: %+v %v", v, m, err)
		}
	}
	if st, err := b.StatManifest(ctx, e.Site, "v3"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("stat of a missing manifest as CI: %+v %v, want ENOTFOUND", st, err)
	}
}
