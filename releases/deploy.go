package releases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"strings"
	"time"
)

// PromoteRequest asks for version to go live. Kind is promote unless a
// rollback passes through Promote.
type PromoteRequest struct {
	Site    string
	Version string
	Actor   string
	Reason  string
	Kind    Kind
	// NoVerify skips checking that every manifest entry is in the bucket
	// with the right size (one listing per 1,000 files) before the flip.
	NoVerify bool
	// Override, when set, is why this promote goes ahead in a freeze or
	// outside the deploy windows (an approver's decision, recorded).
	Override string
	// Back says the person knows Version is older than the live release:
	// a promote that goes back, refused without it (see GoesBack). It is
	// still a promote, with every promote rule; Rollback is the way back
	// to a release that was live before, without them.
	Back bool
	// BackFrom, with Back, is the live release the caller saw when it
	// said to go back (a confirm button asked a while ago): if another
	// is live now, the promote is refused rather than going back from
	// somewhere nobody looked at.
	BackFrom string
	// Gradual makes the promote a rolling release (see rollout.go).
	Gradual bool
	// lockAfter becomes the deploy's LockAfter.
	lockAfter *Lock
	// approved is the request whose approval runs this promote; its id
	// becomes the deploy's.
	approved *ApprovalRequest
}

// Outcome is the result of a promote or rollback. AlreadyLive means nothing
// was done because the version is live already; Deploy is then nil.
type Outcome struct {
	Deploy      *Deploy `json:"deploy"`
	AlreadyLive bool    `json:"already_live"`
	Version     string  `json:"version"`
	// Approval is the request the promote became, waiting for approval
	// (Deploy is then nil).
	Approval *ApprovalRequest `json:"approval,omitempty"`
}

// Promote makes req.Version live: it checks the release, takes the site's
// lock, and runs the CDN's steps, recording each phase before it acts and
// reporting it to progress (which may be nil).
func (s *Service) Promote(ctx context.Context, req PromoteRequest, progress Progress) (out *Outcome, err error) {
	if req.Kind == "" {
		req.Kind = KindPromote
	}
	defer func() {
		detail := joinDetail(req.Version, req.Reason)
		if req.Override != "" {
			detail = joinDetail(detail, "(overriding the freeze: "+req.Override+")")
		}
		if a := req.approved; a != nil {
			detail = joinDetail(detail, fmt.Sprintf("(request %s, approved by %s)", a.ID, strings.Join(a.Approvers(), ", ")))
		}
		if err == nil && out != nil && out.Approval != nil {
			// The promote became a request: that is what was done, as
			// asked; the deploy, when approved, is a record of its own.
			s.Audit(ctx, AuditEntry{Site: req.Site, Actor: req.Actor, Action: ActionApprovalRequested, Result: ResultOK,
				Detail: shorten(joinDetail(detail, fmt.Sprintf("(request %s waits for %d approval(s))", out.Approval.ID, out.Approval.Required)), maxAuditDetail)})
			return
		}
		s.auditDeploy(ctx, req.Site, req.Actor, req.Kind, detail, out, err)
	}()
	// deploybot's own deploys (an approved promote runs as its asker, an
	// automatic rollback as deploybot) were decided already; a caller's
	// promote is checked here, whichever door it came through.
	if req.approved == nil && req.lockAfter == nil {
		if req.Kind != KindPromote {
			return nil, Errorf(EINVALID, "a %s goes through Rollback, which checks where it goes", req.Kind)
		}
		site, err := s.Site(req.Site)
		if err != nil {
			return nil, err
		}
		p, err := s.authorize(ctx, site, "promote", req.Actor)
		if p.Kind != "" {
			req.Actor = p.String()
		}
		if err == nil && req.Override != "" {
			_, err = s.authorize(ctx, site, "override-freeze", req.Actor)
		}
		if err != nil {
			return nil, err
		}
	}
	return s.deploy(ctx, req, progress)
}

// deploy is Promote and Rollback, without the audit record.
func (s *Service) deploy(ctx context.Context, req PromoteRequest, progress Progress) (*Outcome, error) {
	if progress == nil {
		progress = func(Event) {}
	}
	if req.Kind == "" {
		req.Kind = KindPromote
	}
	site, err := s.Site(req.Site)
	if err != nil {
		return nil, err
	}
	if err := checkReason("the reason", req.Reason); err != nil {
		return nil, err
	}
	if err := checkReason("the reason for overriding the freeze", req.Override); err != nil {
		return nil, err
	}
	if err := ValidateVersion(req.Version); err != nil {
		return nil, err
	}
	if req.Actor == "" {
		return nil, Errorf(EINVALID, "a deploy needs an actor")
	}
	cdn, err := s.cdn(site)
	if err != nil {
		return nil, err
	}
	out, err := s.promote(ctx, site, cdn, req, progress)
	if err != nil && out == nil {
		// Refused before a deploy started: nothing changed, and the
		// message says what visitors get meanwhile.
		err = s.withLive(ctx, site, cdn, err)
	}
	return out, err
}

