package releases_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// memState is a Coordinator in memory with S3's conditional writes: create
// only when absent, replace only when the ETag matches.
type memState struct {
	mu   sync.Mutex
	objs map[string][]byte
	tags map[string]int
}

func (m *memState) GetState(_ context.Context, site releases.Site, key string) ([]byte, string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	b, ok := m.objs[site.Name+"/"+key]
	if !ok {
		return nil, "", releases.ErrNoState
	}
	return bytes.Clone(b), fmt.Sprint(m.tags[site.Name+"/"+key]), nil
}

func (m *memState) PutState(_ context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	k := site.Name + "/" + key
	if m.objs == nil {
		m.objs, m.tags = map[string][]byte{}, map[string]int{}
	}
	_, ok := m.objs[k]
	if etag == "" && ok || etag != "" && (!ok || etag != fmt.Sprint(m.tags[k])) {
		return "", releases.ErrStateChanged
	}
	m.objs[k] = bytes.Clone(body)
	m.tags[k]++
	return fmt.Sprint(m.tags[k]), nil
}

// fakeRoller is the fake CDN that can share: it records every share the
// service writes, and tells on the first write of each percent.
type fakeRoller struct {
	*fakeCDN
	mu     sync.Mutex
	shares []releases.Share
	wrote  chan int
	// hurry makes each wait of the service move its clock an hour on.
	hurry atomic.Bool
}

func (r *fakeRoller) SetShare(_ context.Context, _ releases.Site, from, sh releases.Share) error {
	// As the rollout key's compare-and-set: the whole share must be as
	// expected (no share is one state, whatever its candidate).
	r.mu.Lock()
	var cur releases.Share
	if n := len(r.shares); n > 0 {
		cur = r.shares[n-1]
	}
	same := func(a, b releases.Share) bool { return a.Percent == 0 && b.Percent == 0 || a == b }
	if same(cur, sh) {
		r.mu.Unlock()
		return nil
	}
	if !same(cur, from) {
		r.mu.Unlock()
		return releases.Errorf(releases.ECONFLICT, "share is %+v, not %+v", cur, from)
	}
	r.shares = append(r.shares, sh)
	r.mu.Unlock()
	select {
	case r.wrote <- sh.Percent:
	default:
	}
	return nil
}

func (r *fakeRoller) CurrentShare(context.Context, releases.Site) (releases.Share, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if len(r.shares) == 0 {
		return releases.Share{}, nil
	}
	return r.shares[len(r.shares)-1], nil
}

func (r *fakeRoller) ShareDelay() time.Duration                { return time.Second }
func (r *fakeRoller) CandidateCookie(sh releases.Share) string { return "cohort=0" }
func (r *fakeRoller) NewSalt() (uint32, error)                 { return 7, nil }

func (r *fakeRoller) percents() []int {
	r.mu.Lock()
	defer r.mu.Unlock()
	var out []int
	for _, sh := range r.shares {
		out = append(out, sh.Percent)
	}
	return out
}

// startGradual starts a gradual promote of v2 as alice; the channel
// gives how it ended.
func (h *harness) startGradual(ctx context.Context) <-chan error {
	done := make(chan error, 1)
	go func() {
		_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice", Gradual: true}, nil)
		done <- err
	}()
	return done
}

// rolloutHarness is the service's harness with a site that rolls out
// (steps 1, 10, 50), its state shared through memState, and a clock that
// moves a second per reading, so a hold of interval ends by itself.
func rolloutHarness(t *testing.T, interval time.Duration) (*harness, *fakeRoller) {
	h := newHarness(t)
	r := &fakeRoller{fakeCDN: h.cdn, wrote: make(chan int, 16)}
	h.svc.CDNs["fake"] = r
	h.svc.Sites[0].Rollout = releases.RolloutPolicy{Steps: []int{1, 10, 50}, Interval: interval}
	h.svc.Store = releases.NewSharedStore(h.db, &memState{}, h.svc.Sites)
	// Each wait is a millisecond of real time, while the clock moves a
	// second per reading: a hold of a minute ends by itself within tens
	// of milliseconds, one of a day not before the test acts.
	h.svc.After = func(time.Duration) <-chan time.Time {
		if r.hurry.Load() {
			h.clockMu.Lock()
			h.now = h.now.Add(time.Hour)
			h.clockMu.Unlock()
		}
		return time.After(time.Millisecond)
	}
	h.publish("v1", "v2")
	h.promote(t, "v1")
	return h, r
}

