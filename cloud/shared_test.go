package cloud_test

import (
	"context"
	"encoding/json"
	"errors"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// twoProcesses is one stand-in and two deploybots on it, each with its own
// store (as serve on one machine and the command line on a CI runner),
// sharing locks and freezes through the bucket.
func twoProcesses(t *testing.T, propagation time.Duration) (*testenv.Env, [2]*releases.Service) {
	t.Helper()
	e := testenv.New(t, testenv.Options{AWS: localaws.Options{Propagation: propagation}, Provision: true, MaxAttempts: 8})
	var svcs [2]*releases.Service
	for i := range svcs {
		db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		svcs[i] = &releases.Service{Store: releases.NewSharedStore(db, e.Bucket, []releases.Site{e.Site}), Bucket: e.Bucket,
			Sites: []releases.Site{e.Site}, CDNs: map[string]releases.CDN{releases.DefaultStrategy: e.CDN}, Timeout: time.Minute,
			Host: "host-" + string(rune('a'+i)), PID: 100 + i}
	}
	t0 := time.Now().UTC().Add(-time.Hour).Truncate(time.Second)
	for i, v := range []string{"v1", "v2", "v3"} {
		e.Publish(v, t0.Add(time.Duration(i)*time.Minute), map[string]string{"index.html": v})
	}
	return e, svcs
}

// A lock taken in one process stops the other's promotes, naming who
// holds it; a freeze set in one holds the other's promotes; either
// process sees and lifts what the other set.
func TestLocksAndFreezesAreSharedThroughTheBucket(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	if _, err := p[0].LockSite(ctx, "www", "cli-alice", "launch"); err != nil {
		t.Fatal(err)
	}
	_, err := p[1].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "serve-bob"}, nil)
	var le *releases.LockedError
	if !errors.As(err, &le) || le.Lock.Holder != "cli-alice" {
		t.Fatalf("the other process promoted over the lock: %v", err)
	}
	if st, err := p[1].Status(ctx, "www"); err != nil || st.Lock == nil || st.Lock.Reason != "launch" {
		t.Fatalf("the other process's status: %+v %v", st, err)
	}
	if l, err := p[1].UnlockSite(ctx, "www", "serve-bob"); err != nil || l == nil || l.Holder != "cli-alice" {
		t.Fatalf("unlock from the other process: %+v %v", l, err)
	}
	if _, err := p[0].LockSite(ctx, "www", "cli-alice", "again"); err != nil {
		t.Fatalf("lock after the other process unlocked: %v", err)
	}
	if _, err := p[0].UnlockSite(ctx, "www", "cli-alice"); err != nil {
		t.Fatal(err)
	}

	if _, err := p[1].Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "2h", Reason: "sale", Actor: "serve-bob"}); err != nil {
		t.Fatal(err)
	}
	_, err = p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "ci"}, nil)
	var ge *releases.GuardError
	if !errors.As(err, &ge) || ge.Freeze == nil || ge.Freeze.By != "serve-bob" {
		t.Fatalf("a promote in the other process during the freeze: %v", err)
	}
	if lifted, err := p[0].Unfreeze(ctx, "www", false, "serve-bob"); err != nil || len(lifted) != 1 {
		t.Fatalf("unfreeze from the other process: %v %v", lifted, err)
	}
	if _, err := p[1].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "serve-bob"}, nil); err != nil {
		t.Fatalf("promote after the unfreeze: %v", err)
	}
	// The other process knows what is live at once, without a reconcile.
	if live, ok, err := p[0].Store.Live(ctx, "www"); err != nil || !ok || live.Version != "v1" {
		t.Fatalf("the other process's live pointer after the deploy: %+v %v %v", live, ok, err)
	}
	if l, _ := p[0].Store.Lock(ctx, "www"); l != nil {
		t.Fatalf("a lock is left after the deploy: %+v", l)
	}
}

