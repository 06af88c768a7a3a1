package releases_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/probe"
	"github.com/deploybot/deploybot/releases"
)

// healthSite serves "ok <origin path>" with status 200, except for the
// origin paths in bad, and as many 502s first as flaky says.
func healthSite(t *testing.T, h *harness, bad map[string]bool, flaky *atomic.Int32) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h.cdn.mu.Lock()
		path := h.cdn.path
		h.cdn.mu.Unlock()
		if flaky != nil && flaky.Add(-1) >= 0 {
			http.Error(w, "flaky", http.StatusBadGateway)
			return
		}
		if bad[path] {
			http.Error(w, "broken build", http.StatusInternalServerError)
			return
		}
		w.Write([]byte("ok " + path))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

func withHealth(h *harness, url string) {
	h.svc.Sites[0].Health = releases.HealthPolicy{Checks: []releases.HealthCheck{{URL: url + "/", Contains: "ok"}},
		Settle: 5 * time.Second, Interval: time.Second, Failures: 2}
	h.svc.Prober = &probe.HTTP{}
	h.svc.After = func(time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
}

func TestFailedHealthChecksRollBackAndLock(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.publish("v1", "v2")
	withHealth(h, healthSite(t, h, map[string]bool{"/www/v2": true}, nil))
	out := h.promote(t, "v1")
	if ps := out.Deploy.Phases; ps[len(ps)-1].Phase != releases.PhaseHealth || out.Deploy.Phase != releases.PhaseDone {
		t.Fatalf("healthy promote: %+v", out.Deploy)
	}
	var events []string
	var lockAtEnd *releases.Lock
	_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, func(e releases.Event) {
		events = append(events, string(e.Type)+" "+string(e.Deploy.Kind)+" "+e.Deploy.To)
		if e.Type == releases.EventDeployFinished && e.Deploy.Kind == releases.KindRollback {
			// The rollback is recorded as finished: from that moment the
			// site must already be locked, or someone could promote v2
			// again before the lock is taken.
			lockAtEnd, _ = h.db.Lock(ctx, "www")
		}
	})
	if err == nil || releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "rolled back to v1 automatically") ||
		!strings.Contains(err.Error(), "answered 500, want 200") {
		t.Fatalf("promote of a broken release: %v", err)
	}
	ds, _ := h.db.Deploys(ctx, "www", 3)
	if ds[0].Kind != releases.KindRollback || ds[0].To != "v1" || ds[0].Phase != releases.PhaseDone || ds[0].Actor != releases.AutoActor || !strings.Contains(ds[0].Reason, "auto-rollback") {
		t.Fatalf("the automatic rollback: %+v", ds[0])
	}
	if ds[1].To != "v2" || ds[1].Phase != releases.PhaseFailed || !strings.Contains(ds[1].Error, "health check") {
		t.Fatalf("the failed promote: %+v", ds[1])
	}
	if live, _, _ := h.db.Live(ctx, "www"); live.Version != "v1" || h.cdn.path != "/www/v1" {
		t.Fatalf("live %q, origin path %s", live.Version, h.cdn.path)
	}
	l, _ := h.db.Lock(ctx, "www")
	if l == nil || l.Holder != releases.AutoActor || !strings.HasPrefix(l.Reason, "auto-rollback") || l.DeployID != "" || !l.Since.Equal(ds[0].FinishedAt) {
		t.Fatalf("lock after the automatic rollback: %+v", l)
	}
	if lockAtEnd == nil || *lockAtEnd != *l {
		t.Fatalf("when the rollback was recorded as finished the lock was %+v, want %+v", lockAtEnd, l)
	}
	if _, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "bob"}, nil); err == nil || !strings.Contains(err.Error(), "auto-rollback") {
		t.Fatalf("promote while locked by the auto-rollback: %v", err)
	}
	// The thread hears both deploys: the promote failing, then the rollback.
	joined := strings.Join(events, "\n")
	for _, want := range []string{"phase_failed promote v2", "deploy_failed promote v2", "deploy_started rollback v1", "deploy_finished rollback v1"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("events lack %q:\n%s", want, joined)
		}
	}
}