func TestGradualPromoteGoesThroughEachShare(t *testing.T) {
	h, r := rolloutHarness(t, 30*time.Second)
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice", Gradual: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.percents()); got != "[1 10 50 0]" {
		t.Fatalf("shares written %s, want 1, 10, 50 and then none after the flip", got)
	}
	if got := strings.Join(phasesOf(out.Deploy), " "); got != "share-1 hold-1 share-10 hold-10 share-50 hold-50 flip wait share-end" {
		t.Fatalf("phases %s", got)
	}
	if d := out.Deploy; d.Rollout == nil || d.Rollout.Percent != 0 || d.Rollout.Salt != 7 || d.Phase != releases.PhaseDone {
		t.Fatalf("deploy %+v, rollout %+v", d, d.Rollout)
	}
	for _, p := range out.Deploy.Phases {
		if strings.HasPrefix(string(p.Phase), "hold-") && p.Ended.Sub(p.Started) < 30*time.Second {
			t.Fatalf("%s held %s, less than the interval", p.Phase, p.Ended.Sub(p.Started))
		}
	}
	if st, err := h.svc.Status(context.Background(), "www"); err != nil || st.Lock != nil {
		t.Fatalf("after the rollout: %+v, %v", st, err)
	}
}

func TestGradualNeedsARoller(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	h.promote(t, "v1")
	_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice", Gradual: true}, nil)
	if releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), "strategy kvs") {
		t.Fatalf("a gradual promote of a site that cannot share: %v", err)
	}
}

// cohortProber answers 500 to the candidate's visitors (the cohort
// cookie) and 200 to the others.
type cohortProber struct{}

func (cohortProber) Probe(context.Context, string) (int, []byte, error) {
	return 200, []byte("ok"), nil
}
func (cohortProber) ProbeWithCookie(_ context.Context, _ string, cookie string) (int, []byte, error) {
	if cookie != "" {
		return 500, []byte("boom"), nil
	}
	return 200, []byte("ok"), nil
}

// A health check that fails for the candidate's visitors aborts the
// rollout at its first step, as deploybot, saying which check.
func TestRolloutAbortedByAFailingHealthCheck(t *testing.T) {
	h, r := rolloutHarness(t, time.Minute)
	h.svc.Prober = cohortProber{}
	h.svc.Sites[0].Health = releases.HealthPolicy{Checks: []releases.HealthCheck{{URL: "https://www.example.com/"}}, Settle: 5 * time.Second, Interval: time.Second, Failures: 2}
	_, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice", Gradual: true}, nil)
	var ab *releases.RolloutAbortError
	if !errors.As(err, &ab) || ab.By != releases.AutoActor || !strings.Contains(ab.Reason, "health check failed at 1%") {
		t.Fatalf("promote ended with %v", err)
	}
	if got := fmt.Sprint(r.percents()); got != "[1 0]" {
		t.Fatalf("shares %s, want 1 then 0", got)
	}
	st, _ := h.svc.Status(context.Background(), "www")
	if st.Lock == nil || st.Lock.Holder != releases.AutoActor {
		t.Fatalf("lock after a health abort: %+v", st.Lock)
	}
}

