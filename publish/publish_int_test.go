package publish_test

import (
	"context"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
)

type env struct {
	*testenv.Env
	pub *publish.Publisher
}

func newEnv(t *testing.T) *env { return newEnvWith(t, localaws.Options{}) }

// newEnvWith is newEnv on a stand-in with opts (its DataDir is set here).
func newEnvWith(t *testing.T, opts localaws.Options) *env {
	e := testenv.New(t, testenv.Options{AWS: opts, Site: releases.Site{Bucket: "pub", DistributionID: "EPUB"}, MaxAttempts: 6})
	return &env{Env: e, pub: &publish.Publisher{Bucket: e.Bucket}}
}

func writeSite(t *testing.T, files map[string]string) string {
	dir := t.TempDir()
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

func (e *env) get(t *testing.T, key string) (string, *s3.GetObjectOutput) {
	t.Helper()
	out, err := e.S3.GetObject(context.Background(), &s3.GetObjectInput{Bucket: aws.String("pub"), Key: aws.String(key)})
	if err != nil {
		t.Fatalf("%s: %v", key, err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	return string(b), out
}

func TestUnchangedFilesAreCopiedNotSent(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	files := map[string]string{}
	for i := 0; i < 200; i++ {
		files[fmt.Sprintf("pages/p%03d.html", i)] = strings.Repeat(fmt.Sprintf("page %d ", i), 50)
	}
	r1, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: writeSite(t, files)})
	if err != nil {
		t.Fatal(err)
	}
	if r1.Uploaded != 200 || r1.Copied != 0 {
		t.Fatalf("first publish %+v", r1)
	}
	files["pages/p007.html"] = "changed"
	files["pages/p150.html"] = "changed too"
	r2, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v2", Dir: writeSite(t, files)})
	if err != nil {
		t.Fatal(err)
	}
	if r2.Uploaded != 2 || r2.Copied != 198 || r2.BytesUploaded != int64(len("changed")+len("changed too")) {
		t.Fatalf("1%% changed: %+v", r2)
	}
	if float64(r2.BytesUploaded) > 0.02*float64(r2.Bytes) {
		t.Fatalf("sent %d of %d bytes", r2.BytesUploaded, r2.Bytes)
	}
	for name, body := range files {
		got, out := e.get(t, "www/v2/"+name)
		if got != body || aws.ToString(out.CacheControl) != "no-cache" || !strings.HasPrefix(aws.ToString(out.ContentType), "text/html") {
			t.Fatalf("%s: %q %q %q", name, got, aws.ToString(out.CacheControl), aws.ToString(out.ContentType))
		}
	}
	if calls := e.AWS.Calls(); calls["s3 CopyObject"] != 198 {
		t.Fatalf("CopyObject calls %d", calls["s3 CopyObject"])
	}
}

func TestCacheRulesAndDryRun(t *testing.T) {
	e := newEnv(t)
	dir := writeSite(t, map[string]string{
		"index.html": "<h1>x</h1>", "app.3f9c1b2a.js": "js", "feed.xml": "<rss/>",
		"assets/big.js.br": "brotli bytes", "docs/guide.html": "g",
	})
	rules := []publish.Rule{
		{Match: "*.br", ContentType: "text/javascript; charset=utf-8", ContentEncoding: "br", CacheControl: "public, max-age=600"},
		{Match: "docs/*.html", CacheControl: "public, s-maxage=60, max-age=0"},
		{Match: "*.html", CacheControl: "public, s-maxage=30"},
	}
	res, err := e.pub.Publish(context.Background(), publish.Request{Site: e.Site, Version: "v1", Dir: dir, Rules: rules, DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	want := map[string][3]string{ // rule, cache-control, content-encoding
		"index.html":       {"*.html", "public, s-maxage=30", ""},
		"docs/guide.html":  {"docs/*.html", "public, s-maxage=60, max-age=0", ""},
		"app.3f9c1b2a.js":  {"default", "public, max-age=31536000, immutable", ""},
		"feed.xml":         {"default", "no-cache", ""},
		"assets/big.js.br": {"*.br", "public, max-age=600", "br"},
	}
	for _, p := range res.Plan {
		w := want[p.Path]
		if p.Rule != w[0] || p.CacheControl != w[1] || p.ContentEncoding != w[2] || p.Action != "upload" {
			t.Errorf("%s: %+v, want rule %q cache %q encoding %q", p.Path, p, w[0], w[1], w[2])
		}
	}
	if calls := e.AWS.Calls(); calls["s3 PutObject"] != 0 {
		t.Fatalf("the dry run uploaded %d files", calls["s3 PutObject"])
	}
	if _, err := e.Bucket.ReadManifest(context.Background(), e.Site, "v1"); err == nil {
		t.Fatal("the dry run wrote a manifest")
	}
	// The real run sets those headers on the objects.
	if _, err := e.pub.Publish(context.Background(), publish.Request{Site: e.Site, Version: "v1", Dir: dir, Rules: rules}); err != nil {
		t.Fatal(err)
	}
	_, out := e.get(t, "www/v1/assets/big.js.br")
	if aws.ToString(out.ContentEncoding) != "br" || aws.ToString(out.CacheControl) != "public, max-age=600" {
		t.Fatalf("headers %q %q", aws.ToString(out.ContentEncoding), aws.ToString(out.CacheControl))
	}
}

func TestSkewProtectionCarriesFingerprintedAssets(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	build := func(v, hash string) string {
		return writeSite(t, map[string]string{
			"index.html":                 `<script src="/assets/app.` + hash + `.js"></script>` + v,
			"assets/app." + hash + ".js": "app " + v,
			"assets/vendor.0000aaaa.js":  "vendor, unchanged",
			"robots.txt":                 "not fingerprinted " + v,
		})
	}
	pub := func(v, hash string, skew int) *publish.Result {
		res, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: v, Dir: build(v, hash), SkewReleases: skew})
		if err != nil {
			t.Fatal(err)
		}
		return res
	}
	pub("v1", "11111111", 2)
	r2 := pub("v2", "22222222", 2)
	if r2.Carried != 1 {
		t.Fatalf("v2 carried %d", r2.Carried)
	}
	pub("v3", "33333333", 2)
	m3, err := e.Bucket.ReadManifest(ctx, e.Site, "v3")
	if err != nil {
		t.Fatal(err)
	}
	carried := map[string]string{}
	for _, c := range m3.Carried {
		carried[c.Path] = c.From
	}
	if len(carried) != 2 || carried["assets/app.22222222.js"] != "v2" || carried["assets/app.11111111.js"] != "v1" {
		t.Fatalf("v3 carried %v", carried)
	}
	// A carried entry is the source release's entry: hash, size, headers.
	m1, err := e.Bucket.ReadManifest(ctx, e.Site, "v1")
	if err != nil {
		t.Fatal(err)
	}
	compared := 0
	for _, src := range m1.Files {
		if src.Path != "assets/app.11111111.js" {
			continue
		}
		for _, c := range m3.Carried {
			if c.Path == src.Path {
				compared++
				src.From = "v1"
				if c != src || c.SHA256 == "" || c.CacheControl == "" {
					t.Fatalf("carried entry %+v, source's %+v", c, src)
				}
			}
		}
	}
	if compared != 1 {
		t.Fatalf("compared %d carried entries with v1's", compared)
	}
	// A page of v1 loaded before the flips still finds its asset in v3, with
	// v1's content; v3's own files are v3's.
	if body, _ := e.get(t, "www/v3/assets/app.11111111.js"); body != "app v1" {
		t.Fatalf("carried asset %q", body)
	}
	if body, _ := e.get(t, "www/v3/index.html"); !strings.Contains(body, "v3") {
		t.Fatalf("own file %q", body)
	}
	for _, f := range m3.Files {
		if _, ok := carried[f.Path]; ok {
			t.Fatalf("%s is both a file and carried", f.Path)
		}
	}
	// Off: nothing carried.
	if r := pub("v4", "44444444", 0); r.Carried != 0 {
		t.Fatalf("skew off carried %d", r.Carried)
	}
}

// A publish that stopped before its manifest (here: the manifest's write
// failed) leaves its files; publishing the same version from the same
// build again finds them already there, the same, and finishes, copied and
// carried files included.
func TestPublishAgainAfterAnUnfinishedOne(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	build := func(v string) string {
		return writeSite(t, map[string]string{
			"index.html": "<h1>" + v + "</h1>", "assets/app." + map[string]string{"v1": "11111111", "v2": "22222222"}[v] + ".js": "app " + v,
			"about.html": "unchanged", "big.txt": strings.Repeat("x", 100<<10),
		})
	}
	if _, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: build("v1"), SkewReleases: 2}); err != nil {
		t.Fatal(err)
	}
	dir := build("v2")
	e.AWS.SetFaults(localaws.Faults{ErrorRate: 1, Only: "s3 PutObject", Path: e.Site.ManifestPrefix()})
	if _, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v2", Dir: dir, SkewReleases: 2}); err == nil {
		t.Fatal("the publish whose manifest could not be written succeeded")
	}
	e.AWS.SetFaults(localaws.Faults{})
	objects, err := e.Bucket.ReleaseObjects(ctx, e.Site, "v2")
	if err != nil || len(objects) != 5 {
		t.Fatalf("the unfinished publish left %v (%v); want its 4 files and the carried asset", objects, err)
	}
	res, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v2", Dir: dir, SkewReleases: 2})
	if err != nil {
		t.Fatalf("publishing the unfinished version again: %v", err)
	}
	if res.Files != 4 || res.Copied != 2 || res.Uploaded != 2 || res.Carried != 1 {
		t.Fatalf("result %+v", res)
	}
	m, err := e.Bucket.ReadManifest(ctx, e.Site, "v2")
	if err != nil || len(m.Files) != 4 || len(m.Carried) != 1 {
		t.Fatalf("manifest %+v, %v", m, err)
	}
	if body, _ := e.get(t, "www/v2/index.html"); body != "<h1>v2</h1>" {
		t.Fatalf("index %q", body)
	}
	if body, _ := e.get(t, "www/v2/assets/app.11111111.js"); body != "app v1" {
		t.Fatalf("carried %q", body)
	}
}

