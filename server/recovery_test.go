package server_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

// interrupted builds the store and AWS state of a deploy from v1 to v2 that
// stopped in phase, with the distribution flipped or not, and an
// invalidation already created or not.
func (e *env) interrupted(phase releases.Phase, flipped, invalidated bool) releases.Deploy {
	e.t.Helper()
	ctx := context.Background()
	e.publish("v1", "v2")
	// v1 live, deployed.
	for _, st := range e.CDN.Plan(e.Site, releases.Current{}, "v1", "setup")[:1] {
		if err := st.Run(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	e.settle()
	if err := e.Store.SetLive(ctx, "www", releases.Live{Version: "v1"}); err != nil {
		e.t.Fatal(err)
	}
	d := releases.Deploy{ID: "20261128T120000Z-crash" + string(phase), Site: "www", Kind: releases.KindPromote, Actor: "alice",
		From: "v1", FromPath: "/www/v1", To: "v2", Strategy: releases.DefaultStrategy, Phase: phase, StartedAt: e.clk.Now()}
	if phase != releases.PhasePending {
		d.Phases = []releases.PhaseRecord{{Phase: phase, Started: e.clk.Now()}}
	}
	if err := e.Store.StartDeploy(ctx, d, releases.Lock{Site: "www", Holder: "alice", DeployID: d.ID, Since: e.clk.Now()}); err != nil {
		e.t.Fatal(err)
	}
	if flipped {
		if err := e.CDN.Plan(e.Site, releases.Current{Version: "v1", Path: "/www/v1"}, "v2", d.ID)[0].Run(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	if invalidated {
		if _, err := e.CF.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String(distID),
			InvalidationBatch: &cftypes.InvalidationBatch{CallerReference: aws.String(d.ID), Paths: &cftypes.Paths{Quantity: aws.Int32(1), Items: []string{"/*"}}}}); err != nil {
			e.t.Fatal(err)
		}
	}
	return d
}

func TestRecoveryFromEveryPhase(t *testing.T) {
	cases := []struct {
		name        string
		phase       releases.Phase
		flipped     bool
		invalidated bool
		want        releases.Phase
		live        string
	}{
		{"pending, nothing done", releases.PhasePending, false, false, releases.PhaseFailed, "v1"},
		{"update, not applied", cloud.PhaseUpdate, false, false, releases.PhaseFailed, "v1"},
		{"update, applied", cloud.PhaseUpdate, true, false, releases.PhaseDone, "v2"},
		{"propagate", cloud.PhasePropagate, true, false, releases.PhaseDone, "v2"},
		{"propagate, flipped back by hand", cloud.PhasePropagate, false, false, releases.PhaseFailed, "v1"},
		{"invalidate, none made", cloud.PhaseInvalidate, true, false, releases.PhaseDone, "v2"},
		{"invalidate, made", cloud.PhaseInvalidate, true, true, releases.PhaseDone, "v2"},
		{"invalidate-wait", cloud.PhaseInvalidateWait, true, true, releases.PhaseDone, "v2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.interrupted(c.phase, c.flipped, c.invalidated)
			ctx := context.Background()
			asked := cloudFrontPolls(e)
			e.start()
			if c.want == releases.PhaseDone {
				// AWS is held InProgress: the resumed deploy must wait.
				// It has asked CloudFront several times (more than the
				// start's reconcile does) and still waits.
				e.eventually("the resumed deploy to poll CloudFront", func() bool { return cloudFrontPolls(e) >= asked+5 })
				if got, _ := e.Store.Deploy(ctx, "www", d.ID); got.Phase.Final() {
					t.Fatalf("deploy finished while AWS was still in progress: %+v", got)
				}
				e.flow()
			}
			e.eventually("the deploy to reach a final phase", func() bool {
				got, _ := e.Store.Deploy(ctx, "www", d.ID)
				return got.Phase.Final()
			})
			got, _ := e.Store.Deploy(ctx, "www", d.ID)
			if got.Phase != c.want {
				t.Fatalf("deploy ended %s (%s), want %s", got.Phase, got.Error, c.want)
			}
			if l, _ := e.Store.Lock(ctx, "www"); l != nil {
				t.Fatalf("lock still held: %+v", l)
			}
			live, _, _ := e.Store.Live(ctx, "www")
			if live.Version != c.live || e.originPath() != "/www/"+c.live {
				t.Fatalf("live pointer %q, origin path %q, want %s", live.Version, e.originPath(), c.live)
			}
			if c.want == releases.PhaseDone {
				out, err := e.CF.ListInvalidations(ctx, &cloudfront.ListInvalidationsInput{DistributionId: aws.String(distID)})
				if err != nil || len(out.InvalidationList.Items) != 1 {
					t.Fatalf("want exactly one invalidation (the caller reference makes it idempotent), got %+v %v", out, err)
				}
			}
		})
	}
}

func TestReconcileFindsUnnotifiedReleaseAndHandFlip(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	ctx := context.Background()
	e.start()
	// The first reconcile must be over (not just its listing) before the
	// hand flip, or it is that reconcile which sees the drift.
	e.eventually("the first reconcile", func() bool {
		resp, err := http.Get(e.url + "/metrics")
		if err != nil {
			return false
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return bytes.Contains(raw, []byte(`deploybot_reconcile_runs_total{result="ok",site="www"} 1`))
	})
	// Someone flips the origin path in the console.
	if err := e.CDN.Plan(e.Site, releases.Current{}, "v2", "by-hand")[0].Run(ctx); err != nil {
		t.Fatal(err)
	}
	e.publish("v3")
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	e.srv = &server.Server{Service: e.Service, Store: e.Store, HookSecret: []byte(secret), APIToken: token, ReconcileInterval: 20 * time.Millisecond}
	e.start()
	// The store changes inside Reconcile and the counters move after it
	// returns, so wait for the counters, then check the store.
	want := []string{`deploybot_drift_total{site="www"} 1`, `deploybot_releases_recorded_total{site="www",source="reconcile"} 1`, `deploybot_reconcile_runs_total{result="ok",site="www"}`}
	var raw []byte
	e.eventually("the reconcile that finds v3 and the hand flip to be counted", func() bool {
		resp, err := http.Get(e.url + "/metrics")
		if err != nil {
			return false
		}
		raw, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range want {
			if !bytes.Contains(raw, []byte(w)) {
				return false
			}
		}
		return true
	})
	if _, err := e.Store.Release(ctx, "www", "v3"); err != nil {
		t.Fatalf("v3 not recorded: %v", err)
	}
	if live, _, _ := e.Store.Live(ctx, "www"); live.Version != "v2" {
		t.Fatalf("live is %q, want the hand-flipped v2", live.Version)
	}
}

// The chat hears when what is live changes outside serve (a command-line
// deploy, a hand flip) at the next reconcile, and once at start, so the
// release notices are kept true.
func TestReconcileTellsTheChatWhenLiveChanges(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	rec := &recorder{}
	e.srv.Notifier = rec
	e.srv.ReconcileInterval = 20 * time.Millisecond
	e.start()
	e.eventually("the first reconcile to tell", func() bool { return rec.liveChanges() == 1 })
	if err := e.CDN.Plan(e.Site, releases.Current{}, "v2", "by-hand")[0].Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.eventually("the reconcile after the flip to tell", func() bool { return rec.liveChanges() == 2 })
}

// cloudFrontPolls counts the stand-in's answers to what a deploy waiting
// on CloudFront asks: a distribution's state, an invalidation's.
func cloudFrontPolls(e *env) int {
	calls := e.AWS.Calls()
	return calls["cloudfront GetDistribution"] + calls["cloudfront GetInvalidation"]
}

// resumer is a chat that shows resumed deploys: it records the events
// recovery hands it, and how many rounds ended.
type resumer struct {
	recorder
	mu     sync.Mutex
	events []releases.Event
	ended  int
}

func (r *resumer) Resumed(context.Context) (releases.Progress, func()) {
	return func(e releases.Event) {
			r.mu.Lock()
			r.events = append(r.events, e)
			r.mu.Unlock()
		}, func() {
			r.mu.Lock()
			r.ended++
			r.mu.Unlock()
		}
}

func (r *resumer) saw(id string, t releases.EventType) bool {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, e := range r.events {
		if e.Deploy.ID == id && e.Type == t {
			return true
		}
	}
	return false
}

// A deploy serve resumes at start reaches the chat that shows resumed
// deploys (Slack goes on in its card and thread), from its resumption to
// its end, and the round is ended after.
func TestAResumedDeployReachesTheChat(t *testing.T) {
	e := newEnv(t)
	d := e.interrupted(cloud.PhasePropagate, true, false)
	chat := &resumer{}
	e.srv.Notifier = chat
	e.start()
	e.flow()
	e.eventually("the resumed deploy to end in the chat", func() bool {
		return chat.saw(d.ID, releases.EventDeployResumed) && chat.saw(d.ID, releases.EventDeployFinished)
	})
	e.eventually("the recovery round to end", func() bool {
		chat.mu.Lock()
		defer chat.mu.Unlock()
		return chat.ended > 0
	})
}