// withLive adds what is live to a refusal: the CDN's answer, or the
// store's record when AWS cannot be read.
func (s *Service) withLive(ctx context.Context, site Site, cdn CDN, err error) error {
	var live string
	if cur, cerr := cdn.Current(ctx, site); cerr == nil {
		live = orNone(cur.Version)
	} else if l, _, serr := s.Store.Live(ctx, site.Name); serr == nil {
		live = "unknown (AWS did not answer; last recorded: " + orNone(l.Version) + ")"
	} else {
		return err
	}
	return &Error{Code: ErrorCode(err), Message: ErrorMessage(err) + "; nothing changed, live: " + live, Err: err}
}

func (s *Service) promote(ctx context.Context, site Site, cdn CDN, req PromoteRequest, progress Progress) (*Outcome, error) {
	// A release is promotable only while its manifest is in the bucket:
	// that is what says its upload finished (and that it was not pruned).
	rel, _, manifest, err := s.record(ctx, site.Name, req.Version)
	if err != nil {
		if errors.Is(err, ErrNoManifest) {
			return nil, &Error{Code: ENOTFOUND, Err: err,
				Message: fmt.Sprintf("site %s has no release %s: no manifest in the bucket (never published, upload unfinished, or pruned)", site.Name, req.Version)}
		}
		return nil, err
	}
	if l, err := s.Store.Lock(ctx, site.Name); err != nil {
		return nil, err
	} else if l != nil {
		return nil, s.lockError(*l)
	}
	if err := s.guard(ctx, site, req); err != nil {
		return nil, err
	}
	if !req.NoVerify {
		rep, err := s.verify(ctx, site, manifest)
		if err != nil {
			return nil, err
		}
		if !rep.OK() {
			return nil, Errorf(ECONFLICT, "refusing to promote %s of %s: %s", req.Version, site.Name, rep.Summary()).WithHint(HintNoVerify)
		}
	}
	if pf, ok := cdn.(Preflighter); ok {
		if err := pf.Preflight(ctx, site); err != nil {
			return nil, err
		}
	}
	cur, err := cdn.Current(ctx, site)
	if err != nil {
		return nil, err
	}
	if err := s.staleShare(ctx, site, cdn, cur); err != nil {
		return nil, err
	}
	if cur.Version == req.Version {
		// A deploy that started meanwhile may have just flipped to this
		// very version and still be propagating: that is "busy", not
		// "already live".
		if l, err := s.Store.Lock(ctx, site.Name); err != nil {
			return nil, err
		} else if l != nil {
			return nil, s.lockError(*l)
		}
		return &Outcome{AlreadyLive: true, Version: req.Version}, nil
	}
	if err := s.checkBack(ctx, site, rel, cur, req); err != nil {
		return nil, err
	}
	roller, err := s.gradual(site, cdn, req)
	if err != nil {
		return nil, err
	}
	if needsApproval(site, req) {
		return s.ask(ctx, site, cur, req, manifest.ETag)
	}
	carry := s.carryStep(ctx, site, cur, manifest)
	d, lock := s.newDeploy(ctx, site, cdn, cur, req, manifest)
	if roller != nil {
		salt, err := roller.NewSalt()
		if err != nil {
			return nil, err
		}
		d.Rollout = newRollout(site, salt)
	}
	// Known as running before the lock is visible, so that nobody in this
	// process sees the lock without its runner and takes it for abandoned.
	running.Store(d.ID, true)
	defer running.Delete(d.ID)
	if err := s.Store.StartDeploy(ctx, d, lock); err != nil {
		var le *LockedError
		if errors.As(err, &le) {
			return nil, s.lockError(le.Lock)
		}
		return nil, err
	}
	log := s.logger().With("deploy_id", d.ID, "site", site.Name)
	log.InfoContext(ctx, "deploy started", "kind", d.Kind, "from", d.From, "to", d.To, "actor", d.Actor, "reason", d.Reason)
	progress(Event{Type: EventDeployStarted, Deploy: d})

	err = s.run(ctx, &d, s.promoteSteps(site, cdn, cur, req, &d, manifest, carry, roller), false, log, progress)
	return &Outcome{Deploy: &d, Version: req.Version}, s.afterHealth(ctx, site, &d, err, progress)
}