// Promotes of one site from both processes at once: exactly one runs, and
// every other is refused naming it; nothing is left locked.
func TestConcurrentPromotesInTwoProcessesFlipOnce(t *testing.T) {
	_, p := twoProcesses(t, 300*time.Millisecond)
	ctx := context.Background()
	const n = 20
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran, refused := 0, 0
	var others []error
	start := make(chan struct{})
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v := []string{"v2", "v3"}[i%2]
			out, err := p[i%2].Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "caller"}, nil)
			mu.Lock()
			defer mu.Unlock()
			var le *releases.LockedError
			switch {
			case err == nil && out.Deploy != nil:
				ran++
			case errors.As(err, &le) && strings.Contains(err.Error(), "is busy: deploy"):
				refused++
			default:
				others = append(others, err)
			}
		}()
	}
	close(start)
	wg.Wait()
	if ran != 1 || refused != n-1 {
		t.Fatalf("ran %d, refused %d, other outcomes: %v", ran, refused, errors.Join(others...))
	}
	for i := range p {
		if l, err := p[i].Store.Lock(ctx, "www"); err != nil || l != nil {
			t.Fatalf("lock left: %+v %v", l, err)
		}
	}
}

// A lock object that deploybot did not write (the bucket is outside
// input) refuses deploys, naming the object, rather than being trusted or
// taken for a free site; a well-formed one of another site is refused too.
func TestAStrangeLockObjectIsRefused(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	for _, body := range []string{`{"lock": {"site": "www", "holder": "x"}, "evil": true}`, `not json`, `{"lock": {"site": "docs", "holder": "x"}}`} {
		_, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.StatePrefix() + releases.StateLock),
			Body: strings.NewReader(body)})
		if err != nil {
			t.Fatal(err)
		}
		_, err = p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "a"}, nil)
		if releases.ErrorCode(err) != releases.EINTERNAL || !strings.Contains(err.Error(), ".deploybot/state/lock.json") {
			t.Fatalf("a promote under the lock object %q: %v", body, err)
		}
	}
}

// A promote asked for in one process is approved in the other, which
// runs it; the request reads the same from both; a second request in
// either is refused naming the first.
func TestApprovalsAreSharedThroughTheBucket(t *testing.T) {
	_, p := twoProcesses(t, 0)
	for i := range p {
		p[i].Sites[0].Approval = releases.Approval{Required: 1, Timeout: time.Hour}
		p[i].Store.(*releases.SharedStore).Sites = p[i].Sites
	}
	ctx := context.Background()
	out, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "cli-alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatalf("the request: %+v %v", out, err)
	}
	id := out.Approval.ID
	var pe *releases.PendingError
	if _, err := p[1].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "serve-bob"}, nil); !errors.As(err, &pe) || pe.Request.ID != id {
		t.Fatalf("a second request in the other process: %v", err)
	}
	if _, err := p[1].Approve(ctx, "www", id, "cli-alice", nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("self-approval in the other process: %v", err)
	}
	done, err := p[1].Approve(ctx, "www", id, "serve-bob", nil)
	if err != nil || done.Deploy == nil || done.Deploy.ID != id {
		t.Fatalf("the approval in the other process: %+v %v", done, err)
	}
	for i := range p {
		a, err := p[i].Approval(ctx, "www", id)
		if err != nil || a.State != releases.ApprovalApproved || a.DecidedBy != "serve-bob" {
			t.Fatalf("process %d reads the request as %+v %v", i, a, err)
		}
	}
	if _, err := p[0].Approve(ctx, "www", id, "carol", nil); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("approving a decided request again: %v", err)
	}
}

