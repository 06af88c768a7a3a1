package releases_test

import (
	"context"
	"crypto/md5"
	"encoding/json"
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// fakeBucket holds manifests in memory.
type fakeBucket struct {
	mu         sync.Mutex
	manifests  map[string]*releases.Manifest
	gone       map[string]bool            // folders deleted (manifest may remain)
	extra      map[string]releases.Folder // folders without a manifest
	damaged    map[string]bool            // version/path of files missing from a folder
	copies     []string                   // "from/path -> to" of every CopyFile
	unreadable map[string]bool            // versions whose manifest cannot be parsed
	history    map[string][]byte          // mirrored history by key
}

func (b *fakeBucket) PutHistory(_ context.Context, _ releases.Site, key string, body []byte, replace bool) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.history == nil {
		b.history = map[string][]byte{}
	}
	if _, ok := b.history[key]; ok && !replace {
		return nil
	}
	b.history[key] = append([]byte(nil), body...)
	return nil
}

func (b *fakeBucket) ListHistory(_ context.Context, _ releases.Site, dir, after string) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for k := range b.history {
		if strings.HasPrefix(k, dir) && k > after {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out, nil
}

func (b *fakeBucket) GetHistory(_ context.Context, _ releases.Site, key string) ([]byte, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	raw, ok := b.history[key]
	if !ok {
		return nil, fmt.Errorf("%s: %w", key, releases.ErrNoHistory)
	}
	return raw, nil
}

func (b *fakeBucket) ManifestETag(_ context.Context, _ releases.Site, v string) (string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.manifests[v]; !ok {
		return "", releases.Errorf(releases.ENOTFOUND, "no manifest for %s: %w", v, releases.ErrNoManifest)
	}
	return fakeETag(b.manifests[v]), nil
}

// fakeETag is a manifest's ETag as S3 gives it: the MD5 of the object's
// bytes, in quotes, so a manifest written again under the same name has
// another one.
func fakeETag(m *releases.Manifest) string {
	raw, _ := json.Marshal(m)
	return fmt.Sprintf("%q", fmt.Sprintf("%x", md5.Sum(raw)))
}

func (b *fakeBucket) ReadManifest(_ context.Context, site releases.Site, v string) (*releases.Manifest, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	m, ok := b.manifests[v]
	if !ok {
		return nil, releases.Errorf(releases.ENOTFOUND, "no manifest for %s: %w", v, releases.ErrNoManifest)
	}
	if b.unreadable[v] {
		return nil, releases.Errorf(releases.EINVALID, "manifest of %s is not valid JSON", v)
	}
	c := *m
	c.ETag = fakeETag(m)
	return &c, nil
}

func (b *fakeBucket) ListVersions(context.Context, releases.Site) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for v := range b.manifests {
		out = append(out, v)
	}
	return out, nil
}

func (b *fakeBucket) WriteManifest(_ context.Context, _ releases.Site, m *releases.Manifest) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.manifests[m.Version]; ok {
		return releases.Errorf(releases.ECONFLICT, "exists")
	}
	b.manifests[m.Version] = m
	return nil
}

func (b *fakeBucket) WriteManifestJSON(ctx context.Context, site releases.Site, v string, body io.ReadSeeker, _ int64) error {
	m, err := releases.DecodeManifest(body, v)
	if err != nil {
		return err
	}
	return b.WriteManifest(ctx, site, m)
}

func (b *fakeBucket) PutFile(context.Context, releases.Site, string, releases.File) error { return nil }

func (b *fakeBucket) CopyFile(_ context.Context, _ releases.Site, from, fromPath, to string, f releases.File) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	if fromPath != f.Path {
		return fmt.Errorf("copy of %s to another path %s", fromPath, f.Path)
	}
	b.copies = append(b.copies, from+"/"+fromPath+" -> "+to)
	return nil
}

func (b *fakeBucket) ReleaseObjects(_ context.Context, _ releases.Site, v string) (map[string]int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	out := map[string]int64{}
	if m, ok := b.manifests[v]; ok && !b.gone[v] {
		for _, f := range append(slices.Clone(m.Files), m.Carried...) {
			if !b.damaged[v+"/"+f.Path] {
				out[f.Path] = f.Size
			}
		}
	}
	return out, nil
}

func (b *fakeBucket) LatestManifests(context.Context, releases.Site, int, *releases.ManifestFiles) ([]*releases.Manifest, error) {
	return nil, nil
}

// Folders: every manifest has a one-object folder, plus the extra ones.
func (b *fakeBucket) ListFolders(context.Context, releases.Site) ([]string, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	var out []string
	for v := range b.manifests {
		if !b.gone[v] {
			out = append(out, v)
		}
	}
	for v := range b.extra {
		out = append(out, v)
	}
	return out, nil
}

func (b *fakeBucket) FolderStats(_ context.Context, _ releases.Site, v string) (releases.Folder, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if f, ok := b.extra[v]; ok {
		return f, nil
	}
	if m, ok := b.manifests[v]; ok && !b.gone[v] {
		n, size := folderOf(m)
		return releases.Folder{Version: v, Objects: n, Bytes: size, Newest: m.PublishedAt}, nil
	}
	return releases.Folder{Version: v}, nil
}

