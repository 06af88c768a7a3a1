package cloud_test

// Ways the replicas' shared state (lock, lease, notices, catch-up) could
// go wrong that a second review found, as an attacker (the bucket is
// outside input) and as a distributed-systems skeptic (pauses, clocks,
// lost mirrors). Each test failed when it was written; the comment says
// how it went.

import (
	"context"
	"encoding/json"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// takeOverLock rewrites the site's lock as another replica's takeover
// writes it: same deploy, another runner, a fresh heartbeat.
func takeOverLock(t *testing.T, ctx context.Context, sh *releases.SharedStore, site releases.Site, id string) {
	t.Helper()
	body, etag, err := sh.State.GetState(ctx, site, releases.StateLock)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	lock := st["lock"].(map[string]any)
	if lock["deploy_id"] != id {
		t.Fatalf("the lock names %v, not the running deploy %s", lock["deploy_id"], id)
	}
	lock["host"], lock["process"], lock["pid"], lock["heartbeat"] = "host-z", "other-replica", 9, time.Now().UTC().Format(time.RFC3339Nano)
	delete(st, "write")
	taken, _ := json.Marshal(st)
	if _, err := sh.State.PutState(ctx, site, releases.StateLock, taken, etag); err != nil {
		t.Fatal(err)
	}
}

// V1. A runner taken over between two heartbeats (a GC pause, a node cut
// off for 25 s) that then reaches the end of its steps before its next
// heartbeat learns of the takeover only at FinishDeploy. SharedStore's
// FinishDeploy records the end locally first and queues it for the
// history (create-only: the first record mirrored wins), and only then
// finds the bucket's lock run by another process. The fenced runner's
// store says done, its record reaches the bucket's history before the
// new runner has ended the deploy, and every other store that catches up
// imports it: the new runner's own outcome (done or failed) is refused
// by the history, so stores disagree on how the deploy ended.
func TestReviewAFencedRunnerReachingTheEndRecordsNoEnd(t *testing.T) {
	e, p := twoProcesses(t, 300*time.Millisecond)
	ctx := context.Background()
	shared := p[0].Store.(*releases.SharedStore)
	var id string
	out, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "ci"}, func(ev releases.Event) {
		// The last step: its phase is recorded, then (while the runner
		// waits for the invalidation) another replica takes it over.
		if ev.Type == releases.EventPhaseStarted && ev.Phase == cloud.PhaseInvalidateWait {
			id = ev.Deploy.ID
			takeOverLock(t, ctx, shared, e.Site, id)
		}
	})
	if id == "" {
		t.Fatalf("the deploy never reached its last phase: %+v %v", out, err)
	}
	if !errors.Is(err, releases.ErrFenced) {
		t.Errorf("the fenced runner's promote: want a handed-over refusal, got %v", err)
	}
	if d, err := p[0].Store.Deploy(ctx, "www", id); err != nil || d.Phase.Final() {
		t.Errorf("the fenced runner recorded an end (%s) of a deploy another process runs: %v", d.Phase, err)
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if raw, err := e.Bucket.GetHistory(ctx, e.Site, releases.HistoryDeploys+id+".json"); err == nil {
		t.Errorf("the fenced runner's end reached the history while the other runner still runs the deploy:\n%s", raw)
	}
}

