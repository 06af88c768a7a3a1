package server_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

type recorder struct {
	mu     sync.Mutex
	prunes []*releases.PruneReport
	lives  int
}

func (r *recorder) ReleaseRecorded(context.Context, releases.Site, releases.Release, string) {}
func (r *recorder) LiveChanged(context.Context, releases.Site) {
	r.mu.Lock()
	r.lives++
	r.mu.Unlock()
}

func (r *recorder) liveChanges() int { r.mu.Lock(); defer r.mu.Unlock(); return r.lives }
func (r *recorder) PruneFinished(_ context.Context, _ releases.Site, rep *releases.PruneReport, _ error) {
	r.mu.Lock()
	r.prunes = append(r.prunes, rep)
	r.mu.Unlock()
}

func (r *recorder) count() int { r.mu.Lock(); defer r.mu.Unlock(); return len(r.prunes) }

func TestScheduledPruneRunsAtTheCronTimeInItsTimeZone(t *testing.T) {
	e := newEnv(t)
	// The releases are published at 10:00 UTC on the fixtures' day; the
	// schedule's clock stays there, while the service judges ages a day on,
	// so all four are older than min_age.
	now := e.clk.Now()
	e.publish("v1", "v2", "v3", "v4")
	e.Service.Sites[0].Retention = releases.Policy{Keep: 2, KeepDeployed: 1, MinAge: time.Hour}
	rec := &recorder{}
	e.srv.Notifier = rec
	e.srv.Now = func() time.Time { return now }
	e.Service.Now = func() time.Time { return now.Add(24 * time.Hour) }
	sched, err := config.ParseCron("0 3 * * *")
	if err != nil {
		t.Fatal(err)
	}
	tokyo, _ := time.LoadLocation("Asia/Tokyo")
	e.srv.Schedules = []server.Schedule{{Site: "www", Cron: sched, Location: tokyo}}
	// The clock: the first wait fires at once (and says how long it was
	// asked to be); later ones never fire.
	waits := make(chan time.Duration, 10)
	fired := false
	var mu sync.Mutex
	e.srv.After = func(d time.Duration) <-chan time.Time {
		waits <- d
		mu.Lock()
		defer mu.Unlock()
		c := make(chan time.Time, 1)
		if !fired {
			fired = true
			c <- now.Add(d)
		}
		return c
	}
	e.start()
	if d := <-waits; d != 8*time.Hour {
		t.Fatalf("waited %s for 03:00 in Tokyo from 10:00 UTC, want 8h", d)
	}
	e.eventually("the scheduled prune", func() bool { return rec.count() == 1 })
	rep := rec.prunes[0]
	if rep.Actor != "schedule" || len(rep.Deleted) != 2 {
		t.Fatalf("scheduled prune report %+v", rep)
	}
	rs, _ := e.Store.Releases(context.Background(), "www")
	pruned := 0
	for _, r := range rs {
		if r.Pruned {
			pruned++
		}
	}
	if pruned != 2 {
		t.Fatalf("%d releases pruned, want 2", pruned)
	}
	audit, _ := e.Store.Audit(context.Background(), "www", 1)
	if len(audit) != 1 || audit[0].Action != "prune" || audit[0].Actor != "schedule" {
		t.Fatalf("audit %+v", audit)
	}
}

func TestPruneSkipsWhileADeployRuns(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	e.start()
	ctx := context.Background()
	cs := e.named(map[string][]releases.Role{"alice": {releases.RoleDeployer}})
	go func() {
		_, _ = cs["alice"].Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice"}, nil)
	}()
	e.eventually("the deploy to hold the lock", func() bool { l, _ := e.Store.Lock(ctx, "www"); return l != nil })
	rep, err := e.client().Prune(ctx, releases.PruneRequest{Site: "www", Actor: "bob"})
	if err != nil || rep.Skipped == "" || !strings.Contains(rep.Skipped, "alice") {
		t.Fatalf("prune during a deploy: %+v %v", rep, err)
	}
	e.flow()
	e.eventually("the deploy to finish", func() bool { l, _ := e.Store.Lock(ctx, "www"); return l == nil })
	if _, err := e.client().PinRelease(ctx, "www", "v2", "bob", "audit"); err != nil {
		t.Fatal(err)
	}
	if err := e.client().UnpinRelease(ctx, "www", "v2", "ci"); err != nil {
		t.Fatal(err)
	}
	if err := e.client().UnpinRelease(ctx, "www", "v2", "ci"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("second unpin: %v", err)
	}
}

func TestLockAndUnlockThroughTheAPI(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	ctx := context.Background()
	// The API records its caller as the token's name: what the caller
	// types ("carol") is a label in the audit log, not who holds the lock.
	l, err := e.client().LockSite(ctx, "www", "carol", "freeze for the launch")
	if err != nil || l.Holder != "token:api" || l.Reason != "freeze for the launch" {
		t.Fatalf("lock: %+v %v", l, err)
	}
	_, err = e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "dave"}, nil)
	if err == nil || !strings.Contains(err.Error(), "locked by token:api") {
		t.Fatalf("promote while locked: %v", err)
	}
	if _, err := e.client().LockSite(ctx, "www", "dave", "mine"); err == nil {
		t.Fatal("a second lock was granted")
	}
	if _, err := e.client().LockSite(ctx, "www", "dave", ""); err == nil {
		t.Fatal("a lock without a reason was granted")
	}
	got, err := e.client().UnlockSite(ctx, "www", "dave")
	if err != nil || got == nil || got.Holder != "token:api" {
		t.Fatalf("unlock: %+v %v", got, err)
	}
	if got, err := e.client().UnlockSite(ctx, "www", "dave"); err != nil || got != nil {
		t.Fatalf("second unlock: %+v %v", got, err)
	}
	audit, _ := e.Store.Audit(ctx, "www", 10)
	var actions []string
	for _, a := range audit {
		actions = append(actions, a.Action+":"+a.Actor+":"+a.Label+":"+a.Result)
	}
	if j := strings.Join(actions, " "); !strings.Contains(j, "lock:token:api:carol:ok") || !strings.Contains(j, "unlock:token:api:dave:ok") {
		t.Fatalf("audit %s", j)
	}
}