// A pin set in one process keeps the release from the other's prune, and
// an unpin in either lets it go.
func TestPinsAreSharedThroughTheBucket(t *testing.T) {
	_, p := twoProcesses(t, 0)
	for i := range p {
		p[i].Sites[0].Retention = releases.Policy{Keep: 1, KeepDeployed: 1}
		p[i].Store.(*releases.SharedStore).Sites = p[i].Sites
	}
	ctx := context.Background()
	if _, err := p[1].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "a"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p[0].PinRelease(ctx, "www", "v1", "cli-alice", "audit"); err != nil {
		t.Fatal(err)
	}
	rep, err := p[1].Prune(ctx, releases.PruneRequest{Site: "www", Actor: "cron"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Deleted {
		if d.Version == "v1" {
			t.Fatalf("the other process pruned the pinned v1: %+v", rep)
		}
	}
	if err := p[1].UnpinRelease(ctx, "www", "v1", "serve-bob"); err != nil {
		t.Fatalf("unpin in the other process: %v", err)
	}
	if vs, _ := p[0].Versions(ctx, "www"); len(vs) == 0 || vs[len(vs)-1].Version != "v1" || vs[len(vs)-1].Pin != nil {
		t.Fatalf("the first process still sees a pin: %+v", vs)
	}
}

// A store from before shared state keeps its lock, freeze and pins: the
// first process to read a state object that was never written seeds it
// from its store, rather than taking the site for free.
func TestStateFromBeforeIsSeededFromTheStore(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	local := p[0].Store.(*releases.SharedStore).Store
	if err := local.AcquireLock(ctx, releases.Lock{Site: "www", Holder: "ops", Reason: "from before", Since: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if err := local.SetPin(ctx, releases.Pin{Site: "www", Version: "v1", By: "ops", At: time.Now()}); err != nil {
		t.Fatal(err)
	}
	if l, err := p[0].Store.Lock(ctx, "www"); err != nil || l == nil || l.Reason != "from before" {
		t.Fatalf("the lock from before: %+v %v", l, err)
	}
	if pins, err := p[0].Store.Pins(ctx, "www"); err != nil || len(pins) != 1 {
		t.Fatalf("the pins from before: %+v %v", pins, err)
	}
	// Now in the bucket: the other process, whose store never had them,
	// sees them too.
	if _, err := p[1].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "b"}, nil); !strings.Contains(releases.ErrorMessage(err), "from before") {
		t.Fatalf("the other process promoted over the lock from before: %v", err)
	}
	if _, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.StatePrefix() + releases.StatePins)}); err != nil {
		t.Fatalf("the pins were not seeded: %v", err)
	}
}

// A deploy whose runner died (a CI runner killed mid-deploy, its store
// gone with it) is finished by another process, from the record that
// travels with the site's lock: one that had not touched AWS ends failed
// with nothing changed, one that had updated the distribution ends live.
func TestAnotherProcessFinishesADeployWhoseRunnerDied(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	start := func(to string) releases.Deploy {
		t.Helper()
		cur, err := e.CDN.Current(ctx, e.Site)
		if err != nil {
			t.Fatal(err)
		}
		dead := time.Now().Add(-time.Hour)
		d := releases.Deploy{ID: releases.NewDeployID(dead), Site: "www", Kind: releases.KindPromote, Actor: "ci", From: cur.Version, FromPath: cur.Path,
			To: to, Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: dead}
		lock := releases.Lock{Site: "www", Holder: "ci", Reason: "promote " + to, DeployID: d.ID, Since: dead, Host: "ci-runner-7", PID: 4242, Heartbeat: dead}
		// No Process: the test writes the phases that dead runner would
		// have (a named other process's writes are fenced, as
		// TestARunnerTakenOverIsFenced shows).
		if err := p[0].Store.StartDeploy(ctx, d, lock); err != nil {
			t.Fatal(err)
		}
		return d
	}
	recoverIn := func(i int, d releases.Deploy, want releases.Phase) {
		t.Helper()
		done, err := p[i].RecoverSite(ctx, "www", nil)
		if err != nil || len(done) != 1 || done[0].ID != d.ID || done[0].Phase != want {
			t.Fatalf("recovery in process %d: %+v %v", i, done, err)
		}
		for i := range p {
			if l, err := p[i].Store.Lock(ctx, "www"); err != nil || l != nil {
				t.Fatalf("lock left: %+v %v", l, err)
			}
		}
	}

	// Died before touching AWS: the other process ends it, nothing changed.
	d := start("v1")
	recoverIn(1, d, releases.PhaseFailed)
	if cur, _ := e.CDN.Current(ctx, e.Site); cur.Version != "" {
		t.Fatalf("live after a deploy that never acted: %q", cur.Version)
	}

	// Died right after updating the distribution (its phase recorded
	// before it acted, as every deploy does): the other process finishes
	// the flip.
	d = start("v2")
	cur, _ := e.CDN.Current(ctx, e.Site)
	steps := e.CDN.Plan(e.Site, cur, "v2", d.ID)
	d.Phase = steps[0].Phase
	d.Phases = []releases.PhaseRecord{{Phase: steps[0].Phase, Started: d.StartedAt}}
	if err := p[0].Store.SaveDeploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := steps[0].Run(ctx); err != nil {
		t.Fatal(err)
	}
	recoverIn(1, d, releases.PhaseDone)
	if cur, _ := e.CDN.Current(ctx, e.Site); cur.Version != "v2" {
		t.Fatalf("live after the recovery: %q", cur.Version)
	}
}