// V2. Whether a deploy's runner is gone is judged by comparing the
// heartbeat the runner wrote (by its clock) with the judge's clock: a
// runner whose clock is 30 s behind the judge's, beating every 10 s, is
// taken for dead at the judge's first look (the watch, every 5 s), and
// its deploy is taken over and run by a second process while the first
// still runs it, until the first's next heartbeat (up to 10 s). Nothing
// tells an operator that clocks must agree within 20 s; a judge could
// instead time how long the heartbeat it sees has not changed.
func TestReviewAClockBehindHasItsLiveDeployTakenOver(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	behind := func() time.Time { return time.Now().Add(-30 * time.Second) }
	d := releases.Deploy{ID: releases.NewDeployID(behind()), Site: "www", Kind: releases.KindPromote, Actor: "ci", To: "v1",
		Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: behind()}
	runner := releases.Lock{Site: "www", Holder: "ci", Reason: "promote v1", DeployID: d.ID, Since: behind(), Host: "host-a", PID: 100, Process: "proc-a", Heartbeat: behind()}
	if err := p[0].Store.StartDeploy(ctx, d, runner); err != nil {
		t.Fatal(err)
	}
	for beat := range 3 {
		// The runner beats, by its clock.
		runner.Heartbeat = behind()
		if err := p[0].Store.TouchLock(ctx, runner); err != nil {
			t.Fatalf("beat %d: %v", beat, err)
		}
		recovered, err := p[1].Watch(ctx, "www", nil)
		l, _ := p[1].Store.Lock(ctx, "www")
		if len(recovered) > 0 || l == nil || l.Process != "proc-a" {
			t.Fatalf("beat %d: the other process took over a deploy whose runner beats (its clock 30 s behind): recovered %+v (%v), lock %+v", beat, recovered, err, l)
		}
	}
}

// V11. V1 once more, when the process that took the deploy over has also
// ended it (freed the lock) before the first runner, paused between two
// heartbeats, reaches its own end: the lock no longer names the deploy,
// so FinishDeploy takes it for nobody's and records the first runner's
// end (done) beside the other's (failed, here), and mirrors it. Its
// heartbeat would have said it was fenced ("freed or taken by someone
// else": whoever freed it took this runner for gone).
func TestReviewARunnerWhoseDeployAnotherEndedRecordsNoEnd(t *testing.T) {
	e, p := twoProcesses(t, 300*time.Millisecond)
	ctx := context.Background()
	shared := p[0].Store.(*releases.SharedStore)
	var id string
	_, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "ci"}, func(ev releases.Event) {
		if ev.Type != releases.EventPhaseStarted || ev.Phase != cloud.PhaseInvalidateWait {
			return
		}
		id = ev.Deploy.ID
		takeOverLock(t, ctx, shared, e.Site, id)
		// The other process ends the deploy (failed, say) and frees the
		// lock, recording what is live, as its FinishDeploy writes it.
		body, etag, err := shared.State.GetState(ctx, e.Site, releases.StateLock)
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		st["lock"] = nil
		delete(st, "deploy")
		delete(st, "write")
		st["live"] = map[string]any{"version": "v2", "deploy_id": id, "since": time.Now().UTC().Format(time.RFC3339Nano)}
		freed, _ := json.Marshal(st)
		if _, err := shared.State.PutState(ctx, e.Site, releases.StateLock, freed, etag); err != nil {
			t.Fatal(err)
		}
	})
	if id == "" {
		t.Fatalf("the deploy never reached its last phase: %v", err)
	}
	if d, err := p[0].Store.Deploy(ctx, "www", id); err != nil || d.Phase.Final() {
		t.Errorf("the first runner recorded an end (%s) of a deploy another process ended: %v", d.Phase, err)
	}
	if !errors.Is(err, releases.ErrFenced) {
		t.Errorf("the first runner's promote: want a handed-over refusal, got %v", err)
	}
}

