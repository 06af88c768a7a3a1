package releases_test

import (
	"context"
	"errors"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func TestShutdownLeavesDeployResumableAndRecoverFinishesIt(t *testing.T) {
	h := newHarness(t)
	h.publish("v1")
	h.cdn.block, h.cdn.blocked = make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancelCause(context.Background())
	var events []releases.EventType
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "a"},
			func(e releases.Event) { events = append(events, e.Type) })
		done <- err
	}()
	<-h.cdn.blocked
	cancel(releases.ErrShutdown)
	err := <-done
	if !errors.Is(err, releases.ErrShutdown) {
		t.Fatalf("promote during shutdown: %v", err)
	}
	if events[len(events)-1] != releases.EventDeployInterrupted {
		t.Fatalf("events %v", events)
	}
	ds, _ := h.db.Deploys(context.Background(), "www", 1)
	if ds[0].Phase != "wait" {
		t.Fatalf("interrupted deploy in phase %q, want wait", ds[0].Phase)
	}
	if l, _ := h.db.Lock(context.Background(), "www"); l == nil || l.DeployID != ds[0].ID {
		t.Fatalf("lock not kept for the resumable deploy: %+v", l)
	}
	h.cdn.block = nil
	recovered, err := h.svc.Recover(context.Background(), nil)
	if err != nil || len(recovered) != 1 || recovered[0].Phase != releases.PhaseDone {
		t.Fatalf("recover: %+v %v", recovered, err)
	}
	if l, _ := h.db.Lock(context.Background(), "www"); l != nil {
		t.Fatalf("lock after recovery: %+v", l)
	}
	if live, _, _ := h.db.Live(context.Background(), "www"); live.Version != "v1" {
		t.Fatalf("live %q", live.Version)
	}
}

func TestRecoverMarksUnfinishableDeployFailed(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	h.promote(t, "v1")
	d := releases.Deploy{ID: "zz-crashed", Site: "www", Kind: releases.KindPromote, Actor: "a", From: "v1", FromPath: "/www/v1", To: "v2", Phase: "flip"}
	if err := h.db.StartDeploy(context.Background(), d, releases.Lock{Site: "www", Holder: "a", DeployID: d.ID}); err != nil {
		t.Fatal(err)
	}
	recovered, err := h.svc.Recover(context.Background(), nil)
	if err != nil || len(recovered) != 1 {
		t.Fatalf("recover: %+v %v", recovered, err)
	}
	if r := recovered[0]; r.Phase != releases.PhaseFailed || r.Error == "" {
		t.Fatalf("deploy %+v", r)
	}
	if l, _ := h.db.Lock(context.Background(), "www"); l != nil {
		t.Fatalf("lock after failed recovery: %+v", l)
	}
	if live, _, _ := h.db.Live(context.Background(), "www"); live.Version != "v1" {
		t.Fatalf("live %q", live.Version)
	}
}

func TestReconcileRecordsDriftAndNewReleases(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	h.promote(t, "v1")
	h.publish("v3")
	h.cdn.path = "/www/v2"
	res, err := h.svc.Reconcile(context.Background(), "www")
	if err != nil {
		t.Fatal(err)
	}
	added := map[string]bool{}
	for _, r := range res.Added {
		added[r.Version] = true
	}
	if !res.Drift || res.Live != "v2" || res.Recorded != "v1" || len(res.Added) != 2 || !added["v3"] || !added["v2"] {
		t.Fatalf("reconcile %+v", res)
	}
	if live, _, _ := h.db.Live(context.Background(), "www"); live.Version != "v2" {
		t.Fatalf("live after reconcile %q", live.Version)
	}
	res, _ = h.svc.Reconcile(context.Background(), "www")
	if res.Drift || len(res.Added) != 0 {
		t.Fatalf("second reconcile %+v", res)
	}
}

// Recovery never takes over a deploy that is alive: one this process runs
// (through any Service), or one whose runner elsewhere keeps its heartbeat.
func TestRecoverLeavesLiveRunnersAlone(t *testing.T) {
	h := newHarness(t)
	h.publish("v1")
	done := h.promoteHeld("v1", "a")
	// A second service over the same store, as a second process would be.
	other := &releases.Service{Store: h.db, Bucket: h.bucket, CDNs: h.svc.CDNs, Sites: h.svc.Sites, Host: "elsewhere", PID: 7, Now: h.svc.Now}
	if _, err := other.RecoverSite(context.Background(), "www", nil); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("recover of a running deploy: %v", err)
	}
	if got, err := other.Recover(context.Background(), nil); err != nil || len(got) != 0 {
		t.Fatalf("serve's recovery took over a running deploy: %+v %v", got, err)
	}
	close(h.cdn.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}