// A rollout stopped in a hold (serve shutting down) is resumed by the
// next recovery from that step: its share written again, then on.
func TestRolloutResumesWhereItWas(t *testing.T) {
	h, r := rolloutHarness(t, 24*time.Hour)
	ctx, stop := context.WithCancelCause(context.Background())
	done := h.startGradual(ctx)
	<-r.wrote
	if _, err := h.svc.ControlRollout(context.Background(), releases.RolloutRequest{Site: "www", Action: releases.RolloutAdvance, Actor: "bob"}); err != nil {
		t.Fatal(err)
	}
	if p := <-r.wrote; p != 10 {
		t.Fatalf("share %d", p)
	}
	rs := h.svc.Store.(releases.RolloutStore)
	deadline := time.Now().Add(10 * time.Second)
	for {
		d, err := rs.RunningDeploy(context.Background(), "www")
		if err != nil {
			t.Fatal(err)
		}
		if d.Phase == "hold-10" {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the rollout never held at 10%%: phase %s", d.Phase)
		}
		time.Sleep(time.Millisecond)
	}
	stop(releases.ErrShutdown)
	if err := <-done; !errors.Is(err, releases.ErrShutdown) {
		t.Fatalf("the stopped rollout ended with %v, want it interrupted by the shutdown", err)
	}
	d, err := rs.RunningDeploy(context.Background(), "www")
	if err != nil || d == nil || d.Rollout == nil || d.Rollout.Percent != 10 {
		t.Fatalf("after the stop the rollout holds the site at 10%%: %+v %v", d, err)
	}
	r.hurry.Store(true) // the resumed holds end by themselves
	if _, err := h.svc.Recover(context.Background(), nil); err != nil {
		t.Fatal(err)
	}
	// The step it was in is taken again (its share found written, its
	// hold held again), then on to the flip.
	if got := fmt.Sprint(r.percents()); got != "[1 10 50 0]" {
		t.Fatalf("shares %s", got)
	}
	ds, _ := h.db.Deploys(context.Background(), "www", 1)
	if got := strings.Join(phasesOf(&ds[0]), " "); !strings.Contains(got, "hold-10 share-10 hold-10 share-50 hold-50 flip wait share-end") {
		t.Fatalf("phases of the resumed rollout: %s", got)
	}
	if st, _ := h.svc.Status(context.Background(), "www"); st.Lock != nil || st.Live == nil || *st.Live != "v2" {
		t.Fatalf("after the resumed rollout: %+v", st)
	}
}

// A rollout read from the bucket is outside input: a plan deploybot does
// not make (steps out of range, a negative interval) is refused before a
// runner, a recovery or a control acts on it.
func TestARolloutFromTheBucketIsChecked(t *testing.T) {
	h := newHarness(t)
	mem := &memState{}
	shared := releases.NewSharedStore(h.db, mem, h.svc.Sites)
	site := h.svc.Sites[0]
	for _, plan := range []string{`{"steps":[200],"interval":0}`, `{"steps":[10,5],"interval":0}`, `{"steps":[10],"interval":-1}`, `{"steps":[],"interval":0}`} {
		mem.objs, mem.tags = nil, nil
		body := `{"lock":{"site":"www","holder":"x","deploy_id":"d1","since":"2025-01-01T00:00:00Z"},"epoch":1,` +
			`"deploy":{"id":"d1","site":"www","kind":"promote","actor":"x","from":"v1","from_path":"/www/v1","to":"v2","strategy":"kvs","phase":"hold-10","phases":[],"started_at":"2025-01-01T00:00:00Z","rollout":` + plan + `}}`
		if _, err := mem.PutState(context.Background(), site, releases.StateLock, []byte(body), ""); err != nil {
			t.Fatal(err)
		}
		if _, err := shared.RunningDeploy(context.Background(), "www"); releases.ErrorCode(err) != releases.EINTERNAL {
			t.Errorf("plan %s: %v, want it refused", plan, err)
		}
	}
}