func TestOneFailedCheckIsNotARollback(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	var flaky atomic.Int32
	withHealth(h, healthSite(t, h, nil, &flaky))
	h.promote(t, "v1")
	flaky.Store(1)
	out := h.promote(t, "v2")
	if out.Deploy.Phase != releases.PhaseDone {
		t.Fatalf("one 502 rolled the site back: %+v", out.Deploy)
	}
	if l, _ := h.db.Lock(context.Background(), "www"); l != nil {
		t.Fatalf("lock %+v", l)
	}
}

func TestFailedHealthOnTheFirstReleaseLocksWithoutRollback(t *testing.T) {
	h := newHarness(t)
	h.publish("v1")
	withHealth(h, healthSite(t, h, map[string]bool{"/www/v1": true}, nil))
	_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil)
	want := fmt.Sprintf("v1 failed its health checks (health check %s failed 2 time(s) in a row: answered 500, want 200); "+
		"there is no earlier release to roll back to, so v1 stays live; the site is locked (auto-rollback) until someone unlocks it",
		h.svc.Sites[0].Health.Checks[0].URL)
	var herr *releases.HealthError
	if err == nil || err.Error() != want || !errors.As(err, &herr) {
		t.Fatalf("got  %v\nwant %s", err, want)
	}
	if l, _ := h.db.Lock(context.Background(), "www"); l == nil || l.Holder != releases.AutoActor {
		t.Fatalf("lock %+v", l)
	}
}

// A rollback that fails half way still leaves the site locked, taken as
// the failed rollback is recorded.
func TestFailedAutomaticRollbackStillLocks(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.publish("v1", "v2")
	withHealth(h, healthSite(t, h, map[string]bool{"/www/v2": true}, nil))
	h.promote(t, "v1")
	// From v2's health checks on, every deploy fails while waiting for
	// the CDN: the automatic rollback flips back and then fails.
	settle := h.svc.After
	h.svc.After = func(d time.Duration) <-chan time.Time {
		h.cdn.failAt = "wait"
		return settle(d)
	}
	_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
	if err == nil || !strings.Contains(err.Error(), "v2 failed its health checks") || !strings.Contains(err.Error(), ", and the automatic rollback to v1 failed: ") ||
		!strings.Contains(err.Error(), "; live now: v1; the site is locked (auto-rollback) until someone unlocks it") || strings.Contains(err.Error(), "<nil>") {
		t.Fatalf("promote: %v", err)
	}
	ds, _ := h.db.Deploys(ctx, "www", 1)
	if ds[0].Kind != releases.KindRollback || ds[0].Phase != releases.PhaseFailed || ds[0].LockAfter == nil {
		t.Fatalf("the automatic rollback: %+v", ds[0])
	}
	l, _ := h.db.Lock(ctx, "www")
	if l == nil || l.Holder != releases.AutoActor || !strings.HasPrefix(l.Reason, "auto-rollback") || l.DeployID != "" || !l.Since.Equal(ds[0].FinishedAt) {
		t.Fatalf("lock after a failed automatic rollback: %+v", l)
	}
	if _, err := h.svc.UnlockSite(ctx, "www", "bob"); err != nil {
		t.Fatalf("a person cannot free the auto-rollback lock: %v", err)
	}
}

// settle: 0s is one round of checks, and a failing streak at the end of
// settle is tried again until it passes or reaches failures: the last
// probe decides, not the clock.
func TestZeroSettleIsOneRoundAndTheLastProbeDecides(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2", "v3")
	var flaky atomic.Int32
	withHealth(h, healthSite(t, h, map[string]bool{"/www/v3": true}, &flaky))
	h.svc.Sites[0].Health.Settle = 0
	h.promote(t, "v1")
	flaky.Store(1) // the first probe after the flip fails, the retry passes
	if out := h.promote(t, "v2"); out.Deploy.Phase != releases.PhaseDone {
		t.Fatalf("one 502 with settle 0 failed the deploy: %+v", out.Deploy)
	}
	if probes := 1 - flaky.Load(); probes != 2 {
		t.Fatalf("%d probes, want exactly 2 (the failure and its retry)", probes)
	}
	_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v3", Actor: "alice"}, nil)
	if !strings.Contains(fmt.Sprint(err), "rolled back to v2 automatically") {
		t.Fatalf("a release failing every probe with settle 0: %v", err)
	}
}