// gradual is the Roller of a gradual promote (nil for one that is not),
// or why it cannot be.
func (s *Service) gradual(site Site, cdn CDN, req PromoteRequest) (Roller, error) {
	if !req.Gradual {
		return nil, nil
	}
	if req.Kind != KindPromote {
		return nil, Errorf(EINVALID, "a %s is never gradual: it goes back for everyone at once", req.Kind)
	}
	return s.rollerOf(site, cdn)
}

// promoteSteps are a deploy's steps: the carry of skew protection, the
// rollout's (when gradual), the strategy's flip with the visible phase,
// and a promote's health checks.
func (s *Service) promoteSteps(site Site, cdn CDN, cur Current, req PromoteRequest, d *Deploy, manifest *Manifest, carry *Step, roller Roller) []Step {
	steps := s.afterFlip(site, cdn.Plan(site, cur, req.Version, d.ID), req.Version, manifest.Stamped)
	if roller != nil {
		steps = s.rolloutSteps(site, roller, d, 0, steps, manifest.Stamped)
	}
	if carry != nil {
		steps = append([]Step{*carry}, steps...)
	}
	if h := s.healthStep(site); h != nil && req.Kind == KindPromote {
		steps = append(steps, *h)
	}
	return steps
}

// newDeploy is the record of a deploy about to start, and the lock it
// takes.
func (s *Service) newDeploy(ctx context.Context, site Site, cdn CDN, cur Current, req PromoteRequest, manifest *Manifest) (Deploy, Lock) {
	var fromManifest string
	if cur.Version != "" {
		if r, err := s.Store.Release(ctx, site.Name, cur.Version); err == nil {
			fromManifest = r.ManifestETag
		}
	}
	now := s.now()
	id := s.newID()
	var approvedBy []string
	if a := req.approved; a != nil {
		id, approvedBy = a.ID, a.Approvers()
	}
	d := Deploy{
		ID: id, ApprovedBy: approvedBy, Site: site.Name, Kind: req.Kind, Actor: req.Actor, Reason: req.Reason,
		From: cur.Version, FromPath: cur.Path, To: req.Version, ToManifest: manifest.ETag, FromManifest: fromManifest, Strategy: cdn.Strategy(),
		Phase: PhasePending, StartedAt: now, LockAfter: req.lockAfter, Door: DoorOf(ctx),
	}
	host, pid := s.runner()
	lock := Lock{Site: site.Name, Holder: req.Actor, Reason: fmt.Sprintf("%s %s", req.Kind, req.Version), DeployID: d.ID, Since: now,
		Host: host, PID: pid, Process: processID, Heartbeat: now}
	return d, lock
}

// checkBack refuses a promote to a release older than the live one unless
// the request says it goes back: every door asks, or makes its caller
// say so, rather than going back silently.
func (s *Service) checkBack(ctx context.Context, site Site, rel Release, cur Current, req PromoteRequest) error {
	if req.Back && req.BackFrom != "" && cur.Version != req.BackFrom {
		return Errorf(ECONFLICT, "%s is live on %s now, not %s as when going back to %s was confirmed; nothing changed: ask again", orNone(cur.Version), site.Name, req.BackFrom, rel.Version)
	}
	if req.Kind != KindPromote || req.Back || cur.Version == "" {
		return nil
	}
	live, err := s.Store.Release(ctx, site.Name, cur.Version)
	if ErrorCode(err) == ENOTFOUND {
		return nil // a live release deploybot never recorded: no age to compare
	} else if err != nil {
		return err
	}
	if !GoesBack(rel, live) {
		return nil
	}
	// A deploy running now may have just flipped past this release:
	// then the site is busy, which is what the caller must hear.
	if l, err := s.Store.Lock(ctx, site.Name); err != nil {
		return err
	} else if l != nil {
		return s.lockError(*l)
	}
	return Errorf(ECONFLICT, "%s is older than the live %s on %s (published %s, live %s): promoting it goes back. Roll back to it if it was live before, or say you mean it",
		rel.Version, live.Version, site.Name, rel.PublishedAt.UTC().Format("2006-01-02 15:04Z"), live.PublishedAt.UTC().Format("2006-01-02 15:04Z")).WithHint(HintGoBack)
}