// A rollout that fails for another reason than an abort (here the flip)
// puts every visitor back on the live release and locks the site; a share
// left by one (a process gone before it could clear it) refuses the next
// deploy until rollout abort clears it.
func TestAFailedRolloutClearsItsShareAndLocks(t *testing.T) {
	h, r := rolloutHarness(t, 3*time.Second)
	h.cdn.failAt = "flip"
	ctx := context.Background()
	_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice", Gradual: true}, nil)
	if err == nil || errors.Is(err, releases.ErrRolloutAborted) {
		t.Fatalf("the promote: %v", err)
	}
	if got := fmt.Sprint(r.percents()); got != "[1 10 50 0]" {
		t.Fatalf("shares %s: the failure must clear the share", got)
	}
	st, _ := h.svc.Status(ctx, "www")
	if st.Lock == nil || st.Lock.Holder != releases.AutoActor || !strings.Contains(st.Lock.Reason, "rollout of v2 failed") || !strings.Contains(st.Lock.Reason, "back on the live release") {
		t.Fatalf("lock after a failed rollout: %+v", st.Lock)
	}
	if _, err := h.svc.UnlockSite(ctx, "www", "alice"); err != nil {
		t.Fatal(err)
	}
	h.cdn.failAt = ""

	// A share nobody cleared (written by hand here).
	if err := r.SetShare(ctx, h.svc.Sites[0], releases.Share{}, releases.Share{Candidate: "v2", Percent: 50, Salt: 9}); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "rollout abort") {
		t.Fatalf("a promote with a share left: %v", err)
	}
	if _, err := h.svc.ControlRollout(ctx, releases.RolloutRequest{Site: "www", Action: releases.RolloutAbortIt, Actor: "bob"}); err != nil {
		t.Fatalf("abort of a share left: %v", err)
	}
	if sh, _ := r.CurrentShare(ctx, h.svc.Sites[0]); sh.Percent != 0 {
		t.Fatalf("share after abort: %+v", sh)
	}
	h.promote(t, "v2")
}

// edgeOfCohorts answers as an edge during a rollout: a probe carrying the
// candidate's cohort cookie gets v2 once the share has reached it (after
// a few probes), any other cookie v1; a probe without one is the flip's
// visible phase, when everyone has v2.
type edgeOfCohorts struct {
	mu      sync.Mutex
	cookies []string
	calls   int
}

func (e *edgeOfCohorts) ProbeRelease(context.Context, string) (string, int, error) {
	return "v2", 200, nil
}
func (e *edgeOfCohorts) ProbeReleaseWithCookie(_ context.Context, _ string, cookie string) (string, int, error) {
	e.mu.Lock()
	defer e.mu.Unlock()
	e.calls++
	e.cookies = append(e.cookies, cookie)
	if cookie == "cohort=0" && e.calls > 6 {
		return "v2", 200, nil
	}
	return "v1", 200, nil
}

// Each step waits until the candidate's visitors (probes with their
// cohort cookie) get the candidate, not a fixed time.
func TestEachStepWatchesTheCandidatesVisitors(t *testing.T) {
	h, r := rolloutHarness(t, time.Second)
	edge := &edgeOfCohorts{}
	h.svc.EdgeProber = edge
	h.svc.Sites[0].URL = "https://www.example.com/"
	h.bucket.manifests["v2"].Stamped = true
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice", Gradual: true, NoVerify: true}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.percents()); got != "[1 10 50 0]" {
		t.Fatalf("shares %s", got)
	}
	edge.mu.Lock()
	defer edge.mu.Unlock()
	pinned := 0
	for _, c := range edge.cookies {
		if c == "cohort=0" {
			pinned++
		}
	}
	if pinned < 7 {
		t.Fatalf("%d probes carried the candidate's cookie (of %d): the steps did not watch its visitors", pinned, len(edge.cookies))
	}
	if out.Deploy.Phase != releases.PhaseDone {
		t.Fatalf("deploy %+v", out.Deploy)
	}
}
