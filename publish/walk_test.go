package publish_test

import (
	"context"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
)

// buildTree is a build directory with what real ones hold: hidden files,
// links inside it (to a file, to a folder, back to itself), and, when
// outside is set, a link to a secret next to it and a dangling one.
func buildTree(t *testing.T, outside bool) (dir, secret string) {
	t.Helper()
	dir = writeSite(t, map[string]string{
		"index.html": "<h1>hi</h1>", "sub/a.css": "a{}", "sub/app.js.map": "{}", "drafts/x.html": "x",
		".git/config": "[core]", ".DS_Store": "x", "sub/.DS_Store": "x", ".env.local": "TOKEN=1", ".well-known/security.txt": "c",
	})
	link := func(target, name string) {
		if err := os.Symlink(target, filepath.Join(dir, name)); err != nil {
			t.Fatal(err)
		}
	}
	link("sub", "inside")
	link("index.html", "home.html")
	link(".", "sub/loop")
	if outside {
		secret = filepath.Join(t.TempDir(), "credentials")
		if err := os.WriteFile(secret, []byte("hook-secret"), 0o600); err != nil {
			t.Fatal(err)
		}
		link(secret, "sub/creds.txt")
		link(filepath.Join(dir, "nowhere"), "dangling")
	}
	return dir, secret
}

func (e *env) keys(t *testing.T, version string) []string {
	t.Helper()
	out, err := e.S3.ListObjectsV2(context.Background(), &s3.ListObjectsV2Input{Bucket: aws.String("pub"), Prefix: aws.String(e.Site.ReleasePath(version))})
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, strings.TrimPrefix(aws.ToString(o.Key), e.Site.ReleasePath(version)))
	}
	return keys
}

// Publish reads the build directory and nothing else: a link that leaves
// it, or leads nowhere, refuses the publish before anything is sent (exit
// 2), naming the links; links inside it are followed, loops noted; the
// default excludes and the caller's patterns leave paths out, each with
// its reason.
func TestPublishReadsOnlyTheBuildDirectory(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	dir, secret := buildTree(t, true)
	_, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: dir})
	if releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), "sub/creds.txt -> "+secret) ||
		!strings.Contains(err.Error(), "dangling (leads nowhere)") || !strings.Contains(err.Error(), "nothing was uploaded") {
		t.Fatalf("a link to a file outside the directory: %v", err)
	}
	if keys := e.keys(t, "v1"); len(keys) != 0 {
		t.Fatalf("a refused publish uploaded %v", keys)
	}
	// Following outside links is a choice; a dangling link is still refused.
	if _, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: dir, Inputs: publish.Inputs{FollowExternalLinks: true}}); err == nil ||
		!strings.Contains(err.Error(), "dangling (leads nowhere)") || strings.Contains(err.Error(), "creds") {
		t.Fatalf("--follow-external-links with a dangling link: %v", err)
	}

	dir, _ = buildTree(t, false)
	res, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: dir, Inputs: publish.Inputs{Exclude: []string{"*.map", "drafts/"}}})
	if err != nil {
		t.Fatal(err)
	}
	got := e.keys(t, "v1")
	want := []string{".well-known/security.txt", "home.html", "index.html", "inside/a.css", "sub/a.css"}
	if !slices.Equal(got, want) {
		t.Fatalf("published %v, want %v", got, want)
	}
	reasons := map[string]string{}
	for _, x := range res.Excluded {
		reasons[x.Path] = x.Reason
	}
	for p, want := range map[string]string{
		".git": "excluded by default (.git/", ".DS_Store": "excluded by default (.DS_Store", "sub/.DS_Store": "--include-hidden",
		".env.local": "excluded by default (.env*", "sub/app.js.map": "excluded by *.map", "drafts": "excluded by drafts/",
		"sub/loop": "a loop", "inside/loop": "a loop", "inside/app.js.map": "excluded by *.map",
	} {
		if !strings.Contains(reasons[p], want) {
			t.Errorf("%s left out for %q, want %q (all: %v)", p, reasons[p], want, reasons)
		}
	}
	// --include-hidden publishes the hidden files, never the loop.
	res, err = e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v2", Dir: dir, Inputs: publish.Inputs{IncludeHidden: true}})
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Excluded) != 2 || !strings.Contains(res.Excluded[0].Reason, "loop") || !strings.Contains(res.Excluded[1].Reason, "loop") {
		t.Fatalf("with --include-hidden only the loops are left out: %+v", res.Excluded)
	}
	if got := e.keys(t, "v2"); !slices.Contains(got, ".git/config") || !slices.Contains(got, ".env.local") || !slices.Contains(got, "sub/app.js.map") {
		t.Fatalf("--include-hidden published %v", got)
	}
	if _, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v3", Dir: dir, Inputs: publish.Inputs{Exclude: []string{"[x"}}}); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("a bad pattern: %v", err)
	}
}

