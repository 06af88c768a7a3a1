package releases_test

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

func TestPromoteRecordsPhasesAndEvents(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	var events []releases.EventType
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice", Reason: "ship"},
		func(e releases.Event) { events = append(events, e.Type) })
	if err != nil {
		t.Fatal(err)
	}
	want := []releases.EventType{releases.EventDeployStarted, releases.EventPhaseStarted, releases.EventPhaseFinished,
		releases.EventPhaseStarted, releases.EventPhaseFinished, releases.EventDeployFinished}
	if fmt.Sprint(events) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", events, want)
	}
	d, err := h.db.Deploy(context.Background(), "www", out.Deploy.ID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Phase != releases.PhaseDone || len(d.Phases) != 2 || d.Phases[1].Ended.IsZero() || d.Reason != "ship" || d.Actor != "alice" || d.From != "" || d.To != "v1" {
		t.Fatalf("deploy record %+v", d)
	}
	live, ok, _ := h.db.Live(context.Background(), "www")
	if !ok || live.Version != "v1" || live.DeployID != d.ID {
		t.Fatalf("live %+v", live)
	}
	if l, _ := h.db.Lock(context.Background(), "www"); l != nil {
		t.Fatalf("lock left behind: %+v", l)
	}
}

func TestPromoteRefusals(t *testing.T) {
	h := newHarness(t)
	h.publish("v1")
	h.promote(t, "v1")
	ctx := context.Background()
	cases := []struct {
		name string
		req  releases.PromoteRequest
		code string
	}{
		{"malformed", releases.PromoteRequest{Site: "www", Version: "../etc", Actor: "a"}, releases.EINVALID},
		{"unknown site", releases.PromoteRequest{Site: "nope", Version: "v1", Actor: "a"}, releases.EINVALID},
		{"no manifest", releases.PromoteRequest{Site: "www", Version: "v9", Actor: "a"}, releases.ENOTFOUND},
		{"no actor", releases.PromoteRequest{Site: "www", Version: "v1"}, releases.EINVALID},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := h.svc.Promote(ctx, c.req, nil)
			if got := releases.ErrorCode(err); got != c.code {
				t.Fatalf("code %q (%v), want %q", got, err, c.code)
			}
		})
	}
	if h.cdn.flips != 1 {
		t.Fatalf("refusals flipped the CDN: %d flips", h.cdn.flips)
	}
	out := h.promote(t, "v1")
	if !out.AlreadyLive || out.Deploy != nil {
		t.Fatalf("promote of the live release: %+v", out)
	}
}

func TestSecondDeployRefusedNamingTheFirst(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2", "v3")
	done := h.promoteHeld("v1", "alice")
	_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "bob"}, nil)
	var le *releases.LockedError
	if !errors.As(err, &le) || le.Lock.Holder != "alice" || le.Lock.DeployID == "" {
		t.Fatalf("second promote: %v", err)
	}
	if releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("code %s", releases.ErrorCode(err))
	}
	close(h.cdn.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

func TestFailedDeployRecordsTruthAndIsNoRollbackTarget(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2", "v3")
	h.promote(t, "v1")
	h.promote(t, "v2")
	h.cdn.failAt = "wait" // fails after the flip
	_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v3", Actor: "alice"}, nil)
	if err == nil {
		t.Fatal("injected failure not reported")
	}
	ds, _ := h.db.Deploys(context.Background(), "www", 1)
	if ds[0].Phase != releases.PhaseFailed || ds[0].Error == "" || ds[0].Phases[len(ds[0].Phases)-1].Phase != "wait" {
		t.Fatalf("failed deploy record %+v", ds[0])
	}
	// The flip happened, so v3 is what is served and recorded as live.
	if live, _, _ := h.db.Live(context.Background(), "www"); live.Version != "v3" {
		t.Fatalf("live %q after a failure past the flip", live.Version)
	}
	if l, _ := h.db.Lock(context.Background(), "www"); l != nil {
		t.Fatalf("lock left behind after failure: %+v", l)
	}
	h.cdn.failAt = ""
	target, err := h.svc.RollbackTarget(context.Background(), "www")
	if err != nil || target != "v2" {
		t.Fatalf("rollback target %q %v, want v2", target, err)
	}
	// A failure before the flip leaves the live pointer alone.
	h.cdn.failAt = "flip"
	if _, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v1", Actor: "a"}, nil); err == nil {
		t.Fatal("no error")
	}
	if live, _, _ := h.db.Live(context.Background(), "www"); live.Version != "v3" {
		t.Fatalf("live %q after a failure before the flip", live.Version)
	}
}

