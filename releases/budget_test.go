package releases_test

import (
	"context"
	"errors"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// meteredBucket is a fakeBucket whose manifests have sizes (as a HEAD
// tells them) and that counts the manifest bytes being read at once.
// A read that starts waits, before it ends, until another read joins it,
// or another waits for room in the budget, or it is the last read to
// start: so reads that may overlap do, whatever the scheduler does, and
// peak is what the code under test lets in at once, not luck.
type meteredBucket struct {
	*fakeBucket
	budget *releases.ManifestBudget
	size   func(version string) int64
	reads  int // how many reads the test makes

	mu                sync.Mutex
	started, inFlight int
	bytes, peak       int64
	// When hold is set, the next read of holdOn closes holding and
	// waits for hold to close.
	holdOn        string
	hold, holding chan struct{}
	streamed      int
	readWhole     int
}

func (b *meteredBucket) StatManifest(ctx context.Context, site releases.Site, v string) (releases.ManifestStat, error) {
	etag, err := b.fakeBucket.ManifestETag(ctx, site, v)
	return releases.ManifestStat{Size: b.size(v), ETag: etag}, err
}

func (b *meteredBucket) StreamManifest(ctx context.Context, site releases.Site, v string, max int64, visit func(releases.ManifestFile, bool) error) (*releases.Manifest, error) {
	if max != b.size(v) {
		return nil, fmt.Errorf("%s read as %d bytes, it has %d", v, max, b.size(v))
	}
	defer b.enter(v)()
	m, err := b.fakeBucket.ReadManifest(ctx, site, v)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if err := visit(f, false); err != nil {
			return nil, err
		}
	}
	for _, f := range m.Carried {
		if err := visit(f, true); err != nil {
			return nil, err
		}
	}
	m.Files, m.Carried = nil, nil
	b.mu.Lock()
	b.streamed++
	b.mu.Unlock()
	return m, nil
}

// ReadManifest is metered too: code that reads whole manifests outside
// the budget shows in peak as well.
func (b *meteredBucket) ReadManifest(ctx context.Context, site releases.Site, v string) (*releases.Manifest, error) {
	defer b.enter(v)()
	b.mu.Lock()
	b.readWhole++
	b.mu.Unlock()
	return b.fakeBucket.ReadManifest(ctx, site, v)
}

// enter counts a read of v in flight and returns what ends it.
func (b *meteredBucket) enter(v string) (leave func()) {
	n := b.size(v)
	b.mu.Lock()
	b.started++
	b.inFlight++
	b.bytes += n
	b.peak = max(b.peak, b.bytes)
	var hold, holding chan struct{}
	if v == b.holdOn {
		hold, holding = b.hold, b.holding
		b.hold = nil
	}
	b.mu.Unlock()
	if hold != nil {
		close(holding)
		<-hold
	}
	for {
		b.mu.Lock()
		done := b.inFlight > 1 || b.started >= b.reads
		b.mu.Unlock()
		if done || b.budget.Waiting() > 0 {
			break
		}
		time.Sleep(100 * time.Microsecond) // a poll, not a deadline
	}
	return func() {
		b.mu.Lock()
		b.inFlight--
		b.bytes -= n
		b.mu.Unlock()
	}
}

func newMetered(t *testing.T, budget int64, reads int, size func(string) int64) (*harness, *meteredBucket) {
	t.Helper()
	h := newHarness(t)
	mb := &meteredBucket{fakeBucket: h.bucket, budget: releases.NewManifestBudget(budget), size: size, reads: reads}
	h.svc.Bucket = mb
	h.svc.ManifestBudget = mb.budget
	return h, mb
}

// Sync reads the manifests it does not know within the byte budget, by
// their size: twenty manifests of 46 MB are never read more than one at
// a time under a 64 MiB budget (sixteen at once took serve to 1.88 GB),
// while small ones still overlap. What it records is counted as the files
// stream by.
func TestSyncHoldsNoMoreManifestBytesThanTheBudget(t *testing.T) {
	const budget = 64 << 20
	for _, c := range []struct {
		name     string
		size     int64
		wantPeak int64
	}{
		{"large", 46_000_000, 46_000_000},
		{"small", 1_000_000, 0}, // 0: anything within the budget
	} {
		t.Run(c.name, func(t *testing.T) {
			const n = 20
			h, mb := newMetered(t, budget, n, func(string) int64 { return c.size })
			var vs []string
			for i := range n {
				vs = append(vs, fmt.Sprintf("v%02d", i))
			}
			h.publish(vs...)
			h.bucket.manifests["v07"].Files = append(h.bucket.manifests["v07"].Files, releases.ManifestFile{Path: "app.js", Size: 5})
			added, err := h.svc.Sync(context.Background(), "www")
			if err != nil || len(added) != n {
				t.Fatalf("sync: %d added, %v", len(added), err)
			}
			for _, r := range added {
				files, bytes := 1, int64(10)
				if r.Version == "v07" {
					files, bytes = 2, 15
				}
				if r.Files != files || r.Bytes != bytes {
					t.Fatalf("%s recorded with %d files, %d bytes; want %d, %d", r.Version, r.Files, r.Bytes, files, bytes)
				}
			}
			if mb.peak > budget || c.wantPeak != 0 && mb.peak != c.wantPeak {
				t.Fatalf("%d manifest bytes read at once, budget %d", mb.peak, budget)
			}
			if mb.readWhole != 0 || mb.streamed != n {
				t.Fatalf("%d manifests read whole, %d streamed; want every one streamed", mb.readWhole, mb.streamed)
			}
		})
	}
}