// Every replica's schedule fires for the same planned time; exactly one
// claims the run, whichever processes race for it.
func TestAScheduledRunIsClaimedOnce(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	slot := time.Date(2030, 1, 2, 3, 0, 0, 0, time.UTC)
	for round, at := range []time.Time{slot, slot.Add(24 * time.Hour)} {
		var wg sync.WaitGroup
		var won atomic.Int32
		for i := range 10 {
			wg.Add(1)
			go func() {
				defer wg.Done()
				mine, err := p[i%2].Store.(*releases.SharedStore).ClaimRun(ctx, "www", "prune", at)
				if err != nil {
					t.Error(err)
				}
				if mine {
					won.Add(1)
				}
			}()
		}
		wg.Wait()
		if won.Load() != 1 {
			t.Fatalf("round %d: %d processes claimed the run", round, won.Load())
		}
	}
	if mine, _ := p[0].Store.(*releases.SharedStore).ClaimRun(ctx, "www", "prune", slot); mine {
		t.Fatal("an earlier run was claimed again")
	}
}

// A runner that another process took over (it was taken for gone while
// cut off, and the other claimed its lock) stops at its next heartbeat:
// it writes no phase, no end and no free to the shared lock, which stays
// the other's, and says it was handed over.
func TestARunnerTakenOverIsFenced(t *testing.T) {
	e, p := twoProcesses(t, 2*time.Second)
	ctx := context.Background()
	p[0].Heartbeat = 50 * time.Millisecond
	shared := p[0].Store.(*releases.SharedStore)
	started := make(chan releases.Deploy, 1)
	done := make(chan error, 1)
	go func() {
		_, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "ci"}, func(ev releases.Event) {
			if ev.Type == releases.EventPhaseStarted {
				select {
				case started <- ev.Deploy:
				default:
				}
			}
		})
		done <- err
	}()
	d := <-started

	// The other process's takeover, as its claim writes it: same deploy,
	// its own runner, a fresh heartbeat; read again when the runner's
	// heartbeat wrote in between, as a claim does.
	var newETag string
	for attempt := 0; ; attempt++ {
		body, etag, err := shared.State.GetState(ctx, e.Site, releases.StateLock)
		if err != nil {
			t.Fatal(err)
		}
		taken := strings.Replace(string(body), `"host":"host-a"`, `"host":"host-z"`, 1)
		var st map[string]any
		if err := json.Unmarshal([]byte(taken), &st); err != nil {
			t.Fatal(err)
		}
		lock := st["lock"].(map[string]any)
		if lock["deploy_id"] != d.ID {
			t.Fatalf("the lock names %v, not the running deploy %s", lock["deploy_id"], d.ID)
		}
		lock["process"], lock["pid"], lock["heartbeat"] = "other-replica", 9, time.Now().Add(time.Hour).UTC().Format(time.RFC3339Nano)
		delete(st, "write")
		takenBody, _ := json.Marshal(st)
		newETag, err = shared.State.PutState(ctx, e.Site, releases.StateLock, takenBody, etag)
		if errors.Is(err, releases.ErrStateChanged) && attempt < 20 {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		break
	}

	var err error
	select {
	case err = <-done:
	case <-time.After(30 * time.Second):
		t.Fatal("the taken-over runner did not stop")
	}
	if !errors.Is(err, releases.ErrFenced) || releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("want a handed-over refusal, got %v", err)
	}
	after, afterETag, err := shared.State.GetState(ctx, e.Site, releases.StateLock)
	if err != nil {
		t.Fatal(err)
	}
	if afterETag != newETag {
		t.Fatalf("the fenced runner wrote the lock after it was taken over:\n%s", after)
	}
	if got, err := p[0].Store.Deploy(ctx, "www", d.ID); err != nil || got.Phase.Final() {
		t.Fatalf("the fenced runner recorded an end of a deploy it no longer runs: %+v %v", got.Phase, err)
	}
}
