package cloud_test

// Ways the shared state could go wrong that a review of it found (a
// rebuild resurrecting what was lifted, recovery re-running a deploy that
// ended elsewhere, a lock never freed, a resent write taken for another
// process's, a removed object seeded back, a stale runner let back in);
// each test failed before its fix.

import (
	"context"
	"errors"
	"path/filepath"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// proc is one more deploybot on e's bucket with a store of its own (a fresh
// CI runner, a new pod on an emptyDir), its coordinator wrapped by wrap.
func proc(t *testing.T, e *testenv.Env, host string, wrap func(releases.Coordinator) releases.Coordinator) *releases.Service {
	t.Helper()
	db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	var c releases.Coordinator = e.Bucket
	if wrap != nil {
		c = wrap(c)
	}
	sites := []releases.Site{e.Site}
	return &releases.Service{Store: &releases.SharedStore{Store: db, Cache: db, State: c, Sites: sites}, Bucket: e.Bucket,
		Sites: sites, CDNs: map[string]releases.CDN{releases.DefaultStrategy: e.CDN}, Timeout: time.Minute, Host: host, PID: 7}
}

// flaky fails PutState while down is set (S3 unreachable).
type flaky struct {
	releases.Coordinator
	down atomic.Bool
}

func (f *flaky) PutState(ctx context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	if f.down.Load() {
		return "", errors.New("dial tcp: connection refused")
	}
	return f.Coordinator.PutState(ctx, site, key, body, etag)
}

// resent is what the SDK does when a PUT's response is lost (timeout,
// connection reset, a 500 after the commit): the request goes again, with
// the same conditions, and its answer is the one the caller gets.
type resent struct {
	releases.Coordinator
	on atomic.Bool
}

func (r *resent) PutState(ctx context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	tag, err := r.Coordinator.PutState(ctx, site, key, body, etag)
	if err != nil || !r.on.Load() {
		return tag, err
	}
	return r.Coordinator.PutState(ctx, site, key, body, etag)
}

// R1. A lock released, a freeze lifted and a pin removed through the
// shared state come back when a process with an empty store starts
// (rebuildIfEmpty: every fresh CI runner, every pod on an emptyDir):
// Rebuild re-applies the history's state/ copies through the SharedStore,
// and the SharedStore never updates those copies.
func TestSharedAttackRebuildResurrectsLiftedState(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	// Before the upgrade: p[0]'s store holds a person's lock, a freeze and
	// a pin, mirrored to the history as that version did.
	local := p[0].Store.(*releases.SharedStore).Store
	now := time.Now().UTC()
	if err := local.AcquireLock(ctx, releases.Lock{Site: "www", Holder: "ops", Reason: "from before", Since: now}); err != nil {
		t.Fatal(err)
	}
	if err := local.SetFreeze(ctx, releases.Freeze{Site: "www", By: "ops", Reason: "sale", From: now.Add(-time.Minute), Until: now.Add(2 * time.Hour), At: now}); err != nil {
		t.Fatal(err)
	}
	if err := local.SetPin(ctx, releases.Pin{Site: "www", Version: "v1", By: "ops", At: now}); err != nil {
		t.Fatal(err)
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	// After the upgrade: all three lifted, through the shared state.
	if l, err := p[0].UnlockSite(ctx, "www", "ops"); err != nil || l == nil {
		t.Fatalf("unlock: %+v %v", l, err)
	}
	if lifted, err := p[0].Unfreeze(ctx, "www", true, "ops"); err != nil || len(lifted) != 1 {
		t.Fatalf("unfreeze: %+v %v", lifted, err)
	}
	if err := p[0].UnpinRelease(ctx, "www", "v1", "ops"); err != nil {
		t.Fatal(err)
	}
	// A fresh process (empty store) rebuilds, as rebuildIfEmpty does.
	fresh := proc(t, e, "ci-runner", nil)
	if _, err := fresh.Rebuild(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if l, _ := p[1].Store.Lock(ctx, "www"); l != nil {
		t.Errorf("the released lock is back in the bucket: %+v", l)
	}
	if f, _ := p[1].Store.Freeze(ctx, "www"); f != nil {
		t.Errorf("the lifted freeze is back in the bucket: %+v", f)
	}
	if pins, _ := p[1].Store.Pins(ctx, "www"); len(pins) != 0 {
		t.Errorf("the removed pin is back in the bucket: %+v", pins)
	}
}

// R2. A deploy imported by another process's recovery while its runner
// was alive stays in that store unfinished; once the runner finishes it,
// the next recovery pass there (serve's loop, every reconcile interval)
// "recovers" it again: it runs its steps a second time without holding
// the site's lock, and records an outcome of its own.
func TestSharedAttackRecoveryResumesADeployThatFinishedElsewhere(t *testing.T) {
	_, p := twoProcesses(t, 1500*time.Millisecond)
	ctx := context.Background()
	done := make(chan error, 1)
	go func() {
		_, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "a"}, nil)
		done <- err
	}()
	deadline := time.Now().Add(10 * time.Second)
	for {
		if l, _ := p[1].Store.Lock(ctx, "www"); l != nil && l.DeployID != "" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the deploy never took the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	// serve's tick in the other replica while the deploy runs: left alone.
	if rec, err := p[1].Recover(ctx, nil); err != nil || len(rec) != 0 {
		t.Fatalf("recovery while the runner is alive: %+v %v", rec, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	// The next tick: nothing to recover, the deploy is done.
	rec, err := p[1].Recover(ctx, nil)
	if len(rec) != 0 {
		t.Fatalf("the other replica resumed a deploy that had finished in the first: %+v (err %v)", rec, err)
	}
}

// R3. FinishDeploy records the deploy locally, then cannot free the
// bucket's lock (S3 unreachable for that one write). The error says
// "deploybot recover frees it", but recovery in the same process never
// does: the deploy is known and final, so the lock is neither resumed nor
// an orphan. The site stays locked for every process (a CLI-only user, or
// the replica that ran it, can never clear it but by hand).
func TestSharedAttackLockNeverFreedWhenTheBucketFailsAtFinish(t *testing.T) {
	e, _ := twoProcesses(t, 0)
	ctx := context.Background()
	var f *flaky
	p := proc(t, e, "host-x", func(c releases.Coordinator) releases.Coordinator { f = &flaky{Coordinator: c}; return f })
	old := time.Now().Add(-time.Hour)
	d := releases.Deploy{ID: releases.NewDeployID(old), Site: "www", Kind: releases.KindPromote, Actor: "ci", To: "v1",
		Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: old}
	// Process "": a runner that names no process, so this test may write
	// what that runner would (a named other process's writes are fenced).
	lock := releases.Lock{Site: "www", Holder: "ci", Reason: "promote v1", DeployID: d.ID, Since: old, Host: "host-x", PID: 7, Heartbeat: old}
	if err := p.Store.StartDeploy(ctx, d, lock); err != nil {
		t.Fatal(err)
	}
	d.Phase, d.FinishedAt, d.Error = releases.PhaseFailed, time.Now(), "x"
	f.down.Store(true)
	if err := p.Store.FinishDeploy(ctx, d, nil); err == nil {
		t.Fatal("want the bucket's failure")
	}
	f.down.Store(false)
	if _, err := p.RecoverSite(ctx, "www", nil); err != nil {
		t.Logf("recover: %v", err)
	}
	if l, _ := p.Store.Lock(ctx, "www"); l != nil {
		t.Fatalf("recover left the lock of finished deploy %s in the bucket: %+v", d.ID, l)
	}
}

// R4. A conditional write whose response is lost and that the SDK sends
// again gets 412 on its own write; it is taken for a lost race, and a lock
// this very call took is reported as held by someone else (here: itself).
func TestSharedAttackResentCreateRefusesItsOwnLock(t *testing.T) {
	e, _ := twoProcesses(t, 0)
	ctx := context.Background()
	var r *resent
	p := proc(t, e, "host-y", func(c releases.Coordinator) releases.Coordinator { r = &resent{Coordinator: c}; return r })
	r.on.Store(true)
	if _, err := p.LockSite(ctx, "www", "alice", "launch"); err != nil {
		t.Fatalf("alice's lock, taken, is refused: %v", err)
	}
}

// R5. Removing a state object, as the refusals tell the operator to do
// ("restore it from the history or remove it"), does not remove it: the
// next process that reads it seeds it again from its cache of it.
func TestSharedAttackRemovedLockIsSeededBackFromACache(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	if _, err := p[0].LockSite(ctx, "www", "alice", "launch"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.StatePrefix() + releases.StateLock)}); err != nil {
		t.Fatal(err)
	}
	_, _ = p[0].Store.Lock(ctx, "www") // e.g. p[0]'s status, or its next promote
	if l, _ := p[1].Store.Lock(ctx, "www"); l != nil {
		t.Fatalf("the removed lock is back, seeded from p[0]'s cache: %+v", l)
	}
}

// R6. No fencing: once another process has taken over a deploy whose
// runner looked gone (three missed heartbeats: a laptop that slept, a
// runner cut off from S3 for 30 s), the first runner's heartbeat and phase
// writes still succeed: they only compare the deploy id, so it takes the
// lock's runner back and overwrites the record the second runner writes,
// and both go on acting on the distribution.
func TestSharedAttackAStaleRunnerIsNotFenced(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	old := time.Now().Add(-time.Hour)
	d := releases.Deploy{ID: releases.NewDeployID(old), Site: "www", Kind: releases.KindPromote, Actor: "ci", To: "v1",
		Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: old}
	a := releases.Lock{Site: "www", Holder: "ci", Reason: "promote v1", DeployID: d.ID, Since: old, Host: "host-a", PID: 100, Process: "proc-a", Heartbeat: old}
	if err := p[0].Store.StartDeploy(ctx, d, a); err != nil {
		t.Fatal(err)
	}
	// p[1] imports it and claims it, as recovery's run() does.
	if err := p[1].Store.(*releases.SharedStore).ImportRunning(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	b := releases.Lock{Site: "www", DeployID: d.ID, Host: "host-b", PID: 101, Process: "proc-b", Heartbeat: time.Now()}
	if err := p[1].Store.TouchLock(ctx, b); err != nil {
		t.Fatal(err)
	}
	// The first runner wakes up and carries on.
	a.Heartbeat = time.Now()
	errBeat := p[0].Store.TouchLock(ctx, a)
	d.Phase = "update"
	d.Phases = []releases.PhaseRecord{{Phase: "update", Started: time.Now()}}
	errSave := p[0].Store.SaveDeploy(ctx, d)
	l, _ := p[1].Store.Lock(ctx, "www")
	if errBeat == nil && errSave == nil {
		t.Fatalf("the superseded runner's heartbeat and phase were accepted; the lock now names %s/%d", l.Host, l.PID)
	}
}
