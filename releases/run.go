package releases

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"time"
)

// runContexts are a run's contexts: the caller's (a shutdown is its
// cause), the run's (a takeover cancels it with ErrFenced), and the one
// its steps run in (the deploy's deadline, unless each step has its own).
type runContexts struct {
	ctx, run, flip context.Context
	timeout        time.Duration
	perStep        bool
}

// runStep records step's phase, runs it and records how it went. A
// non-nil error ends the run (stopped, handed over or failed, as
// recorded); flipped says whether the CDN points at the release now.
func (s *Service) runStep(rc runContexts, d *Deploy, step Step, flipped bool, log *slog.Logger, progress Progress) (bool, error) {
	ctx := rc.ctx
	if errors.Is(context.Cause(ctx), ErrShutdown) {
		return flipped, s.stopped(ctx, d, flipped, log, progress)
	}
	if cause := context.Cause(rc.run); errors.Is(cause, ErrFenced) {
		return flipped, s.handedOver(ctx, d, cause, log, progress)
	}
	started := s.now()
	d.Phase = step.Phase
	d.Phases = append(d.Phases, PhaseRecord{Phase: step.Phase, Started: started})
	if err := s.Store.SaveDeploy(rc.flip, *d); err != nil {
		if errors.Is(err, ErrFenced) {
			return flipped, s.handedOver(ctx, d, err, log, progress)
		}
		return flipped, s.fail(ctx, d, flipped, fmt.Errorf("recording phase %s: %w", step.Phase, err), log, progress)
	}
	log.InfoContext(ctx, "phase started", "phase", step.Phase)
	progress(Event{Type: EventPhaseStarted, Deploy: d.clone(), Phase: step.Phase, Title: step.Title})

	phase := step.Phase
	stepCtx := context.WithValue(rc.flip, noteKey{}, func(text string) {
		progress(Event{Type: EventPhaseNote, Deploy: d.clone(), Phase: phase, Title: text})
	})
	stopStep := func() {}
	if rc.perStep && !step.Waits {
		stepCtx, stopStep = context.WithTimeout(stepCtx, rc.timeout)
	}
	err := step.Run(stepCtx)
	stopStep()
	ended := s.now()
	rec := &d.Phases[len(d.Phases)-1]
	// A rollout's abort ends it even when a shutdown came meanwhile: the
	// share is cleared, and resuming would only repeat the abort.
	if err != nil && !errors.Is(err, ErrRolloutAborted) && errors.Is(context.Cause(ctx), ErrShutdown) {
		return flipped, s.stopped(ctx, d, flipped, log, progress)
	}
	if cause := context.Cause(rc.run); err != nil && errors.Is(cause, ErrFenced) {
		return flipped, s.handedOver(ctx, d, cause, log, progress)
	}
	rec.Ended = ended
	if err != nil {
		if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
			err = Errorf(EINTERNAL, "deploy timed out after %s in phase %s: %w", rc.timeout, step.Phase, err)
		}
		rec.Error = ErrorMessage(err)
		log.ErrorContext(ctx, "phase failed", "phase", step.Phase, "seconds", ended.Sub(started).Seconds(), "err", err)
		progress(Event{Type: EventPhaseFailed, Deploy: d.clone(), Phase: step.Phase, Title: step.Title, Elapsed: ended.Sub(started), Err: err})
		return flipped, s.fail(ctx, d, flipped, err, log, progress)
	}
	if step.Flips {
		flipped = true
		d.FlippedAt = ended
	}
	if step.Record != nil {
		step.Record(d)
	}
	log.InfoContext(ctx, "phase finished", "phase", step.Phase, "seconds", ended.Sub(started).Seconds())
	progress(Event{Type: EventPhaseFinished, Deploy: d.clone(), Phase: step.Phase, Title: step.Title, Elapsed: ended.Sub(started)})
	return flipped, nil
}

// finish records d done, the live pointer moved and the lock freed.
func (s *Service) finish(ctx context.Context, d *Deploy, log *slog.Logger, progress Progress) error {
	prev := *d // what stays recorded if another process runs d now
	d.Phase = PhaseDone
	d.FinishedAt = s.now()
	d.fillLockAfter()
	live := &Live{Version: d.To, Since: d.FinishedAt, DeployID: d.ID}
	if err := s.Store.FinishDeploy(context.WithoutCancel(ctx), *d, live); errors.Is(err, ErrFenced) {
		*d = prev
		return s.handedOver(ctx, d, err, log, progress)
	} else if err != nil {
		log.ErrorContext(ctx, "recording finished deploy", "err", err)
		return Errorf(EINTERNAL, "%s is live, but recording the deploy failed: %w", d.To, err)
	}
	log.InfoContext(ctx, "deploy finished", "to", d.To, "seconds", d.FinishedAt.Sub(d.StartedAt).Seconds())
	progress(Event{Type: EventDeployFinished, Deploy: d.clone(), Elapsed: d.FinishedAt.Sub(d.StartedAt)})
	return nil
}
