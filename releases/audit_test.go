package releases_test

import (
	"context"
	"errors"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/probe"
	"github.com/deploybot/deploybot/releases"
)

// lastAudit is the site's newest audit entry.
func lastAudit(t *testing.T, h *harness) releases.AuditEntry {
	t.Helper()
	es, err := h.svc.History(context.Background(), "www", 1)
	if err != nil || len(es) != 1 {
		t.Fatalf("history: %v %v", es, err)
	}
	return es[0]
}

// A deploy that started and failed is "failed", whatever the code of the
// error that failed it (AWS's refusals are ECONFLICT or EINVALID): a
// refusal is a deploy that never started.
func TestFailedDeployIsRecordedFailed(t *testing.T) {
	for _, code := range []string{releases.ECONFLICT, releases.EINVALID, releases.EINTERNAL} {
		t.Run(code, func(t *testing.T) {
			h := newHarness(t)
			h.publish("v1", "v2")
			h.promote(t, "v1")
			h.cdn.failAt, h.cdn.failErr = "wait", releases.Errorf(code, "the distribution said no")
			_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
			if err == nil {
				t.Fatal("the promote did not fail")
			}
			if e := lastAudit(t, h); e.Action != "promote" || e.Result != releases.ResultFailed || !strings.Contains(e.Detail, "the distribution said no") {
				t.Fatalf("audit %+v, want promote failed with the reason", e)
			}
		})
	}
}

// A deploy stopped by a shutdown is "interrupted", once; its recovery is
// "resumed", then its outcome.
func TestShutdownThenRecoverIsRecordedAsItHappened(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	h.promote(t, "v1")
	h.cdn.block, h.cdn.blocked = make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Promote(releases.WithDoor(ctx, releases.DoorCLI), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
		done <- err
	}()
	<-h.cdn.blocked
	cancel(releases.ErrShutdown)
	if err := <-done; !errors.Is(err, releases.ErrShutdown) {
		t.Fatalf("promote during shutdown: %v", err)
	}
	if e := lastAudit(t, h); e.Result != releases.ResultInterrupted || !strings.Contains(e.Detail, "phase wait") || e.Door != releases.DoorCLI {
		t.Fatalf("audit of the interrupted deploy %+v", e)
	}
	h.cdn.block = nil
	if _, err := h.svc.Recover(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	want := "alice:promote:ok alice:promote:interrupted deploybot:promote:resumed alice:promote:ok"
	if got := auditTrail(t, h); got != want {
		t.Fatalf("audit trail\n %s\nwant\n %s", got, want)
	}
	if e := lastAudit(t, h); e.Door != releases.DoorSchedule || !strings.Contains(e.Detail, "v2") {
		t.Fatalf("the outcome of the recovery %+v", e)
	}
}

// A deploy whose process was killed (kill -9) wrote nothing more; the
// recovery records it as interrupted (for its actor, through its door),
// resumed (by whoever recovers), and how it ended.
func TestKilledDeployIsRecordedInterruptedResumedAndItsOutcome(t *testing.T) {
	for _, c := range []struct {
		name    string
		flipped bool
		want    string
	}{
		{"flipped", true, "alice:promote:ok bob:promote:interrupted carol:promote:resumed bob:promote:ok"},
		{"not flipped", false, "alice:promote:ok bob:promote:interrupted bob:promote:failed"},
	} {
		t.Run(c.name, func(t *testing.T) {
			h := newHarness(t)
			h.publish("v1", "v2")
			h.promote(t, "v1")
			ctx := context.Background()
			if c.flipped {
				h.cdn.path = "/www/v2"
			}
			d := releases.Deploy{ID: "zz-killed", Site: "www", Kind: releases.KindPromote, Actor: "bob", Door: releases.DoorSlack,
				From: "v1", FromPath: "/www/v1", To: "v2", Phase: "wait", StartedAt: h.now}
			if err := h.db.StartDeploy(ctx, d, releases.Lock{Site: "www", Holder: "bob", DeployID: d.ID}); err != nil {
				t.Fatal(err)
			}
			carol := releases.WithDoor(releases.WithPrincipal(ctx, releases.Principal{Kind: releases.PrincipalAWS, ID: "carol"}), releases.DoorCLI)
			if _, err := h.svc.RecoverSite(carol, "www", nil); err != nil && c.flipped {
				t.Fatal(err)
			}
			if got := auditTrail(t, h); got != c.want {
				t.Fatalf("audit trail\n %s\nwant\n %s", got, c.want)
			}
			es, _ := h.svc.History(ctx, "www", 0)
			for _, e := range es {
				if e.Result == releases.ResultInterrupted && (e.Door != releases.DoorSlack || !strings.Contains(e.Detail, "phase wait")) {
					t.Fatalf("the interruption is recorded as %+v; want the deploy's door and phase", e)
				}
			}
			// A second recovery has nothing to do and records nothing.
			if _, err := h.svc.RecoverSite(carol, "www", nil); err != nil {
				t.Fatal(err)
			}
			if got := auditTrail(t, h); got != c.want {
				t.Fatalf("a second recover wrote %s", got)
			}
		})
	}
}

// The command line, which nothing restarts, ends the record of a deploy
// stopped after its flip: the release is live, the lock is free, and the
// record says it was interrupted, not that it is still running.
func TestStopAfterTheFlipEndsTheRecordOnTheCommandLine(t *testing.T) {
	h := newHarness(t)
	h.svc.EndOnStop = true
	h.publish("v1", "v2")
	h.promote(t, "v1")
	h.cdn.block, h.cdn.blocked = make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
		done <- err
	}()
	<-h.cdn.blocked
	cancel(releases.ErrShutdown)
	err := <-done
	if !errors.Is(err, releases.ErrShutdown) || !strings.Contains(releases.ErrorMessage(err), "live now: v2") || strings.Contains(releases.ErrorMessage(err), "recover") {
		t.Fatalf("the stop says %v", err)
	}
	bg := context.Background()
	if l, _ := h.db.Lock(bg, "www"); l != nil {
		t.Fatalf("the site is still locked: %+v", l)
	}
	if live, _, _ := h.db.Live(bg, "www"); live.Version != "v2" {
		t.Fatalf("recorded live %q, want v2", live.Version)
	}
	ds, _ := h.db.Deploys(bg, "www", 1)
	if !ds[0].Phase.Final() || !strings.Contains(ds[0].Error, "wait") {
		t.Fatalf("the deploy's record %+v", ds[0])
	}
	// Ended here, not left for recovery: failed (its detail says it was
	// stopped), since "interrupted" promises a resume and its outcome.
	if e := lastAudit(t, h); e.Result != releases.ResultFailed || !strings.Contains(e.Detail, "stopped") {
		t.Fatalf("audit %+v", e)
	}
	if got, err := h.svc.Recover(bg, nil); err != nil || len(got) != 0 {
		t.Fatalf("left something to recover: %v %v", got, err)
	}
}

