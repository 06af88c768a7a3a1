package releases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"strings"
	"time"
)

// ControlRollout pauses, resumes, advances or aborts the site's running
// rollout, from any door and any process. An abort also clears the share
// at once, so visitors are back on live within the propagation even if
// the runner is gone. Advancing past a freeze that began meanwhile is
// refused as a promote would be.
func (s *Service) ControlRollout(ctx context.Context, req RolloutRequest) (d *Deploy, err error) {
	// The action is checked first: it names the record, and it comes
	// from outside (an API body).
	action := "rollout-" + req.Action
	if !slices.Contains([]string{RolloutPause, RolloutResume, RolloutAdvance, RolloutAbortIt}, req.Action) {
		action = "rollout"
	}
	defer func() { s.audit(ctx, req.Site, req.Actor, action, req.Reason, err) }()
	if action == "rollout" {
		return nil, Errorf(EINVALID, "a rollout takes pause, resume, advance or abort, not %q", shorten(req.Action, 40))
	}
	site, err := s.Site(req.Site)
	if err != nil {
		return nil, err
	}
	if req.Actor, err = s.authorizeActor(ctx, site, "rollout", req.Actor); err != nil {
		return nil, err
	}
	if err := checkReason("the reason", req.Reason); err != nil {
		return nil, err
	}
	cdn, err := s.cdn(site)
	if err != nil {
		return nil, err
	}
	r, err := s.rollerOf(site, cdn)
	if err != nil {
		return nil, err
	}
	rs := s.Store.(RolloutStore)
	cur, err := rs.RunningDeploy(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	if cur == nil || cur.Rollout == nil {
		if req.Action == RolloutAbortIt {
			// No rollout runs, but one that failed may have left its share:
			// the answer is no deploy's (no ID), the share cleared.
			sh, err := r.CurrentShare(ctx, site)
			if err != nil {
				return nil, err
			}
			if sh.Percent != 0 {
				if err := clearShare(ctx, site, r); err != nil {
					return nil, err
				}
				return &Deploy{Site: site.Name, To: sh.Candidate, Rollout: &Rollout{Salt: sh.Salt}}, nil
			}
		}
		return nil, Errorf(ENOTFOUND, "site %s has no rollout running", site.Name)
	}
	if req.Action == RolloutAdvance {
		if err := s.guard(ctx, site, PromoteRequest{Kind: KindPromote}); err != nil {
			return nil, err
		}
	}
	change, err := rolloutChange(req, s.now())
	if err != nil {
		return nil, err
	}
	got, err := rs.ControlRollout(ctx, site.Name, cur.ID, change)
	if err != nil {
		return nil, err
	}
	if req.Action == RolloutAbortIt {
		if err := clearShare(ctx, site, r); err != nil {
			return &got, fmt.Errorf("the abort is recorded; clearing the share failed (the runner clears it at its next poll): %w", err)
		}
	}
	return &got, nil
}

// rolloutChange is what req does to a rollout's control.
func rolloutChange(req RolloutRequest, now time.Time) (func(*RolloutControl) error, error) {
	switch req.Action {
	case RolloutPause:
		return func(c *RolloutControl) error {
			if c.Paused {
				return Errorf(ECONFLICT, "the rollout is paused already (by %s)", c.PausedBy)
			}
			c.Paused, c.PausedBy = true, req.Actor
			return nil
		}, nil
	case RolloutResume:
		return func(c *RolloutControl) error {
			if !c.Paused {
				return Errorf(ECONFLICT, "the rollout is not paused")
			}
			c.Paused, c.PausedBy = false, ""
			return nil
		}, nil
	case RolloutAdvance:
		return func(c *RolloutControl) error { c.Advances++; return nil }, nil
	case RolloutAbortIt:
		reason := strings.TrimSpace(req.Reason)
		if reason == "" {
			reason = "no reason given"
		}
		return func(c *RolloutControl) error {
			if c.Aborted == nil {
				c.Aborted = &RolloutAbort{By: req.Actor, Reason: reason, At: now}
			}
			return nil
		}, nil
	}
	return nil, Errorf(EINVALID, "a rollout takes pause, resume, advance or abort, not %q", req.Action)
}

// resumeRollout is what is left of a gradual deploy interrupted in its
// phase: from the step it was in (its share written again, its hold
// started again: a crash gives the candidate's visitors more time, never
// less), or, once the flip began, the strategy's own resume and the share
// cleared. handled is false for a deploy that is not a rollout.
func (s *Service) resumeRollout(ctx context.Context, site Site, cdn CDN, d Deploy, stamped func() bool) (steps []Step, flipped, handled bool, err error) {
	if d.Rollout == nil {
		return nil, false, false, nil
	}
	r, err := s.rollerOf(site, cdn)
	if err != nil {
		return nil, false, true, err
	}
	end := shareEnd(site, r, d)
	switch d.Phase {
	case PhaseHealth:
		return nil, true, true, nil // cleared before the checks began
	case PhaseVisible:
		// Flipped; the caller watches again, then the share is cleared.
		return []Step{end}, true, true, nil
	case phaseShareEnd:
		return []Step{end}, true, true, nil
	}
	from, inRollout := rolloutIndex(d)
	if !inRollout {
		// In the flip, after every step held and passed its checks: the
		// strategy knows how far it got; one that had not written its
		// key yet (the live release still the one the rollout started
		// from) is flipped again, as the rollout meant, rather than
		// failed after all its steps.
		cur, err := cdn.Current(ctx, site)
		if err != nil {
			return nil, false, true, err
		}
		if cur.Version == d.From && cur.Path == d.FromPath {
			flip := s.guardFlip(site, r, d.ID, cdn.Plan(site, cur, d.To, d.ID))
			return append(flip, end), false, true, nil
		}
		rest, flipped, err := cdn.Resume(ctx, site, d)
		if err != nil {
			return nil, flipped, true, err
		}
		return append(rest, end), flipped, true, nil
	}
	flip := cdn.Plan(site, Current{Version: d.From, Path: d.FromPath}, d.To, d.ID)
	return s.rolloutSteps(site, r, &d, from, flip, stamped()), false, true, nil
}

// rolloutIndex is the step a rollout was in (0 before its first share),
// and whether its phase is one of the rollout's own.
func rolloutIndex(d Deploy) (int, bool) {
	if d.Phase == PhasePending || d.Phase == PhaseCarry {
		return 0, true
	}
	name := string(d.Phase)
	for _, prefix := range []string{"share-", "check-", "hold-"} {
		if n, ok := strings.CutPrefix(name, prefix); ok {
			p, err := strconv.Atoi(n)
			if i := slices.Index(d.Rollout.Steps, p); err == nil && i >= 0 {
				return i, true
			}
		}
	}
	return 0, false
}

// endRollout is what a failed rollout leaves: every visitor back on the
// live release (an abort cleared the share already; any other failure
// clears it here) and the site locked with why, so nobody promotes the
// candidate again by accident. A rollout that flipped already ended for
// everyone: nothing to undo.
func (s *Service) endRollout(ctx context.Context, d *Deploy, flipped bool, cause error) {
	if d.Rollout == nil || flipped {
		return
	}
	// Only while this process still runs it: a runner taken over (its
	// heartbeat went stale) must not clear the share of the rollout the
	// other process now runs.
	if l, err := s.Store.Lock(context.WithoutCancel(ctx), d.Site); err != nil || l == nil || l.DeployID != d.ID || !runsHere(*l) {
		return
	}
	var abort *RolloutAbortError
	if errors.As(cause, &abort) {
		d.LockAfter = &Lock{Holder: abort.By, Reason: fmt.Sprintf("rollout of %s aborted: %s", d.To, abort.Reason)}
		return
	}
	left := "every visitor is back on the live release"
	if err := s.clearShareOf(context.WithoutCancel(ctx), d.Site); err != nil {
		left = "clearing the share failed (" + ErrorMessage(err) + "): deploybot rollout abort clears it"
	}
	d.LockAfter = &Lock{Holder: AutoActor, Reason: shorten(fmt.Sprintf("rollout of %s failed: %s; %s", d.To, ErrorMessage(cause), left), maxAuditDetail)}
}

// clearShareOf clears the share of site's CDN.
func (s *Service) clearShareOf(ctx context.Context, siteName string) error {
	site, err := s.Site(siteName)
	if err != nil {
		return err
	}
	cdn, err := s.cdn(site)
	if err != nil {
		return err
	}
	r, ok := cdn.(Roller)
	if !ok {
		return nil
	}
	return clearShare(ctx, site, r)
}

// staleShare refuses a deploy of a site whose CDN still sends a share of
// visitors to a release a failed rollout left (nothing rolls out now: the
// caller checked the lock); a share of the live release itself is
// harmless and cleared.
func (s *Service) staleShare(ctx context.Context, site Site, cdn CDN, cur Current) error {
	r, ok := cdn.(Roller)
	if !ok {
		return nil
	}
	sh, err := r.CurrentShare(ctx, site)
	if err != nil || sh.Percent == 0 {
		return err
	}
	if sh.Candidate == cur.Version {
		return clearShare(ctx, site, r)
	}
	return Errorf(ECONFLICT, "site %s still sends %d%% of its visitors to %s, left by a rollout that did not finish: deploybot rollout abort (or /site rollout abort) clears it", site.Name, sh.Percent, sh.Candidate)
}
