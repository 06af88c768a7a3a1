package cloud_test

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

// A manifest is weighed by a HEAD and read as a stream within what it
// was weighed at: one that grew since is not read (and not refused as
// invalid, so it is weighed again next time); the plain ReadManifest
// waits for room in the bucket's budget.
func TestManifestIsReadWithinItsWeight(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	put := func(body string) {
		if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v1")),
			Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	small := `{"version":"v1","files":[{"path":"index.html","size":3}]}`
	put(small)
	st, err := e.Bucket.StatManifest(ctx, e.Site, "v1")
	if err != nil || st.Size != int64(len(small)) || st.ETag == "" {
		t.Fatalf("stat: %+v %v", st, err)
	}
	if _, err := e.Bucket.StatManifest(ctx, e.Site, "v9"); !errors.Is(err, releases.ErrNoManifest) || releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("stat of a missing manifest: %v", err)
	}
	var paths []string
	m, err := e.Bucket.StreamManifest(ctx, e.Site, "v1", st.Size, func(f releases.ManifestFile, _ bool) error {
		paths = append(paths, f.Path)
		return nil
	})
	if err != nil || m.Version != "v1" || len(m.Files) != 0 || len(paths) != 1 {
		t.Fatalf("stream: %+v %v %v", m, paths, err)
	}
	put(`{"version":"v1","files":[{"path":"index.html","size":3},{"path":"more.html","size":3}]}`)
	_, err = e.Bucket.StreamManifest(ctx, e.Site, "v1", st.Size, func(releases.ManifestFile, bool) error {
		t.Fatal("a file of a manifest larger than its weight was read")
		return nil
	})
	if err == nil || releases.ErrorCode(err) == releases.EINVALID || !strings.Contains(err.Error(), "changed") {
		t.Fatalf("a manifest that grew since its HEAD: %v", err)
	}

	e.Bucket.Budget = releases.NewManifestBudget(10)
	release, err := e.Bucket.Budget.Hold(ctx, 1)
	if err != nil {
		t.Fatal(err)
	}
	read := make(chan error, 1)
	go func() {
		m, err := e.Bucket.ReadManifest(ctx, e.Site, "v1")
		if err == nil && len(m.Files) != 2 {
			err = errors.New("not the manifest written")
		}
		read <- err
	}()
	for e.Bucket.Budget.Waiting() == 0 {
		time.Sleep(time.Millisecond) // a poll: ReadManifest waits for the budget
	}
	release()
	if err := <-read; err != nil {
		t.Fatalf("ReadManifest: %v", err)
	}
}