// folderOf is what a release's folder holds: the files its publish
// uploaded and those it carried from an earlier release (copied in).
func folderOf(m *releases.Manifest) (objects int, bytes int64) {
	for _, f := range append(slices.Clone(m.Files), m.Carried...) {
		objects++
		bytes += f.Size
	}
	return objects, bytes
}

func (b *fakeBucket) DeleteFolder(_ context.Context, _ releases.Site, v string) (int, int64, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	if _, ok := b.extra[v]; ok {
		delete(b.extra, v)
		return 1, 10, nil
	}
	if b.gone == nil {
		b.gone = map[string]bool{}
	}
	if m, ok := b.manifests[v]; ok && !b.gone[v] {
		b.gone[v] = true
		n, size := folderOf(m)
		return n, size, nil
	}
	b.gone[v] = true
	return 0, 0, nil
}

func (b *fakeBucket) DeleteManifest(_ context.Context, _ releases.Site, v string) error {
	b.mu.Lock()
	defer b.mu.Unlock()
	delete(b.manifests, v)
	return nil
}

// fakeCDN is a strategy whose steps can be made to fail or block.
type fakeCDN struct {
	mu     sync.Mutex
	path   string
	failAt releases.Phase
	// failErr, when set, is the error of the step failAt (else a plain
	// one): a coded error, as AWS's refusals become.
	failErr error
	block   chan struct{} // when set, the second step waits on it
	blocked chan struct{}
	flips   int
	// propagation makes the wait step a fixed propagation wait.
	propagation time.Duration
}

func (c *fakeCDN) Strategy() string { return "fake" }

func (c *fakeCDN) Current(_ context.Context, site releases.Site) (releases.Current, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, _ := site.VersionFromOriginPath(c.path)
	return releases.Current{Version: v, Path: c.path}, nil
}

func (c *fakeCDN) Plan(site releases.Site, cur releases.Current, to, id string) []releases.Step {
	step := func(p releases.Phase, fn func() error) releases.Step {
		return releases.Step{Phase: p, Title: string(p), Flips: p == "flip", Run: func(ctx context.Context) error {
			if c.failAt == p {
				if c.failErr != nil {
					return c.failErr
				}
				return fmt.Errorf("injected failure in %s", p)
			}
			return fn()
		}}
	}
	return []releases.Step{
		step("flip", func() error {
			c.mu.Lock()
			defer c.mu.Unlock()
			c.path = site.OriginPath(to)
			c.flips++
			return nil
		}),
		{Phase: "wait", Title: "wait", Propagation: c.propagation, Run: func(ctx context.Context) error {
			if c.failAt == "wait" {
				if c.failErr != nil {
					return c.failErr
				}
				return fmt.Errorf("injected failure in wait")
			}
			if c.block != nil {
				close(c.blocked)
				select {
				case <-c.block:
				case <-ctx.Done():
					return ctx.Err()
				}
			}
			return nil
		}},
	}
}

func (c *fakeCDN) Resume(ctx context.Context, site releases.Site, d releases.Deploy) ([]releases.Step, bool, error) {
	cur, _ := c.Current(ctx, site)
	flipped := cur.Version == d.To
	steps := c.Plan(site, cur, d.To, d.ID)
	if !flipped {
		return nil, false, releases.Errorf(releases.ECONFLICT, "not flipped; nothing changed")
	}
	return steps[1:], true, nil
}

type harness struct {
	clockMu sync.Mutex
	svc     *releases.Service
	db      *store.DB
	bucket  *fakeBucket
	cdn     *fakeCDN
	now     time.Time
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	h := &harness{db: db, bucket: &fakeBucket{manifests: map[string]*releases.Manifest{}}, cdn: &fakeCDN{},
		now: testclock.At(10, 0)}
	n := 0
	h.svc = &releases.Service{
		Store: db, Bucket: h.bucket, CDNs: map[string]releases.CDN{"fake": h.cdn},
		Sites: []releases.Site{{Name: "www", Bucket: "b", Prefix: "www/", DistributionID: "E1", Strategy: "fake"}},
		// The service may read its clock from several goroutines (Sync
		// records manifests concurrently); tests move h.now only between
		// operations.
		Now: func() time.Time {
			h.clockMu.Lock()
			defer h.clockMu.Unlock()
			h.now = h.now.Add(time.Second)
			return h.now
		},
		NewID: func() string {
			h.clockMu.Lock()
			defer h.clockMu.Unlock()
			n++
			return fmt.Sprintf("d%03d", n)
		},
	}
	return h
}

// promoteHeld starts promoting version as actor, and returns once the
// deploy has flipped and is held in its wait step; closing h.cdn.block lets
// it finish, and the channel gives its error.
func (h *harness) promoteHeld(version, actor string) <-chan error {
	h.cdn.block, h.cdn.blocked = make(chan struct{}), make(chan struct{})
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: version, Actor: actor}, nil)
		done <- err
	}()
	<-h.cdn.blocked
	return done
}

func (h *harness) publish(versions ...string) {
	for i, v := range versions {
		h.bucket.manifests[v] = &releases.Manifest{Version: v, PublishedAt: h.now.Add(time.Duration(i) * time.Minute),
			Files: []releases.ManifestFile{{Path: "index.html", Size: 10}}}
	}
}

func (h *harness) promote(t *testing.T, v string) *releases.Outcome {
	t.Helper()
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: v, Actor: "alice"}, nil)
	if err != nil {
		t.Fatalf("promote %s: %v", v, err)
	}
	return out
}
