package releases_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// The control of a running rollout: pause, resume, advance, abort, and
// what freezes and late aborts do to it.

// abortingState records an abort into the flip phase's save (as keepControl
// carries an abort CAS'd just before it) and stops the process then.
type abortingState struct {
	*memState
	stop func(error)
	done bool
}

func (a *abortingState) PutState(ctx context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	if !a.done && bytes.Contains(body, []byte(`"phase":"flip"`)) && bytes.Contains(body, []byte(`"control":{}`)) {
		a.done = true
		body = bytes.Replace(body, []byte(`"control":{}`), []byte(`"control":{"aborted":{"by":"bob","reason":"bad","at":"2025-01-01T00:00:00Z"}}`), 1)
		a.stop(releases.ErrShutdown)
	}
	return a.memState.PutState(ctx, site, key, body, etag)
}

// An abort recorded as the flip began, then a stop: the recovery must not
// flip the aborted candidate for everyone (found by an outside review).
func TestAnAbortedRolloutStoppedInItsFlipIsNotFlippedByRecovery(t *testing.T) {
	h, r := rolloutHarness(t, time.Second)
	ctx, stop := context.WithCancelCause(context.Background())
	h.svc.Store = releases.NewSharedStore(h.db, &abortingState{memState: &memState{}, stop: stop}, h.svc.Sites)
	_, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice", Gradual: true}, nil)
	t.Logf("promote: %v; shares %v", err, r.percents())
	_, err = h.svc.Recover(context.Background(), nil)
	st, _ := h.svc.Status(context.Background(), "www")
	t.Logf("recover: %v; live %v lock %+v shares %v", err, *st.Live, st.Lock, r.percents())
	if *st.Live == "v2" {
		t.Fatalf("an aborted rollout was flipped for everyone by recovery")
	}
}

// An abort while a step watches its candidate's visitors ends the watch
// at once: the abort, with who and why, is what ends the rollout.
type neverEdge struct{}

func (neverEdge) ProbeRelease(context.Context, string) (string, int, error) { return "v1", 200, nil }
func (neverEdge) ProbeReleaseWithCookie(context.Context, string, string) (string, int, error) {
	return "v1", 200, nil
}

func TestAnAbortWhileAStepWatchesItsVisitors(t *testing.T) {
	h, r := rolloutHarness(t, time.Hour)
	h.svc.EdgeProber = neverEdge{}
	h.svc.Sites[0].URL = "https://www.example.com/"
	h.bucket.manifests["v2"].Stamped = true
	done := h.startGradual(context.Background())
	<-r.wrote
	if _, err := h.svc.ControlRollout(context.Background(), releases.RolloutRequest{Site: "www", Action: releases.RolloutAbortIt, Actor: "bob", Reason: "bad"}); err != nil {
		t.Fatal(err)
	}
	err := <-done
	t.Logf("promote: %v", err)
	st, _ := h.svc.Status(context.Background(), "www")
	if st.Lock != nil {
		t.Logf("lock: holder %s reason %s", st.Lock.Holder, st.Lock.Reason)
	}
	if !errors.Is(err, releases.ErrRolloutAborted) || st.Lock == nil || !strings.Contains(st.Lock.Reason, "bad") {
		t.Fatalf("the abort is not what ended the rollout")
	}
}

// A freeze that begins during a rollout holds it at its step once the
// hold is over: no more visitors get the candidate until it is lifted.
func TestAFreezeHoldsARollout(t *testing.T) {
	// The hold lasts a day and ends only once the freeze is in: then
	// each wait moves the clock an hour, so the hold ends at once, and
	// the freeze (60 days: over a thousand waits of a millisecond or
	// more) outlasts the 300ms watched.
	h, r := rolloutHarness(t, 24*time.Hour)
	ctx := context.Background()
	done := h.startGradual(ctx)
	<-r.wrote
	if _, err := h.svc.Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "60d", Reason: "incident", Actor: "carol"}); err != nil {
		t.Fatal(err)
	}
	r.hurry.Store(true)
	select {
	case p := <-r.wrote:
		t.Fatalf("the rollout went on to %d%% in a freeze", p)
	case <-time.After(300 * time.Millisecond):
	}
	if _, err := h.svc.Unfreeze(ctx, "www", false, "carol"); err != nil {
		t.Fatal(err)
	}
	if p := <-r.wrote; p != 10 {
		t.Fatalf("after the freeze the share is %d", p)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
}

// A freeze that begins during a rollout stops it from advancing by hand
// (as it would stop a promote); pausing and aborting stay allowed.
func TestAdvancePastAFreezeIsRefused(t *testing.T) {
	h, r := rolloutHarness(t, 24*time.Hour)
	ctx := context.Background()
	done := h.startGradual(ctx)
	<-r.wrote
	if _, err := h.svc.Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "2h", Reason: "launch", Actor: "carol"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.svc.ControlRollout(ctx, releases.RolloutRequest{Site: "www", Action: releases.RolloutAdvance, Actor: "bob"})
	var ge *releases.GuardError
	if !errors.As(err, &ge) {
		t.Fatalf("advance in a freeze: %v", err)
	}
	for _, a := range []string{releases.RolloutPause, releases.RolloutAbortIt} {
		if _, err := h.svc.ControlRollout(ctx, releases.RolloutRequest{Site: "www", Action: a, Actor: "bob"}); err != nil {
			t.Fatalf("%s in a freeze: %v", a, err)
		}
	}
	if err := <-done; !errors.Is(err, releases.ErrRolloutAborted) {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.percents()); got != "[1 0]" {
		t.Fatalf("shares %s: the freeze must have held the rollout at its first step", got)
	}
}

