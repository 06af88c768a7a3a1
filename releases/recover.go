package releases

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"
)

// recoverScan is how many recent deploys of a site recovery looks at. Only
// one deploy per site runs at a time, so a dangling one is among the newest.
const recoverScan = 50

// Recover finishes deploys left in a non-final phase by a crash or a
// shutdown: each is resumed from the truth in the CDN to completion, or
// marked failed with the reason; either way its lock is released. Deploys
// this process runs, and deploys whose lock shows a live runner elsewhere
// (RunnerGone), are left alone. A deploy whose truth cannot be
// read (AWS unreachable) is left as it is and reported in the error, for
// the next attempt.
func (s *Service) Recover(ctx context.Context, progress Progress) (recovered []Deploy, err error) {
	ctx = ownJob(ctx)
	var errs []error
	for _, site := range s.Sites {
		r, err := s.recoverSite(ctx, site, progress)
		recovered = append(recovered, r...)
		if err != nil {
			errs = append(errs, err)
		}
	}
	return recovered, errors.Join(errs...)
}

// ownJob is ctx for deploybot's own background work (serve's recovery and
// reconcile): its records name door schedule and actor deploybot, unless
// a door said otherwise.
func ownJob(ctx context.Context) context.Context {
	if DoorOf(ctx) == "" {
		ctx = WithDoor(ctx, DoorSchedule)
	}
	if _, ok := PrincipalOf(ctx); !ok {
		ctx = WithPrincipal(ctx, System)
	}
	return ctx
}