func TestRollbackWalksBack(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2", "v3")
	ctx := context.Background()
	if _, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "a"}, nil); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("rollback with no history: %v", err)
	}
	h.promote(t, "v1")
	h.promote(t, "v2")
	h.promote(t, "v3")
	steps := []string{"v2", "v1"}
	for _, want := range steps {
		out, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "a", Reason: "bad"}, nil)
		if err != nil {
			t.Fatal(err)
		}
		if out.Deploy.To != want || out.Deploy.Kind != releases.KindRollback {
			t.Fatalf("rollback went to %s (%s), want %s", out.Deploy.To, out.Deploy.Kind, want)
		}
	}
	if _, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "a"}, nil); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("rollback past the first release: %v", err)
	}
	// A named version goes only back: v3 is newer than the live v1.
	if _, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Version: "v3", Actor: "a"}, nil); releases.ErrorCode(err) != releases.ECONFLICT ||
		!strings.Contains(releases.ErrorMessage(err), "newer than the live v1") {
		t.Fatalf("a rollback forward: %v", err)
	}
	h.promote(t, "v3")
	out, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Version: "v1", Actor: "a"}, nil)
	if err != nil || out.Deploy.To != "v1" {
		t.Fatalf("named rollback: %+v %v", out, err)
	}
}

func TestRollbackSkipsPrunedReleases(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2", "v3")
	h.promote(t, "v1")
	h.promote(t, "v2")
	h.promote(t, "v3")
	delete(h.bucket.manifests, "v2")
	if target, err := h.svc.RollbackTarget(context.Background(), "www"); err != nil || target != "v1" {
		t.Fatalf("target %q %v, want v1 (v2 pruned)", target, err)
	}
}

// Versions answers from the store; Sync records what the bucket has, and
// SyncIfStale lists the bucket at most once per period.
func TestVersionsAnswerFromTheStoreSyncFillsIt(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish("v1", "v2", "bad name")
	h.promote(t, "v1")
	vs, err := h.svc.Versions(ctx, "www")
	if err != nil || len(vs) != 1 {
		t.Fatalf("before a sync, versions lists what was recorded (the promoted v1): %+v %v", vs, err)
	}
	if synced, err := h.svc.SyncIfStale(ctx, "www", time.Hour); err != nil || !synced {
		t.Fatalf("a first sync: %v %v", synced, err)
	}
	vs, err = h.svc.Versions(ctx, "www")
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0].Version != "v2" || vs[1].Version != "v1" || !vs[1].Live || vs[0].Live {
		t.Fatalf("versions %+v", vs)
	}
	h.publish("v3")
	if synced, _ := h.svc.SyncIfStale(ctx, "www", time.Hour); synced {
		t.Fatal("synced again within the period")
	}
	if vs, _ := h.svc.Versions(ctx, "www"); len(vs) != 2 {
		t.Fatalf("v3 appeared without a sync: %+v", vs)
	}
	h.now = h.now.Add(2 * time.Hour)
	if synced, _ := h.svc.SyncIfStale(ctx, "www", time.Hour); !synced {
		t.Fatal("not synced after the period")
	}
	if vs, _ := h.svc.Versions(ctx, "www"); len(vs) != 3 {
		t.Fatalf("after the period: %+v", vs)
	}
}

func TestStatusShowsDrift(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	h.promote(t, "v1")
	h.cdn.path = "/www/v2" // changed by hand in the console
	st, err := h.svc.Status(context.Background(), "www")
	if err != nil {
		t.Fatal(err)
	}
	if st.Live == nil || *st.Live != "v2" || st.Recorded != "v1" || !st.Drift || st.LiveSince != nil {
		t.Fatalf("status %+v", st)
	}
}

func TestCancelledDeployIsRecordedFailed(t *testing.T) {
	h := newHarness(t)
	h.publish("v1")
	h.cdn.block, h.cdn.blocked = make(chan struct{}), make(chan struct{})
	ctx, cancel := context.WithCancel(context.Background())
	h.cdn.failAt = ""
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "a"}, nil)
		done <- err
	}()
	<-h.cdn.blocked
	cancel()
	close(h.cdn.block)
	<-done
	ds, _ := h.db.Deploys(context.Background(), "www", 1)
	if len(ds) != 1 || !ds[0].Phase.Final() {
		t.Fatalf("deploy after cancel: %+v", ds)
	}
	if l, _ := h.db.Lock(context.Background(), "www"); l != nil {
		t.Fatalf("lock left: %+v", l)
	}
}