// Once the last hold has ended the rollout is the flip: a control then is
// refused (it could no longer be honoured), and the deploy ends as asked.
func TestRolloutControlRefusedAfterItsLastStep(t *testing.T) {
	h, r := rolloutHarness(t, 3*time.Second)
	h.cdn.block, h.cdn.blocked = make(chan struct{}), make(chan struct{})
	done := h.startGradual(context.Background())
	<-h.cdn.blocked // the flip has written the live key and waits
	_, err := h.svc.ControlRollout(context.Background(), releases.RolloutRequest{Site: "www", Action: releases.RolloutAbortIt, Actor: "bob", Reason: "too late"})
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "passed its last step") {
		t.Fatalf("an abort during the flip: %v", err)
	}
	close(h.cdn.block)
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if got := fmt.Sprint(r.percents()); got != "[1 10 50 0]" {
		t.Fatalf("shares %s", got)
	}
}

// Pause stops a hold's clock, resume restarts it, advance cuts it short;
// each is refused when it makes no sense, and the rollout never moves on
// while paused.
func TestRolloutPauseResumeAdvance(t *testing.T) {
	h, r := rolloutHarness(t, 24*time.Hour)
	ctx := context.Background()
	done := h.startGradual(ctx)
	<-r.wrote
	control := func(action string) error {
		_, err := h.svc.ControlRollout(ctx, releases.RolloutRequest{Site: "www", Action: action, Actor: "bob"})
		return err
	}
	if err := control(releases.RolloutResume); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("resume of a running rollout: %v", err)
	}
	if err := control(releases.RolloutPause); err != nil {
		t.Fatal(err)
	}
	if err := control(releases.RolloutPause); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("a second pause: %v", err)
	}
	if err := control(releases.RolloutAdvance); err != nil {
		t.Fatal(err)
	}
	if p := <-r.wrote; p != 10 {
		t.Fatalf("after advance the share is %d, want 10", p)
	}
	if err := control(releases.RolloutResume); err != nil {
		t.Fatal(err)
	}
	if err := control(releases.RolloutAdvance); err != nil {
		t.Fatal(err)
	}
	if p := <-r.wrote; p != 50 {
		t.Fatalf("after the second advance the share is %d, want 50", p)
	}
	if err := control(releases.RolloutAbortIt); err != nil {
		t.Fatal(err)
	}
	if err := <-done; !errors.Is(err, releases.ErrRolloutAborted) {
		t.Fatal(err)
	}
	if err := control(releases.RolloutPause); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("a pause with no rollout running: %v", err)
	}
}

// An abort, from another door while a step holds: everyone back on live
// with one share write, the deploy failed with who and why, the site
// locked with the reason, the live release never changed.
func TestRolloutAbortPutsEveryoneBackAndLocks(t *testing.T) {
	h, r := rolloutHarness(t, 24*time.Hour)
	done := h.startGradual(context.Background())
	if p := <-r.wrote; p != 1 {
		t.Fatalf("first share %d", p)
	}
	if _, err := h.svc.ControlRollout(context.Background(), releases.RolloutRequest{Site: "www", Action: releases.RolloutAbortIt, Actor: "bob", Reason: "checkout errors"}); err != nil {
		t.Fatal(err)
	}
	err := <-done
	var ab *releases.RolloutAbortError
	if !errors.As(err, &ab) || ab.By != "bob" || !errors.Is(err, releases.ErrRolloutAborted) {
		t.Fatalf("promote ended with %v", err)
	}
	if got := r.percents(); got[len(got)-1] != 0 || len(got) > 4 || got[0] != 1 {
		t.Fatalf("shares %v: the abort must end on 0 without reaching the next step", got)
	}
	if r.flips != 1 {
		t.Fatalf("the live release flipped %d times (only v1's promote may)", r.flips)
	}
	st, err := h.svc.Status(context.Background(), "www")
	if err != nil || st.Lock == nil || !strings.Contains(st.Lock.Reason, "aborted: checkout errors") || st.Lock.Holder != "bob" {
		t.Fatalf("after the abort the site is locked with the reason: %+v %v", st.Lock, err)
	}
	entries, _ := h.svc.History(context.Background(), "www", 10)
	var seen []string
	for _, e := range entries {
		seen = append(seen, e.Action+" "+e.Result)
	}
	if !strings.Contains(strings.Join(seen, ","), "rollout-abort ok") || !strings.Contains(strings.Join(seen, ","), "promote failed") {
		t.Fatalf("history %v", seen)
	}
}

// An action from outside (an API body) is checked before anything is
// read, and its text does not become the record's action.
func TestARolloutActionIsCheckedFirst(t *testing.T) {
	h := newHarness(t)
	_, err := h.svc.ControlRollout(context.Background(), releases.RolloutRequest{Site: "www", Action: "sideways\n" + strings.Repeat("x", 5000), Actor: "bob"})
	if releases.ErrorCode(err) != releases.EINVALID || len(err.Error()) > 200 {
		t.Fatalf("a bad action: %v", err)
	}
	entries, _ := h.svc.History(context.Background(), "www", 1)
	if len(entries) != 1 || entries[0].Action != "rollout" || entries[0].Result != releases.ResultRefused {
		t.Fatalf("record of a bad action: %+v", entries)
	}
}