// RecoverSite is Recover for one site: `deploybot recover --site S`, for
// people who run deploys from the command line without serve. A deploy
// whose runner is alive, here or elsewhere, is refused (ECONFLICT), not
// touched.
func (s *Service) RecoverSite(ctx context.Context, siteName string, progress Progress) ([]Deploy, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	l, err := s.Store.Lock(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	if l != nil && l.DeployID != "" && !s.RunnerGone(*l) {
		err := Errorf(ECONFLICT, "%s of site %s is running (%s, alive %s ago); there is nothing to recover",
			lockWhat(*l), site.Name, runnerText(*l), s.now().Sub(l.lastAlive()).Round(time.Second))
		s.audit(ctx, site.Name, AutoActor, "recover", "", err)
		return nil, err
	}
	return s.recoverSite(ctx, site, progress)
}

func (s *Service) recoverSite(ctx context.Context, site Site, progress Progress) (recovered []Deploy, err error) {
	if progress == nil {
		progress = func(Event) {}
	}
	var errs []error
	// A prune that died holding the lock left nothing to finish but
	// the lock itself (its next run redoes the work).
	if l, err := s.Store.Lock(ctx, site.Name); err == nil && l != nil && strings.HasPrefix(l.DeployID, prunePrefix) {
		if s.RunnerGone(*l) {
			s.logger().WarnContext(ctx, "releasing the lock of an interrupted prune", "site", site.Name, "prune", l.DeployID)
			err := s.Store.ReleaseLockOf(ctx, site.Name, l.DeployID)
			if err != nil {
				errs = append(errs, err)
			}
			s.audit(ctx, site.Name, AutoActor, "recover", fmt.Sprintf("released the lock of %s (by %s), whose runner %s is gone; its next run does what it left",
				l.DeployID, l.Holder, runnerText(*l)), err)
		}
	}
	// A deploy another process started, whose record is shared with its
	// lock, is finished here like one of this store's, once its runner is
	// gone (never while it runs: both would act).
	shared, isShared := s.Store.(*SharedStore)
	if isShared {
		if l, err := s.Store.Lock(ctx, site.Name); err != nil {
			errs = append(errs, err)
		} else if l != nil && l.DeployID != "" && !strings.HasPrefix(l.DeployID, prunePrefix) && s.RunnerGone(*l) {
			if err := shared.ImportRunning(ctx, site.Name); err != nil {
				errs = append(errs, err)
			}
		}
	}
	deploys, err := s.Store.Deploys(ctx, site.Name, recoverScan)
	if err != nil {
		return nil, err
	}
	lock, err := s.Store.Lock(ctx, site.Name)
	if err != nil {
		errs = append(errs, err)
	}
	known := false
	for _, d := range deploys {
		known = known || lock != nil && d.ID == lock.DeployID
		if d.Phase.Final() {
			if isShared && lock != nil && lock.DeployID == d.ID {
				// Recorded as ended here, but the bucket's lock was
				// not freed then (the bucket did not answer): free it,
				// or hand it to the lock the deploy left behind. A lock
				// naming the process before a restart (or another
				// whose runner is gone) is taken over first, so that
				// the free is this process's; a live runner's is left.
				if !runsHere(*lock) {
					if !s.RunnerGone(*lock) {
						continue
					}
					if _, err := s.claimRun(ctx, &d, lock); err != nil {
						continue // another process took it over
					}
				}
				if err := s.Store.FinishDeploy(ctx, d, nil); err != nil {
					errs = append(errs, err)
				}
			}
			continue
		}
		if _, alive := running.Load(d.ID); alive {
			continue
		}
		if isShared && (lock == nil || lock.DeployID != d.ID) {
			// Not ended here, and no longer holding the site: another
			// process ended it (this store imported it while it ran).
			// Its final record reaches this store from the history;
			// it is never run again.
			if err := s.adoptFinal(ctx, site, d); err != nil {
				errs = append(errs, err)
			}
			continue
		}
		if lock != nil && lock.DeployID == d.ID && !s.RunnerGone(*lock) {
			s.logger().InfoContext(ctx, "deploy runs in another process; left to it", "site", site.Name, "deploy_id", d.ID, "runner", runnerText(*lock))
			continue
		}
		var from *Lock
		if lock != nil && lock.DeployID == d.ID {
			from = lock
		}
		if err := s.resume(ctx, site, d, from, progress); err != nil && !isDeployFailure(err) {
			errs = append(errs, fmt.Errorf("recovering deploy %s of site %s: %w", d.ID, site.Name, err))
			continue
		}
		if final, err := s.Store.Deploy(ctx, site.Name, d.ID); err == nil {
			recovered = append(recovered, final)
		}
	}
	if lock != nil && lock.DeployID != "" && !known && !strings.HasPrefix(lock.DeployID, prunePrefix) && s.RunnerGone(*lock) {
		errs = append(errs, s.releaseOrphan(ctx, site, *lock))
	}
	return recovered, errors.Join(errs...)
}

// adoptFinal records in this store how deploy d ended in another process,
// from the bucket's history once that process has mirrored it there;
// until then d is left as it is.
func (s *Service) adoptFinal(ctx context.Context, site Site, d Deploy) error {
	raw, err := s.Bucket.GetHistory(ctx, site, HistoryDeploys+d.ID+".json")
	if errors.Is(err, ErrNoHistory) {
		return nil
	} else if err != nil {
		return err
	}
	var final Deploy
	if err := json.Unmarshal(raw, &final); err != nil || final.ID != d.ID || final.Site != site.Name || !final.Phase.Final() {
		return nil // not (yet) a final record of this deploy: left alone
	}
	return s.Store.SaveDeploy(ctx, final)
}

// releaseOrphan frees the shared lock of a deploy this process has no
// record of, whose runner is gone: another process (a CI runner, another
// replica) started it and died with its record. Nothing here can finish
// it; what the CDN serves is the truth and the next deploy starts from it,
// so the lock goes, recorded with what is live.
func (s *Service) releaseOrphan(ctx context.Context, site Site, l Lock) error {
	live := "unknown"
	if _, cur, err := s.current(ctx, site); err == nil {
		live = orNone(cur.Version)
	}
	s.logger().WarnContext(ctx, "releasing the lock of a deploy whose runner is gone and of which this deploybot has no record", "site", site.Name, "deploy_id", l.DeployID, "runner", runnerText(l), "live", live)
	err := s.Store.ReleaseLockOf(ctx, site.Name, l.DeployID)
	result := "ok"
	if err != nil {
		result = "failed"
	}
	s.Audit(WithPrincipal(ctx, System), AuditEntry{Site: site.Name, Actor: AutoActor, Action: "recover", Result: result,
		Detail: shorten(fmt.Sprintf("released the lock of %s (%s by %s): its runner %s is gone and no record of it is here; live: %s",
			l.DeployID, l.Reason, l.Holder, runnerText(l), live), maxAuditDetail)})
	return err
}

// isDeployFailure reports an error that means the deploy ran to a final
// (failed) state, as opposed to one that kept it from running.
func isDeployFailure(err error) bool {
	var df *deployFailed
	return errors.As(err, &df)
}

type deployFailed struct{ err error }

func (e *deployFailed) Error() string { return e.err.Error() }
func (e *deployFailed) Unwrap() error { return e.err }

func (s *Service) resume(ctx context.Context, site Site, d Deploy, from *Lock, progress Progress) error {
	log := s.logger().With("deploy_id", d.ID, "site", site.Name)
	cdn, err := s.cdn(site)
	if err != nil {
		return err
	}
	// One recovery of d at a time in this process (serve's watch and its
	// reconcile may both find it): the first claims it here.
	if _, busy := running.LoadOrStore(d.ID, true); busy {
		return nil
	}
	defer running.Delete(d.ID)
	// Taken over in the lock before anything is read or done: of two
	// processes recovering d at once, the one whose claim lost is told
	// and leaves it.
	if _, err := s.claimRun(ctx, &d, from); err != nil {
		log.InfoContext(ctx, "another process took the interrupted deploy over; left to it", "why", ErrorMessage(err))
		return nil
	}
	// The run that stopped is recorded as interrupted once: by itself
	// when it saw the stop, else (killed outright) here, for its actor
	// and door. This run's own interruption, if any, is unrecorded yet.
	if !d.InterruptRecorded {
		s.auditFor(ctx, &d, ResultInterrupted, d.Door, fmt.Sprintf("%s: deploy %s stopped in phase %s with its process (found by recovery)", d.To, d.ID, d.Phase))
	}
	d.InterruptRecorded = false
	steps, flipped, err := s.resumeSteps(ctx, site, cdn, d)
	if err != nil {
		if ErrorCode(err) != ECONFLICT {
			log.WarnContext(ctx, "cannot read the truth to recover an interrupted deploy; will try again", "phase", d.Phase, "err", err)
			return err
		}
		log.WarnContext(ctx, "interrupted deploy cannot be finished; marking it failed", "phase", d.Phase, "reason", ErrorMessage(err))
		progress(Event{Type: EventDeployResumed, Deploy: d.clone(), Phase: d.Phase})
		err = s.fail(ctx, &d, flipped, err, log, progress)
		s.auditResumed(ctx, &d, err)
		return &deployFailed{err}
	}
	log.WarnContext(ctx, "resuming interrupted deploy", "phase", d.Phase, "kind", d.Kind, "from", d.From, "to", d.To, "flipped", flipped)
	// Who recovers (the door's principal; deploybot for serve's own
	// recovery) resumed it; the outcome is the deploy's actor's.
	s.auditAs(ctx, site.Name, AutoActor, string(d.Kind), ResultResumed, fmt.Sprintf("%s: deploy %s of %s, from phase %s", d.To, d.ID, d.Actor, d.Phase), nil)
	progress(Event{Type: EventDeployResumed, Deploy: d.clone(), Phase: d.Phase})
	err = s.afterHealth(ctx, site, &d, s.run(ctx, &d, steps, flipped, log, progress), progress)
	s.auditResumed(ctx, &d, err)
	if err != nil {
		return &deployFailed{err}
	}
	return nil
}

// auditResumed records how a deploy that recovery ran ended, for its
// actor, through the door that recovered it.
func (s *Service) auditResumed(ctx context.Context, d *Deploy, err error) {
	result, ok := runResult(d, err)
	if !ok {
		return
	}
	detail := d.To + " (resumed)"
	if err != nil {
		detail = ErrorMessage(err)
	}
	s.auditFor(ctx, d, result, DoorOf(ctx), detail)
}

// ReconcileResult says what a reconcile found for one site.
type ReconcileResult struct {
	Site     string
	Added    []Release
	Drift    bool   // the CDN serves something other than the store's live pointer
	Live     string // what the CDN serves ("" when not a release of the site)
	Path     string
	Recorded string // what the store said before
	Skipped  string // why the drift check was skipped, if it was
}

// Reconcile records releases found in the bucket and makes the store's live
// pointer follow the CDN (someone flipped by hand, or a crash). A site with
// a deploy in progress is not checked for drift: it is expected there.
func (s *Service) Reconcile(ctx context.Context, siteName string) (*ReconcileResult, error) {
	ctx = ownJob(ctx)
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	res := &ReconcileResult{Site: site.Name}
	if res.Added, err = s.Sync(ctx, site.Name); err != nil {
		return res, err
	}
	lock, err := s.Store.Lock(ctx, site.Name)
	if err != nil {
		return res, err
	}
	if lock != nil && lock.DeployID != "" {
		res.Skipped = "deploy " + lock.DeployID + " in progress"
		return res, nil
	}
	_, cur, err := s.current(ctx, site)
	if err != nil {
		return res, err
	}
	res.Live, res.Path = cur.Version, cur.Path
	live, ok, err := s.Store.Live(ctx, site.Name)
	if err != nil {
		return res, err
	}
	res.Recorded = live.Version
	if ok && live.Version == cur.Version || !ok && cur.Version == "" {
		return res, nil
	}
	res.Drift = true
	s.logger().WarnContext(ctx, "DRIFT: the distribution serves something other than the recorded live release; recording what is really live",
		"site", site.Name, "recorded", live.Version, "origin_path", cur.Path, "live", cur.Version)
	err = s.Store.SetLive(ctx, site.Name, Live{Version: cur.Version, Since: s.now()})
	s.audit(ctx, site.Name, AutoActor, "reconcile", fmt.Sprintf("drift: the distribution serves %s (origin %q), not the recorded %s; recorded %s as live (changed outside deploybot)",
		orNone(cur.Version), cur.Path, orNone(live.Version), orNone(cur.Version)), err)
	return res, err
}

// resumeSteps are what is left of d, interrupted in its phase, read from
// the truth in AWS: the steps to run and whether the CDN already points
// at d.To. An ECONFLICT error means it cannot be finished.
func (s *Service) resumeSteps(ctx context.Context, site Site, cdn CDN, d Deploy) (steps []Step, flipped bool, err error) {
	asCDN := d
	if d.Phase == PhaseCarry {
		// The carry runs before the CDN is touched: to the strategy this
		// deploy is still pending.
		asCDN.Phase = PhasePending
	}
	// Whether the release can be watched: read from its manifest only
	// where a visible phase may follow, and only when the site is watched.
	stamped := func() bool {
		if !s.watches(site) {
			return false
		}
		// Streamed within the manifest budget: only the flag is kept.
		m, err := s.manifests().read(ctx, site, d.To, nil, func(ManifestFile, bool) error { return nil })
		return err == nil && m.Stamped
	}
	rolled, rflipped, isRollout, rerr := s.resumeRollout(ctx, site, cdn, asCDN, stamped)
	switch {
	case isRollout && d.Phase != PhaseHealth && d.Phase != PhaseVisible:
		steps, flipped, err = rolled, rflipped, rerr
		if err == nil {
			steps = s.afterFlip(site, steps, d.To, stamped())
			// Then the checks a promote runs once everyone has it.
			if h := s.healthStep(site); h != nil && d.Kind == KindPromote {
				steps = append(steps, *h)
			}
		}
	case d.Phase == PhaseHealth:
		// Flipped, invalidated, and interrupted while checking: check again.
		if h := s.healthStep(site); h != nil {
			steps = []Step{*h}
		}
		flipped = true
	case d.Phase == PhaseVisible:
		// Flipped and interrupted while watching the site: watch again
		// (or, if it can no longer be watched, wait as the strategy
		// would), then check its health as the promote would have.
		var waits []Step
		for _, st := range cdn.Plan(site, Current{Version: d.From, Path: d.FromPath}, d.To, d.ID) {
			if st.Propagation > 0 {
				waits = append(waits, st)
			}
		}
		steps = s.afterFlip(site, waits, d.To, stamped())
		if isRollout && rerr == nil {
			// The share is cleared after the flip is seen.
			steps = append(steps, rolled[len(rolled)-1])
		}
		if h := s.healthStep(site); h != nil && d.Kind == KindPromote {
			steps = append(steps, *h)
		}
		flipped = true
	default:
		steps, flipped, err = cdn.Resume(ctx, site, asCDN)
		if err == nil {
			steps = s.afterFlip(site, steps, d.To, stamped())
		}
	}
	return steps, flipped, err
}