// An object in the version's folder that is not the build's file (a
// leftover of another build under the same name) is never replaced: the
// publish fails naming it, and writes no manifest.
func TestPublishRefusesAnotherObjectInItsFolder(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("pub"), Key: aws.String("www/v1/index.html"), Body: strings.NewReader("<h1>other build</h1>")}); err != nil {
		t.Fatal(err)
	}
	_, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: writeSite(t, map[string]string{"index.html": "<h1>v1</h1>", "a.css": "a{}"})})
	msg := releases.ErrorMessage(err)
	if err == nil || !strings.Contains(msg, "s3://pub/www/v1/index.html") || !strings.Contains(msg, "new version") {
		t.Fatalf("publish over another object: %v; want it named, and a new version asked for", err)
	}
	if body, _ := e.get(t, "www/v1/index.html"); body != "<h1>other build</h1>" {
		t.Fatalf("the object was replaced: %q", body)
	}
	if _, err := e.Bucket.ReadManifest(ctx, e.Site, "v1"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("manifest after the refused publish: %v", err)
	}
}

// A bucket whose policy enforces conditional writes refuses server-side
// copies, even conditional ones (501, conditional-writes-enforce.html's
// note): publish sends those files instead, counts them as uploaded (and
// carried assets as carried), says how many, and the release is whole.
func TestPublishSendsWhatTheBucketWillNotCopy(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	files := map[string]string{"index.html": "v1", "assets/app.11111111.js": "app v1", "about.html": "same", "big.txt": strings.Repeat("y", 100<<10)}
	for i := range 10 {
		files[fmt.Sprintf("p/%d.html", i)] = fmt.Sprint("page ", i)
	}
	if _, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: writeSite(t, files), SkewReleases: 2}); err != nil {
		t.Fatal(err)
	}
	e.AWS.EnforceConditionalWrites("pub", true)
	delete(files, "assets/app.11111111.js")
	files["assets/app.22222222.js"] = "app v2"
	files["index.html"] = "v2"
	before := e.AWS.Calls()
	res, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v2", Dir: writeSite(t, files), SkewReleases: 2, Concurrency: 1})
	if err != nil {
		t.Fatal(err)
	}
	if res.Copied != 0 || res.Uploaded != 14 || res.Carried != 1 || res.CopiesRefused != 13 || res.BytesCopied != 0 || res.BytesUploaded != res.Bytes {
		t.Fatalf("result %+v; want the 12 unchanged files sent, the asset carried, 13 refused copies", res)
	}
	// The first refusal stops the copies: at most one per worker in
	// flight then (here, one worker and the carry beside it).
	if n := e.AWS.Calls()["s3 CopyObject"] - before["s3 CopyObject"]; n == 0 || n > 2 {
		t.Fatalf("%d copies tried", n)
	}
	for path, want := range map[string]string{"index.html": "v2", "about.html": "same", "big.txt": files["big.txt"], "assets/app.11111111.js": "app v1"} {
		if body, out := e.get(t, "www/v2/"+path); body != want || out.Metadata[releases.ReleaseMetadata] != "v2" {
			t.Fatalf("%s: %q, stamped %q", path, body, out.Metadata[releases.ReleaseMetadata])
		}
	}
	if m, err := e.Bucket.ReadManifest(ctx, e.Site, "v2"); err != nil || len(m.Carried) != 1 {
		t.Fatalf("manifest %+v, %v", m, err)
	}
}
