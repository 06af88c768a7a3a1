package server_test

import (
	"context"
	"net"
	"path/filepath"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
	"github.com/deploybot/deploybot/store"
)

// notices counts the release notices a replica's chat was asked to post;
// metrics are the replica's.
type notices struct {
	mu       sync.Mutex
	versions map[string]int
	metrics  *server.Metrics
}

func (n *notices) ReleaseRecorded(_ context.Context, _ releases.Site, r releases.Release, _ string) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.versions == nil {
		n.versions = map[string]int{}
	}
	n.versions[r.Version]++
}
func (n *notices) PruneFinished(context.Context, releases.Site, *releases.PruneReport, error) {}
func (n *notices) LiveChanged(context.Context, releases.Site)                                 {}

func (n *notices) of(v string) int { n.mu.Lock(); defer n.mu.Unlock(); return n.versions[v] }

// reconciles is how many reconciles of a site the replica has run.
func (n *notices) reconciles(t *testing.T) int {
	t.Helper()
	fams, err := n.metrics.Registry.Gather()
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, f := range fams {
		if f.GetName() == "deploybot_reconcile_runs_total" {
			for _, m := range f.GetMetric() {
				total += int(m.GetCounter().GetValue())
			}
		}
	}
	return total
}

// replica starts one serve on e's bucket with a store of its own, sharing
// the site through the bucket; stop shuts it down as a rolling update does.
func replica(t *testing.T, e *testenv.Env, name string, reconcile time.Duration, n *notices) (svc *releases.Service, stop func()) {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	sites := []releases.Site{e.Site}
	svc = &releases.Service{Store: &releases.SharedStore{Store: db, Cache: db, State: e.Bucket, Sites: sites, Process: name}, Bucket: e.Bucket,
		Sites: sites, CDNs: map[string]releases.CDN{releases.DefaultStrategy: e.CDN}, Timeout: time.Minute, Lease: 600 * time.Millisecond}
	n.metrics = server.NewMetrics()
	srv := &server.Server{Service: svc, Store: db, Metrics: n.metrics, HookSecret: []byte(secret), APIToken: token, ReconcileInterval: reconcile,
		MirrorInterval: 100 * time.Millisecond, ShutdownTimeout: 5 * time.Second, Notifier: n}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln) }()
	var once sync.Once
	stop = func() { once.Do(func() { cancel(); <-done }) }
	t.Cleanup(stop)
	return svc, stop
}

func within(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("not within %s: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// V14. Only the lease holder posts the notices of releases reconcile
// finds, and only for releases its own store did not have yet. A release
// that another replica's reconcile found first, while it did not hold
// the lease, is in that replica's store without a notice; when the
// holder then stops before its own reconcile finds it (a rolling update,
// its next reconcile minutes away), the replica that takes the lease over
// finds nothing new, and the release's notice is never posted, by anyone
// (the notice claims only guard against posting twice).
func TestReviewAReleaseFoundBeforeTheLeaseMovedIsStillAnnounced(t *testing.T) {
	e := testenv.New(t, testenv.Options{PollInterval: 5 * time.Millisecond})
	e.Publish("v1", time.Now().UTC().Add(-time.Hour).Truncate(time.Second), map[string]string{"index.html": "v1"})
	na, nb := &notices{}, &notices{}
	// a holds the lease; its reconcile ran at start and is not due again
	// for a while.
	a, stopA := replica(t, e, "replica-a", time.Hour, na)
	within(t, 5*time.Second, "a takes the lease and announces v1", func() bool { return a.HoldsLease("www") && na.of("v1") == 1 })
	// v9 is published (no hook reached serve); b starts, or its
	// reconcile comes round, while a holds the lease: b records v9.
	e.Publish("v9", time.Now().UTC().Truncate(time.Second), map[string]string{"index.html": "v9"})
	b, _ := replica(t, e, "replica-b", 200*time.Millisecond, nb)
	within(t, 5*time.Second, "b records v9", func() bool { _, err := b.Store.Release(context.Background(), "www", "v9"); return err == nil })
	// a stops (a rolling update) and gives the lease up; b takes it.
	stopA()
	within(t, 5*time.Second, "b takes the lease", func() bool { return b.HoldsLease("www") })
	ran := nb.reconciles(t)
	within(t, 5*time.Second, "b's reconcile comes round twice while it holds the lease", func() bool { return nb.reconciles(t) >= ran+2 })
	if na.of("v9")+nb.of("v9") == 0 {
		t.Fatal("v9's notice was never posted: b found it before it held the lease, and a stopped before its reconcile found it")
	}
}