// versions and status say the same release is live while a deploy that
// flipped waits for recovery.
func TestVersionsAndStatusAgreeDuringAnInterruptedDeploy(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	h.promote(t, "v1")
	h.cdn.path = "/www/v2"
	ctx := context.Background()
	d := releases.Deploy{ID: "zz-killed", Site: "www", Kind: releases.KindPromote, Actor: "bob", From: "v1", FromPath: "/www/v1", To: "v2", Phase: "wait", StartedAt: h.now}
	if err := h.db.StartDeploy(ctx, d, releases.Lock{Site: "www", Holder: "bob", DeployID: d.ID}); err != nil {
		t.Fatal(err)
	}
	st, err := h.svc.Status(ctx, "www")
	if err != nil || st.Live == nil {
		t.Fatalf("status %+v %v", st, err)
	}
	vs, err := h.svc.Versions(ctx, "www")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Live != (v.Version == *st.Live) {
			t.Fatalf("status says %s is live; versions says %s live=%v", *st.Live, v.Version, v.Live)
		}
	}
}

// A freeze's record says when it ends, not what was typed ("2h" means
// nothing a day later).
func TestFreezeRecordSaysWhenItEnds(t *testing.T) {
	h := newHarness(t)
	fs, err := h.svc.Freeze(context.Background(), releases.FreezeRequest{Site: "www", Until: "2h", Reason: "launch", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	e := lastAudit(t, h)
	if want := "until " + fs[0].Until.UTC().Format(time.RFC3339); !strings.Contains(e.Detail, want) || strings.Contains(e.Detail, "2h") {
		t.Fatalf("freeze recorded as %q, want %q", e.Detail, want)
	}
}

// A prune that finds a deploy running did nothing: refused, in the one
// vocabulary.
func TestSkippedPruneIsRecordedRefused(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	done := h.promoteHeld("v1", "alice")
	rep, err := h.svc.Prune(context.Background(), releases.PruneRequest{Site: "www", Actor: "bob"})
	if err != nil || rep.Skipped == "" {
		t.Fatalf("prune during a deploy: %+v %v", rep, err)
	}
	close(h.cdn.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	es, _ := h.svc.History(context.Background(), "www", 0)
	for _, e := range es {
		if e.Action == "prune" && e.Result != releases.ResultRefused {
			t.Fatalf("the skipped prune is recorded %+v", e)
		}
	}
}

// A url nothing answers at (connection refused on every probe; a name
// that does not resolve) ends the visible phase within a minute, saying
// why and what to check, not at the phase's 10-minute bound.
func TestVisiblePhaseGivesUpOnAnAddressThatCannotBeReached(t *testing.T) {
	h, _ := visibleHarness(t)
	h.promote(t, "v1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close() // nothing listens there now: connection refused
	h.svc.Sites[0].URL = "http://" + addr + "/"
	h.svc.EdgeProber = &probe.HTTP{}
	h.svc.VisibleTimeout = 10 * time.Minute
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
	if err == nil {
		t.Fatal("the visible phase passed with nothing answering")
	}
	msg := releases.ErrorMessage(err)
	if !strings.Contains(msg, "cannot be reached") || !strings.Contains(msg, "sites[].url") {
		t.Fatalf("the failure says %q; want why and what to check", msg)
	}
	vis := out.Deploy.Phases[len(out.Deploy.Phases)-1]
	if vis.Phase != releases.PhaseVisible || vis.Ended.Sub(vis.Started) > time.Minute {
		t.Fatalf("the visible phase ran %s (%+v), want under a minute", vis.Ended.Sub(vis.Started), vis)
	}
}

// A dry run and the prune after it print the same numbers: one plan,
// measured from the bucket (a release's folder holds the files it carried
// from an earlier one too, which its record does not count).
func TestPruneDryRunAndPruneShareOnePlan(t *testing.T) {
	h := newHarness(t)
	h.svc.Sites[0].Retention = releases.Policy{Keep: 1, KeepDeployed: 1, MinAge: time.Millisecond}
	h.publish("v1", "v2", "v3")
	h.bucket.manifests["v2"].Carried = []releases.ManifestFile{{Path: "assets/old.js", Size: 16}, {Path: "assets/old.css", Size: 16}}
	h.promote(t, "v3")
	h.now = h.now.Add(time.Hour) // every release older than min_age
	ctx := context.Background()
	dry, err := h.svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "alice", DryRun: true})
	if err != nil {
		t.Fatal(err)
	}
	real, err := h.svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	if len(real.Deleted) != 2 || real.Objects != 4 || real.Bytes != 52 {
		t.Fatalf("prune deleted %+v: %d objects, %d bytes; want v1 and v2, 4 objects, 52 bytes", real.Deleted, real.Objects, real.Bytes)
	}
	if dry.Objects != real.Objects || dry.Bytes != real.Bytes || len(dry.Deleted) != len(real.Deleted) {
		t.Fatalf("the dry run said %d release(s), %d objects, %d bytes; the prune did %d, %d, %d",
			len(dry.Deleted), dry.Objects, dry.Bytes, len(real.Deleted), real.Objects, real.Bytes)
	}
	for i := range dry.Deleted {
		if dry.Deleted[i] != real.Deleted[i] {
			t.Fatalf("release %d: dry run %+v, prune %+v", i, dry.Deleted[i], real.Deleted[i])
		}
	}
}

// What recovery and reconcile change is recorded: a recover refused
// because the deploy runs, the lock of a killed prune released, drift
// found and recorded. A recover with nothing to do records nothing.
func TestRecoverAndDriftAreRecorded(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	ctx := context.Background()
	if _, err := h.svc.RecoverSite(ctx, "www", nil); err != nil {
		t.Fatal(err)
	}
	if es, _ := h.svc.History(ctx, "www", 0); len(es) != 0 {
		t.Fatalf("a recover with nothing to do recorded %+v", es)
	}
	done := h.promoteHeld("v1", "alice")
	other := &releases.Service{Store: h.db, Bucket: h.bucket, CDNs: h.svc.CDNs, Sites: h.svc.Sites, Host: "elsewhere", PID: 7, Now: h.svc.Now}
	if _, err := other.RecoverSite(ctx, "www", nil); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("recover of a running deploy: %v", err)
	}
	if e := lastAudit(t, h); e.Action != "recover" || e.Result != releases.ResultRefused {
		t.Fatalf("the refused recover is recorded %+v", e)
	}
	close(h.cdn.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}

	if err := h.db.AcquireLock(ctx, releases.Lock{Site: "www", Holder: "bob", Reason: "pruning old releases", DeployID: "prune:p1"}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.RecoverSite(ctx, "www", nil); err != nil {
		t.Fatal(err)
	}
	if e := lastAudit(t, h); e.Action != "recover" || e.Result != releases.ResultOK || !strings.Contains(e.Detail, "prune:p1") {
		t.Fatalf("the released prune lock is recorded %+v", e)
	}

	h.cdn.path = "/www/v2" // flipped by hand
	if _, err := h.svc.Reconcile(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	e := lastAudit(t, h)
	if e.Action != "reconcile" || e.Result != releases.ResultOK || e.Actor != releases.AutoActor || e.Door != releases.DoorSchedule ||
		!strings.Contains(e.Detail, "v2") || !strings.Contains(e.Detail, "v1") {
		t.Fatalf("the drift is recorded %+v", e)
	}
}

// What changes nothing is not recorded (an unlock of a free site); a
// prune that could not start is, as refused.
func TestNoOpsAreNotRecordedSkippedPrunesAre(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	if _, err := h.svc.LockSite(ctx, "www", "alice", "maintenance"); err != nil {
		t.Fatal(err)
	}
	for range 2 {
		if _, err := h.svc.UnlockSite(ctx, "www", "alice"); err != nil {
			t.Fatal(err)
		}
	}
	rep, err := h.svc.PruneSkipped(ctx, releases.PruneRequest{Site: "www", Actor: "bob", DryRun: true}, "another prune of this site is running")
	if err != nil || rep.Skipped == "" {
		t.Fatalf("report %+v, %v", rep, err)
	}
	entries, err := h.svc.History(ctx, "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Action+":"+e.Result)
	}
	if strings.Join(got, " ") != "prune --dry-run:refused unlock:ok lock:ok" {
		t.Fatalf("history %v", got)
	}
}