func TestValidateVersion(t *testing.T) {
	good := []string{"v1", "1", "v1.2.3", "2026-11-28_abc", "A", string(make([]byte, 0)) + "x" + fmt.Sprintf("%0127d", 0)}
	bad := []string{"", ".v1", "-v1", "v/1", "v 1", "v1\n", "../x", "ü", "x" + fmt.Sprintf("%0128d", 0)}
	for _, v := range good {
		if err := releases.ValidateVersion(v); err != nil {
			t.Errorf("%q refused: %v", v, err)
		}
	}
	for _, v := range bad {
		if err := releases.ValidateVersion(v); releases.ErrorCode(err) != releases.EINVALID {
			t.Errorf("%q accepted", v)
		}
	}
}

func TestOriginPathRoundTrip(t *testing.T) {
	cases := []struct {
		prefix, version, path string
	}{
		{"www/", "v1", "/www/v1"},
		{"", "v1", "/v1"},
		{"a/b/", "2026.1", "/a/b/2026.1"},
	}
	for _, c := range cases {
		s := releases.Site{Prefix: c.prefix}
		if got := s.OriginPath(c.version); got != c.path {
			t.Errorf("OriginPath(%q,%q) = %q", c.prefix, c.version, got)
		}
		if v, ok := s.VersionFromOriginPath(c.path); !ok || v != c.version {
			t.Errorf("VersionFromOriginPath(%q) = %q %v", c.path, v, ok)
		}
	}
	s := releases.Site{Prefix: "www/"}
	for _, p := range []string{"", "/", "/docs/v1", "/www/", "/www/v1/extra", "/www/.bad"} {
		if v, ok := s.VersionFromOriginPath(p); ok {
			t.Errorf("VersionFromOriginPath(%q) = %q, want no version", p, v)
		}
	}
}

func FuzzVersionFromOriginPath(f *testing.F) {
	f.Add("www/", "/www/v1")
	f.Add("", "/v1/")
	f.Fuzz(func(t *testing.T, prefix, p string) {
		s := releases.Site{Prefix: prefix}
		v, ok := s.VersionFromOriginPath(p)
		if !ok {
			return
		}
		if releases.ValidateVersion(v) != nil {
			t.Fatalf("%q from %q is not a valid version", v, p)
		}
	})
}

func TestPromoteRefusesADamagedRelease(t *testing.T) {
	h := newHarness(t)
	h.publish("v1")
	h.bucket.manifests["v1"].Files = append(h.bucket.manifests["v1"].Files, releases.ManifestFile{Path: "app.js", Size: 5})
	h.bucket.damaged = map[string]bool{"v1/app.js": true}
	_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v1", Actor: "a"}, nil)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "missing: app.js") {
		t.Fatalf("promote of a damaged release: %v", err)
	}
	if h.cdn.flips != 0 {
		t.Fatal("a damaged release was flipped to")
	}
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v1", Actor: "a", NoVerify: true}, nil)
	if err != nil || out.Deploy == nil {
		t.Fatalf("--no-verify: %+v %v", out, err)
	}
}

func TestTwoSitesDeployInParallel(t *testing.T) {
	h := newHarness(t)
	h.publish("v1")
	docsCDN := &fakeCDN{}
	h.svc.CDNs["fake2"] = docsCDN
	h.svc.Sites = append(h.svc.Sites, releases.Site{Name: "docs", Bucket: "b", Prefix: "www/", DistributionID: "E2", Strategy: "fake2"})
	done := h.promoteHeld("v1", "a")
	// www is mid-deploy; docs is not held up by it.
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "docs", Version: "v1", Actor: "b"}, nil)
	if err != nil || out.Deploy == nil || out.Deploy.Phase != releases.PhaseDone {
		t.Fatalf("docs while www deploys: %+v %v", out, err)
	}
	close(h.cdn.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// While a deploy flips, the CDN already serves the new release and the
// store still records the old one: status says a deploy is in progress,
// not that someone changed the site outside deploybot. A change made by
// hand, with no deploy running, is drift.
func TestStatusDuringADeployIsNotDrift(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	h.promote(t, "v1")
	done := h.promoteHeld("v2", "alice")
	st, err := h.svc.Status(context.Background(), "www")
	if err != nil {
		t.Fatal(err)
	}
	if st.Drift || st.Deploy == nil || st.Deploy.To != "v2" || st.Live == nil || *st.Live != "v2" || st.Recorded != "v1" {
		t.Fatalf("status during the flip: %+v", st)
	}
	close(h.cdn.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	h.cdn.mu.Lock()
	h.cdn.path = "/www/v1" // by hand, in the console
	h.cdn.mu.Unlock()
	if st, _ := h.svc.Status(context.Background(), "www"); !st.Drift || st.Deploy != nil {
		t.Fatalf("status after a change by hand: %+v", st)
	}
}