// One diff of a site runs at a time: another asked meanwhile is refused,
// saying why, and once the first is done the next runs.
func TestDiffsOfOneSiteDoNotRunAtOnce(t *testing.T) {
	h, mb := newMetered(t, 64<<20, 0, func(string) int64 { return 1000 })
	h.publish("v1", "v2")
	mb.holdOn, mb.hold, mb.holding = "v1", make(chan struct{}), make(chan struct{})
	hold, holding := mb.hold, mb.holding
	first := make(chan error, 1)
	go func() {
		_, err := h.svc.Diff(context.Background(), "www", "v1", "v2")
		first <- err
	}()
	<-holding // the first diff is reading
	_, err := h.svc.Diff(context.Background(), "www", "v2", "v1")
	if releases.ErrorCode(err) != releases.ECONFLICT || releases.ErrorMessage(err) != "a diff of site www is running; try again in a moment" {
		t.Fatalf("second diff meanwhile: %v", err)
	}
	close(hold)
	if err := <-first; err != nil {
		t.Fatal(err)
	}
	if d, err := h.svc.Diff(context.Background(), "www", "v1", "v2"); err != nil || !d.Empty() {
		t.Fatalf("diff after the first: %+v %v", d, err)
	}
	if mb.readWhole != 0 {
		t.Fatalf("a diff read %d manifests whole", mb.readWhole)
	}
}

// A diff holds the budget for both manifests until it is made: while it
// reads the second, the first one's index is still held, so a read that
// would fit beside the second alone waits.
func TestDiffHoldsTheBudgetForBothManifests(t *testing.T) {
	sizes := map[string]int64{"v1": 60, "v2": 30, "v3": 50}
	h, mb := newMetered(t, 100, 0, func(v string) int64 { return sizes[v] })
	h.publish("v1", "v2", "v3")
	mb.holdOn, mb.hold, mb.holding = "v2", make(chan struct{}), make(chan struct{})
	hold, holding := mb.hold, mb.holding
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Diff(context.Background(), "www", "v1", "v2")
		done <- err
	}()
	<-holding // the diff reads v2, holding 60 + 30
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if _, err := h.svc.Verify(ctx, "www", "v3"); !errors.Is(err, context.Canceled) {
		t.Fatalf("a verify of 50 bytes while the diff holds 90 of 100: %v, want it to wait (here: until its context ends)", err)
	}
	close(hold)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if rep, err := h.svc.Verify(context.Background(), "www", "v3"); err != nil || !rep.OK() || rep.Files != 1 {
		t.Fatalf("verify after the diff: %+v %v", rep, err)
	}
}

func TestManifestBudgetHold(t *testing.T) {
	b := releases.NewManifestBudget(10)
	ctx := context.Background()
	big, err := b.Hold(ctx, 1<<30) // larger than the budget: all of it
	if err != nil {
		t.Fatal(err)
	}
	cancelled, cancel := context.WithCancel(ctx)
	cancel()
	if _, err := b.Hold(cancelled, 1); !errors.Is(err, context.Canceled) {
		t.Fatalf("hold on a full budget: %v", err)
	}
	big()
	big() // twice gives back once
	a, err := b.Hold(ctx, 6)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := b.Hold(cancelled, 5); err == nil {
		t.Fatal("6 + 5 bytes held in a budget of 10")
	}
	c, err := b.Hold(ctx, 4)
	if err != nil {
		t.Fatal(err)
	}
	a()
	c()
	if b.Bytes() != 10 || (*releases.ManifestBudget)(nil).Bytes() != releases.DefaultManifestBudgetBytes {
		t.Fatal("sizes")
	}
}