// V15. Retention keeps the last keep_deployed releases that were live
// (rollback targets), judged from the deploys in the pruning process's
// store; prune, unlike rollback, history and status, does not catch up
// with the deploys other processes ran first. The replica whose claim
// wins the scheduled prune (or a command line's `deploybot prune`)
// deletes the release another replica's deploys made a rollback target.
func TestReviewPruneKeepsWhatOtherProcessesDeployed(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		if _, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "alice"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	// Keep the newest and the last two live ones: v3, v2 (live), v1.
	p[1].Sites[0].Retention = releases.Policy{Keep: 1, KeepDeployed: 2, Grace: time.Hour}
	rep, err := p[1].Prune(ctx, releases.PruneRequest{Site: "www", Actor: "schedule"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Deleted {
		if d.Version == "v1" {
			t.Fatalf("the other replica's prune deleted v1, live before v2 (a rollback target): %+v", rep.Deleted)
		}
	}
}

// V16. Catch-up reads the last CatchUpWindow (a day) of the history,
// whatever the store lacks: a store that fell more than a day behind (a
// laptop's command line used weekly, a replica down for a weekend with
// its volume kept; only an empty store is rebuilt) never learns the
// deploys in between, and its rollback walks back through what it knows:
// from v3 it goes to v1, skipping v2, the release live before v3.
func TestReviewAStoreMoreThanADayBehindRollsBackToTheRightRelease(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	if _, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	// p[1] knows the releases and, caught up, the deploy to v1.
	if _, err := p[1].Versions(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if _, err := p[1].History(ctx, "www", 10); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v2", "v3"} {
		if _, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "alice"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	// Two days later, p[1] rolls back.
	p[1].Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	target, err := func() (string, error) {
		if _, err := p[1].History(ctx, "www", 10); err != nil {
			return "", err
		}
		return p[1].RollbackTarget(ctx, "www")
	}()
	if err != nil || target != "v2" {
		t.Fatalf("a rollback from v3 in a store two days behind goes to %q (%v), not v2", target, err)
	}
}

// V17. Catch-up records the final record of a deploy it knew as running
// through the SharedStore, whose SaveDeploy also writes the deploy's
// record into the bucket's lock while the lock is the deploy's: a read
// (history, status, rollback, the watch) then tries a write to the shared
// lock, is refused as fenced when another process runs it (its end was
// recorded but the lock not yet freed: the bucket failed at that write),
// and the whole catch-up stops there, every time, until the lock is freed:
// the audit entries after it are never read.
func TestReviewCatchUpWritesNothingToTheLock(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	started := time.Now().Add(-time.Minute)
	d := releases.Deploy{ID: releases.NewDeployID(started), Site: "www", Kind: releases.KindPromote, Actor: "ci", To: "v1",
		Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: started}
	runner := releases.Lock{Site: "www", Holder: "ci", Reason: "promote v1", DeployID: d.ID, Since: started, Host: "host-a", PID: 100, Process: "proc-a", Heartbeat: time.Now()}
	if err := p[0].Store.StartDeploy(ctx, d, runner); err != nil {
		t.Fatal(err)
	}
	if err := p[1].Store.(*releases.SharedStore).ImportRunning(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	// proc-a recorded the end and mirrored it; freeing the lock failed.
	final := d
	final.Phase, final.FinishedAt, final.Error = releases.PhaseFailed, time.Now(), "x"
	body, _ := json.Marshal(final)
	if err := e.Bucket.PutHistory(ctx, e.Site, releases.HistoryDeploys+d.ID+".json", body, false); err != nil {
		t.Fatal(err)
	}
	if _, err := p[1].PullHistory(ctx, "www"); err != nil {
		t.Fatalf("catching up failed: %v", err)
	}
	if got, err := p[1].Store.Deploy(ctx, "www", d.ID); err != nil || got.Phase != releases.PhaseFailed {
		t.Fatalf("the final record was not taken: %+v %v", got.Phase, err)
	}
}

// V18. R3 again, across a restart: a deploy recorded as ended whose lock
// the bucket did not free then ("deploybot recover frees it") is freed by
// recovery only in the process that ran it. After a restart (a new
// process id; the same host and, in a container, the same pid), recovery
// finds the deploy ended and the lock its own, but FinishDeploy refuses
// to free a lock that names another process: the site stays locked for
// every process, for good, with one replica or on the command line.
func TestReviewALockLeftByAnEndedDeployIsFreedAfterARestart(t *testing.T) {
	e, _ := twoProcesses(t, 0)
	ctx := context.Background()
	var f *flaky
	p := proc(t, e, "host-x", func(c releases.Coordinator) releases.Coordinator { f = &flaky{Coordinator: c}; return f })
	old := time.Now().Add(-time.Hour)
	d := releases.Deploy{ID: releases.NewDeployID(old), Site: "www", Kind: releases.KindPromote, Actor: "ci", To: "v1",
		Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: old}
	// The process before the restart: same host and pid, another id.
	lock := releases.Lock{Site: "www", Holder: "ci", Reason: "promote v1", DeployID: d.ID, Since: old, Host: "host-x", PID: 7, Process: "before-the-restart", Heartbeat: old}
	if err := p.Store.StartDeploy(ctx, d, lock); err != nil {
		t.Fatal(err)
	}
	d.Phase, d.FinishedAt, d.Error = releases.PhaseFailed, time.Now(), "x"
	f.down.Store(true)
	// Its end: recorded locally, the bucket's lock not freed.
	if err := p.Store.(*releases.SharedStore).Store.FinishDeploy(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	f.down.Store(false)
	if _, err := p.RecoverSite(ctx, "www", nil); err != nil {
		t.Logf("recover: %v", err)
	}
	if l, _ := p.Store.Lock(ctx, "www"); l != nil {
		t.Fatalf("recovery after the restart left the lock of ended deploy %s: %+v", d.ID, l)
	}
}

// stuckOnce leaves the first write after it is armed unanswered, as a
// connection whose peer stopped answering does, until the caller's
// context ends (or the test does); later writes go through.
type stuckOnce struct {
	releases.Coordinator
	armed atomic.Bool
	hit   chan struct{}
	gone  chan struct{}
}

func (s *stuckOnce) PutState(ctx context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	if s.armed.CompareAndSwap(true, false) {
		close(s.hit)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-s.gone:
			return "", errors.New("connection reset")
		}
	}
	return s.Coordinator.PutState(ctx, site, key, body, etag)
}

// V19. The heartbeat's write runs on context.WithoutCancel, with no
// deadline (the SDK's client has none either): one write that S3 never
// answers (a stuck connection) stops the heartbeat for good. The other
// replicas then take the deploy over 20 s later, while the runner, which
// learns of a takeover between phases from its heartbeat, keeps acting
// until its current step ends (a propagation wait: up to the deploy's
// 30-minute timeout), and the beat goroutine is never let go.
func TestReviewAStuckHeartbeatWriteDoesNotHideATakeover(t *testing.T) {
	e, _ := twoProcesses(t, 4*time.Second)
	ctx := context.Background()
	stuck := &stuckOnce{hit: make(chan struct{}), gone: make(chan struct{})}
	t.Cleanup(func() { close(stuck.gone) })
	p := proc(t, e, "host-s", func(c releases.Coordinator) releases.Coordinator { stuck.Coordinator = c; return stuck })
	p.Heartbeat = 100 * time.Millisecond
	var takenAt time.Time
	_, err := p.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "ci"}, func(ev releases.Event) {
		if ev.Type == releases.EventPhaseStarted && ev.Phase == cloud.PhasePropagate {
			stuck.armed.Store(true) // the next heartbeat's write gets no answer
			select {
			case <-stuck.hit:
			case <-time.After(3 * time.Second):
				t.Error("no heartbeat write")
			}
			takeOverLock(t, ctx, &releases.SharedStore{State: e.Bucket}, e.Site, ev.Deploy.ID)
			takenAt = time.Now()
		}
	})
	if !errors.Is(err, releases.ErrFenced) {
		t.Fatalf("want a handed-over refusal, got %v", err)
	}
	if late := time.Since(takenAt); late > 2*time.Second {
		t.Fatalf("the runner went on for %s after it was taken over (its heartbeat was stuck on one write)", late.Round(100*time.Millisecond))
	}
}