// afterHealth rolls back a promote whose health checks failed; other
// outcomes pass through.
func (s *Service) afterHealth(ctx context.Context, site Site, d *Deploy, err error, progress Progress) error {
	var herr *HealthError
	if !errors.As(err, &herr) {
		return err
	}
	return s.autoRollback(ctx, site, d, herr, progress)
}

// run executes the steps of d and finishes it. The final store write uses a
// context that outlives cancellation, so an interrupted deploy is still
// recorded truthfully as failed, with the phase it stopped in.
func (s *Service) run(ctx context.Context, d *Deploy, steps []Step, flipped bool, log *slog.Logger, progress Progress) error {
	running.Store(d.ID, true)
	defer running.Delete(d.ID)
	// Claim the lock for this process (a resumed deploy takes it over from
	// its dead runner) and keep its heartbeat fresh while the steps run.
	claim, err := s.claimRun(ctx, d, nil)
	if err != nil {
		return s.handedOver(ctx, d, err, log, progress)
	}
	// A heartbeat that finds the lock run by another process now cancels
	// the steps with ErrFenced: this process stops acting the moment it
	// learns it was taken over.
	runCtx, stopRun := context.WithCancelCause(ctx)
	defer stopRun(nil)
	stopBeat := make(chan struct{})
	defer close(stopBeat)
	go s.beat(runCtx, claim, stopBeat, stopRun)
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	flipCtx, cancel := context.WithTimeout(runCtx, timeout)
	defer cancel()
	// A rollout holds for people and intervals: no deadline for the whole,
	// each step that does not wait gets the timeout of its own.
	perStep := slices.ContainsFunc(steps, func(st Step) bool { return st.Waits })
	if perStep {
		flipCtx = runCtx
	}

	rc := runContexts{ctx: ctx, run: runCtx, flip: flipCtx, timeout: timeout, perStep: perStep}
	for _, step := range steps {
		if flipped, err = s.runStep(rc, d, step, flipped, log, progress); err != nil {
			return err
		}
	}
	return s.finish(ctx, d, log, progress)
}

type noteKey struct{}

// Note lets a running step tell the deploy's audience what it waits for
// (a phase_note event: the Slack thread, the command line's output). It
// does nothing outside a deploy's step.
func Note(ctx context.Context, text string) {
	if f, ok := ctx.Value(noteKey{}).(func(string)); ok {
		f(text)
	}
}

// stopped handles a stop (ErrShutdown) of d's run: with EndOnStop, a
// deploy that has flipped ends there (endStopped); any other is left for
// recovery (interrupt). One that had not flipped is always left: whether
// an update in flight reached AWS is known only by asking it again.
func (s *Service) stopped(ctx context.Context, d *Deploy, flipped bool, log *slog.Logger, progress Progress) error {
	if flipped && s.EndOnStop {
		return s.endStopped(ctx, d, log, progress)
	}
	return s.interrupt(ctx, d, flipped, log, progress)
}

// endStopped ends the record of d, stopped after its flip: To is live
// (the CDN points at it), so the live pointer follows and the lock goes;
// the deploy is failed, with what it did not do, since the steps after
// the flip (a propagation wait, an invalidation, the visible phase, the
// health checks) did not run: visitors may get cached files of From
// until they expire. The error wraps ErrShutdown: the record is an
// interruption, not a failure of AWS.
func (s *Service) endStopped(ctx context.Context, d *Deploy, log *slog.Logger, progress Progress) error {
	phase := d.Phase
	if n := len(d.Phases); n > 0 && d.Phases[n-1].Ended.IsZero() {
		d.Phases[n-1].Error = "stopped"
	}
	cause := Errorf(ECONFLICT, "stopped in phase %s after the flip, before the deploy's last steps: visitors may get cached files of %s until they expire: %w",
		phase, orNone(d.From), ErrShutdown)
	return s.fail(ctx, d, true, cause, log, progress)
}