// Unchanged files are copied server-side whatever their names: S3 decodes
// the copy source as a form value ("+" is a space), so names with +, %,
// spaces or non-ASCII letters must reach it escaped.
func TestCopiesOfFilesWithAwkwardNames(t *testing.T) {
	e := newEnv(t)
	ctx := context.Background()
	files := map[string]string{"a+b.js": "plus", "c d.css": "space", "e%41.txt": "percent", "ü/ñ.html": "utf-8", "x&y=z;q.txt": "punct"}
	dir := writeSite(t, files)
	if _, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v1", Dir: dir}); err != nil {
		t.Fatal(err)
	}
	res, err := e.pub.Publish(ctx, publish.Request{Site: e.Site, Version: "v2", Dir: dir})
	if err != nil {
		t.Fatal(err)
	}
	if res.Copied != len(files) || res.Uploaded != 0 {
		t.Fatalf("second publish of the same files: %d copied, %d uploaded, want all %d copied", res.Copied, res.Uploaded, len(files))
	}
	for name, body := range files {
		if got, _ := e.get(t, e.Site.ReleasePath("v2")+name); got != body {
			t.Fatalf("%s in v2: %q, want %q", name, got, body)
		}
	}
}

// S3 copies at most 5 GB in one CopyObject (the stand-in's limit is
// lowered here to 1 KiB, the publisher's with it): an unchanged file
// larger than that is sent again rather than failing the publish.
func TestUnchangedFilesTooLargeToCopyAreSentAgain(t *testing.T) {
	e := newEnvWith(t, localaws.Options{MaxCopySize: 1024})
	s3c, site := e.S3, e.Site
	ctx := context.Background()
	big := strings.Repeat("x", 2048)
	dir := writeSite(t, map[string]string{"small.txt": "small", "big.bin": big})
	if _, err := s3c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("pub"), Key: aws.String("probe"), CopySource: aws.String("pub/nothing")}); err == nil {
		t.Fatal("a copy of a missing object succeeded")
	}
	pub := &publish.Publisher{Bucket: e.Bucket, MaxCopySize: 1024}
	if _, err := pub.Publish(ctx, publish.Request{Site: site, Version: "v1", Dir: dir}); err != nil {
		t.Fatal(err)
	}
	res, err := pub.Publish(ctx, publish.Request{Site: site, Version: "v2", Dir: dir})
	if err != nil {
		t.Fatalf("republishing a file over the copy limit: %v", err)
	}
	if res.Copied != 1 || res.Uploaded != 1 || res.BytesUploaded != int64(len(big)) {
		t.Fatalf("%d copied, %d uploaded (%d bytes), want the small one copied and the big one sent", res.Copied, res.Uploaded, res.BytesUploaded)
	}
	// The stand-in refuses what S3 refuses.
	_, err = s3c.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("pub"), Key: aws.String("copy"), CopySource: aws.String("pub/www/v1/big.bin")})
	if err == nil || !strings.Contains(err.Error(), "larger than the maximum allowable size for a copy source") {
		t.Fatalf("CopyObject over the limit: %v", err)
	}
}
