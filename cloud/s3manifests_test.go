package cloud_test

// S3Bucket's manifests: written once, listed, refused ones skipped, a
// conditional conflict retried.

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

func TestManifestWriteOnceAndList(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	if _, err := e.Bucket.ReadManifest(ctx, e.Site, "v1"); !errors.Is(err, releases.ErrNoManifest) || releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("missing manifest: got %v", err)
	}
	m := &releases.Manifest{Version: "v1", Commit: "abc", PublishedAt: time.Now().UTC().Truncate(time.Second),
		Files: []releases.ManifestFile{{Path: "index.html", Size: 3, SHA256: strings.Repeat("0", 64)}}}
	if err := e.Bucket.WriteManifest(ctx, e.Site, m); err != nil {
		t.Fatal(err)
	}
	m2 := *m
	m2.Commit = "other"
	if err := e.Bucket.WriteManifest(ctx, e.Site, &m2); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("second manifest write: want ECONFLICT, got %v", err)
	}
	got, err := e.Bucket.ReadManifest(ctx, e.Site, "v1")
	if err != nil || got.Commit != "abc" || len(got.Files) != 1 {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// More than one page of manifests, plus noise that is not a manifest.
	for i := range 1203 {
		v := fmt.Sprintf("b%04d", i)
		if err := e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	e.put(t, "v1", "index.html", "v1")
	vs, err := e.Bucket.ListVersions(ctx, e.Site)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1204 {
		t.Fatalf("listed %d versions, want 1204", len(vs))
	}
}

// A malformed manifest in the bucket is refused where it is read, and the
// newest-manifests lookup publish uses goes past it.
func TestInvalidManifestIsSkipped(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	for _, v := range []string{"v1", "v3"} {
		if err := e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: v, PublishedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v9")),
		Body: strings.NewReader(`{"version":"v9","files":[{"path":"../v1/index.html"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Bucket.ReadManifest(ctx, e.Site, "v9"); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("reading the bad manifest: %v", err)
	}
	ms, err := e.Bucket.LatestManifests(ctx, e.Site, 2, nil)
	if err != nil || len(ms) != 2 || ms[0].Version != "v3" || ms[1].Version != "v1" {
		t.Fatalf("latest manifests: %v %v", ms, err)
	}
}

// A manifest refused once is not read again (one HEAD per reconcile
// instead of the whole object) until it changes; then it is read, and
// recorded when it is valid.
func TestRefusedManifestIsReadAgainOnlyOnceItChanges(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	e.OpenStore()
	svc := e.Service
	put := func(body string) {
		if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v9")),
			Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put(`{"version":"v9","files":[{"path":"../v1/index.html","size":1}]}`)
	gets := func() int { return e.AWS.Calls()["s3 GetObject"] }
	if _, err := svc.Sync(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	before := gets()
	for range 3 {
		if _, err := svc.Sync(ctx, "www"); err != nil {
			t.Fatal(err)
		}
	}
	if n := gets() - before; n != 0 {
		t.Fatalf("the refused manifest was read %d more times", n)
	}
	put(`{"version":"v9","files":[{"path":"index.html","size":1}]}`)
	added, err := svc.Sync(ctx, "www")
	if err != nil || len(added) != 1 || added[0].Version != "v9" {
		t.Fatalf("after the manifest was fixed: %+v %v", added, err)
	}
}

// S3 answers 409 ConditionalRequestConflict to a conditional write while
// another is uploading to the same key; that asks for a retry and says
// nothing of the other's fate. A manifest write that meets one retries:
// here the other upload is abandoned, and the retry publishes the release
// (taking the 409 for "already published" would publish nothing).
func TestManifestWriteRetriesAConditionalConflict(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPut, e.API+"/"+e.Site.Bucket+"/"+e.Site.ManifestKey("v1"), pr)
	req.ContentLength = 1000
	req.Header.Set("If-None-Match", "*")
	first := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	pw.Write([]byte(`{"version":"v1"`)) // the upload has begun, and stalls
	// Wait until the stand-in holds the key for it: a probe with If-Match
	// (which cannot create the object) then meets the conflict.
	deadline := time.Now().Add(5 * time.Second)
	for {
		probe, _ := http.NewRequest(http.MethodPut, e.API+"/"+e.Site.Bucket+"/"+e.Site.ManifestKey("v1"), strings.NewReader(""))
		probe.Header.Set("If-Match", `"nothing"`)
		resp, err := http.DefaultClient.Do(probe)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusConflict {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first upload never held the key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	calls := e.AWS.Calls()["s3 PutObject"]
	done := make(chan error, 1)
	go func() {
		done <- e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: "v1", PublishedAt: time.Now()})
	}()
	for e.AWS.Calls()["s3 PutObject"] == calls { // the manifest write has met the conflict
		if time.Now().After(deadline) {
			t.Fatal("the manifest write never reached the stand-in")
		}
		time.Sleep(5 * time.Millisecond)
	}
	pw.CloseWithError(errors.New("the other writer gave up"))
	<-first
	if err := <-done; err != nil {
		t.Fatalf("the manifest write after a conflict: %v", err)
	}
	if m, err := e.Bucket.ReadManifest(ctx, e.Site, "v1"); err != nil || m.Version != "v1" {
		t.Fatalf("the release is not published: %v", err)
	}
}