// interrupt leaves d in its phase, lock held, for recovery: by serve when
// it starts, or by `deploybot recover`. Being stopped is no failure of the
// deploy, and no internal error either; the message says where it stopped
// and what visitors get meanwhile.
func (s *Service) interrupt(ctx context.Context, d *Deploy, flipped bool, log *slog.Logger, progress Progress) error {
	if n := len(d.Phases); n > 0 {
		d.Phases[n-1].Error = "interrupted; resumes on recovery"
	}
	// The record of the interruption is written by whoever ran d (the
	// caller of Promote, or resume); recovery must not write it again.
	d.InterruptRecorded = true
	if err := s.Store.SaveDeploy(context.WithoutCancel(ctx), *d); err != nil {
		log.ErrorContext(ctx, "recording interrupted deploy", "err", err)
	}
	if sh, ok := s.Store.(*SharedStore); ok {
		// Handed to whichever replica looks next, not left until this
		// process's heartbeats are missed.
		if err := sh.LeaveRun(context.WithoutCancel(ctx), d.Site, d.ID); err != nil {
			log.WarnContext(ctx, "marking the interrupted deploy's runner gone; another process resumes it once its heartbeat is stale", "err", err)
		}
	}
	log.WarnContext(ctx, "deploy interrupted; it resumes on recovery", "phase", d.Phase)
	progress(Event{Type: EventDeployInterrupted, Deploy: d.clone(), Phase: d.Phase})
	live := d.From
	if flipped {
		live = d.To
	}
	return Errorf(ECONFLICT, "deploy %s (%s %s) was interrupted in phase %s; live now: %s (the site stays locked); it resumes when deploybot serve starts, or by recovery: %w",
		d.ID, d.Kind, d.To, d.Phase, orNone(live), ErrShutdown).WithHint(HintRecover)
}

// handedOver stops running d because another process holds its lock now
// (cause wraps ErrFenced): nothing more is written to the shared state,
// and the local record stays in its phase until the history says how the
// other process ended it (recovery adopts it from there).
func (s *Service) handedOver(ctx context.Context, d *Deploy, cause error, log *slog.Logger, progress Progress) error {
	if n := len(d.Phases); n > 0 && d.Phases[n-1].Ended.IsZero() {
		d.Phases[n-1].Error = "handed over to another process"
	}
	if err := s.Store.SaveDeploy(context.WithoutCancel(ctx), *d); err != nil && !errors.Is(err, ErrFenced) {
		log.ErrorContext(ctx, "recording the handed-over deploy", "err", err)
	}
	log.WarnContext(ctx, "deploy handed over: another process runs it now; this one stopped", "phase", d.Phase, "why", ErrorMessage(cause))
	progress(Event{Type: EventDeployInterrupted, Deploy: d.clone(), Phase: d.Phase})
	return Errorf(ECONFLICT, "deploy %s (%s %s) of %s is run by another process now, which finishes it; this one stopped in phase %s: %w",
		d.ID, d.Kind, d.To, d.Site, d.Phase, ErrFenced)
}

func (s *Service) fail(ctx context.Context, d *Deploy, flipped bool, cause error, log *slog.Logger, progress Progress) error {
	prev := *d // what stays recorded if another process runs d now
	d.Phase = PhaseFailed
	d.FinishedAt = s.now()
	s.endRollout(ctx, d, flipped, cause)
	d.fillLockAfter()
	d.Error = ErrorMessage(cause)
	// Once the CDN points at the new release, that release is what visitors
	// get (or will, as it propagates), so the live pointer follows the truth
	// even though the deploy did not finish.
	var live *Live
	if flipped {
		live = &Live{Version: d.To, Since: d.FinishedAt, DeployID: d.ID}
	}
	if err := s.Store.FinishDeploy(context.WithoutCancel(ctx), *d, live); errors.Is(err, ErrFenced) {
		// Taken over since the last heartbeat: the other process ends
		// it, and this one records no failure of its own.
		*d = prev
		return s.handedOver(ctx, d, err, log, progress)
	} else if err != nil {
		log.ErrorContext(ctx, "recording failed deploy", "err", err)
		cause = fmt.Errorf("%w (and recording the failure failed: %v)", cause, err)
	}
	nowLive := d.From
	if flipped {
		nowLive = d.To
	}
	if nowLive == "" {
		nowLive = "(no release)"
	}
	phase := PhasePending
	if n := len(d.Phases); n > 0 {
		phase = d.Phases[n-1].Phase
	}
	err := Errorf(ErrorCode(cause), "deploy %s failed in phase %s; live now: %s: %w", d.ID, phase, nowLive, cause)
	log.ErrorContext(ctx, "deploy failed", "err", cause, "flipped", flipped, "live", nowLive)
	progress(Event{Type: EventDeployFailed, Deploy: d.clone(), Elapsed: d.FinishedAt.Sub(d.StartedAt), Err: err})
	return err
}

func (d Deploy) clone() Deploy {
	d.Phases = slices.Clone(d.Phases)
	if d.Rollout != nil {
		ro := *d.Rollout
		ro.Steps = slices.Clone(ro.Steps)
		d.Rollout = &ro
	}
	return d
}
