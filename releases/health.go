package releases

import (
	"bytes"
	"context"
	"fmt"
	"time"
)

// HealthCheck is one URL checked through the distribution after a promote.
type HealthCheck struct {
	URL      string // absolute, through the site's public domain
	Status   int    // expected status; zero means 200
	Contains string // optional text the body must contain
}

// HealthPolicy is a site's health checks. After a promote has flipped and
// invalidated, every check runs each Interval for Settle; a check that
// fails Failures times in a row fails the deploy, which is then rolled
// back automatically and the site locked ("auto-rollback"), so nobody
// re-promotes the bad release by accident. A zero Settle is one round of
// checks (each check tried up to Failures times); zero Interval or Failures
// take the defaults below.
type HealthPolicy struct {
	Checks   []HealthCheck
	Settle   time.Duration
	Interval time.Duration
	Failures int
}

// Health defaults: a minute of checks every ten seconds; two failures in
// a row, so one dropped connection does not roll a site back.
const (
	DefaultHealthSettle   = time.Minute
	DefaultHealthInterval = 10 * time.Second
	DefaultHealthFailures = 2
)

// PhaseHealth is the health-check step after a promote's flip.
const PhaseHealth Phase = "health"

// Prober fetches a health check URL (an HTTP adapter at the edge).
type Prober interface {
	Probe(ctx context.Context, url string) (status int, body []byte, err error)
}

// HealthError says which check failed and how; a promote that fails with
// it has been rolled back.
type HealthError struct {
	Check  HealthCheck
	Detail string // "answered 502", "body lacks \"<title>\"", "timeout ..."
	Times  int
}

func (e *HealthError) Error() string {
	return fmt.Sprintf("health check %s failed %d time(s) in a row: %s", e.Check.URL, e.Times, e.Detail)
}

// check runs one probe; "" means healthy.
func check(ctx context.Context, p Prober, c HealthCheck) string {
	want := c.Status
	if want == 0 {
		want = 200
	}
	status, body, err := p.Probe(ctx, c.URL)
	switch {
	case err != nil:
		return ErrorMessage(err)
	case status != want:
		return fmt.Sprintf("answered %d, want %d", status, want)
	case c.Contains != "" && !bytes.Contains(body, []byte(c.Contains)):
		return fmt.Sprintf("answered %d but the body lacks %q", status, c.Contains)
	}
	return ""
}

// healthStep checks site's health for the settle period, with the clock
// the service was given (After waits; tests make time run fast).
func (s *Service) healthStep(site Site) *Step {
	pol := site.Health
	if len(pol.Checks) == 0 || s.Prober == nil {
		return nil
	}
	settle, interval, failures := pol.Settle, pol.Interval, pol.Failures
	if interval <= 0 {
		interval = DefaultHealthInterval
	}
	if failures <= 0 {
		failures = DefaultHealthFailures
	}
	title := fmt.Sprintf("Checking %d URL(s) for %s", len(pol.Checks), settle)
	if settle <= 0 {
		title = fmt.Sprintf("Checking %d URL(s)", len(pol.Checks))
	}
	return &Step{Phase: PhaseHealth, Title: title,
		Run: func(ctx context.Context) error {
			streak := make([]int, len(pol.Checks))
			deadline := s.now().Add(settle)
			for {
				failing := false
				for i, c := range pol.Checks {
					detail := check(ctx, s.Prober, c)
					if ctx.Err() != nil {
						return ctx.Err()
					}
					if detail == "" {
						streak[i] = 0
						continue
					}
					streak[i]++
					failing = true
					s.logger().WarnContext(ctx, "health check failed", "site", site.Name, "url", c.URL, "detail", detail, "in_a_row", streak[i])
					if streak[i] >= failures {
						return &HealthError{Check: c, Detail: detail, Times: streak[i]}
					}
				}
				// At the end of settle, a check in the middle of a
				// failing streak is tried until it passes or the streak
				// reaches failures: the last probe decides, not the clock.
				if !failing && !s.now().Before(deadline) {
					return nil
				}
				if err := Wait(ctx, s.After, interval); err != nil {
					return err
				}
			}
		}}
}

// Wait waits d on after (nil: time.After), or until ctx ends: the one
// pause the services and the strategies share, so tests can make time run.
func Wait(ctx context.Context, after func(time.Duration) <-chan time.Time, d time.Duration) error {
	if after == nil {
		after = time.After
	}
	select {
	case <-after(d):
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}

// autoRollback answers a promote that failed its health checks: back to
// the release it replaced, then the site locked so that nobody promotes
// the bad release again by accident.
func (s *Service) autoRollback(ctx context.Context, site Site, d *Deploy, herr *HealthError, progress Progress) error {
	// Cut to what a reason may be: the check's URL and what it answered
	// are outside text of any length.
	reason := shorten(fmt.Sprintf("auto-rollback: %s failed health checks (%s)", d.To, herr.Error()), MaxReason-1)
	log := s.logger().With("deploy_id", d.ID, "site", site.Name)
	hold := Lock{Site: site.Name, Holder: AutoActor, Reason: "auto-rollback: " + d.To + " failed health checks; unlock when it is understood"}
	var rb *Outcome
	var rbErr error
	if d.From != "" {
		log.WarnContext(ctx, "health checks failed; rolling back", "to", d.From, "check", herr.Check.URL, "detail", herr.Detail)
		// A rollback that starts hands its own lock over to the
		// auto-rollback lock as it ends, in one transaction, whether it
		// succeeds or fails (or, interrupted by shutdown, when it ends
		// after the restart).
		rb, rbErr = s.Promote(WithPrincipal(context.WithoutCancel(ctx), System), PromoteRequest{Site: site.Name, Version: d.From, Actor: AutoActor,
			Reason: reason, Kind: KindRollback, NoVerify: true, lockAfter: &hold}, progress)
	}
	var lockErr error
	if rb == nil || rb.Deploy == nil {
		// The rollback never started (no earlier release, the site was
		// busy, the target refused): lock now.
		_, lockErr = s.LockSite(WithPrincipal(context.WithoutCancel(ctx), System), site.Name, AutoActor, hold.Reason)
	}
	// One sentence each for what failed, what is live and the lock, so
	// the message never contradicts itself whatever went wrong.
	failed := fmt.Sprintf("%s failed its health checks (%s)", d.To, herr.Error())
	locked := "the site is locked (auto-rollback) until someone unlocks it"
	if lockErr != nil {
		locked = "locking the site failed too (" + ErrorMessage(lockErr) + "): lock it by hand before anyone promotes again"
	}
	// The health error is wrapped (errors.As finds it) but not repeated:
	// failed already says it.
	switch {
	case d.From == "":
		return &Error{Code: ECONFLICT, Err: herr,
			Message: fmt.Sprintf("%s; there is no earlier release to roll back to, so %s stays live; %s", failed, d.To, locked)}
	case rbErr != nil:
		live := "unknown (the store could not be read)"
		if l, _, err := s.Store.Live(context.WithoutCancel(ctx), site.Name); err == nil {
			live = l.Version
		}
		return &Error{Code: EINTERNAL, Err: herr,
			Message: fmt.Sprintf("%s, and the automatic rollback to %s failed: %s; live now: %s; %s", failed, d.From, ErrorMessage(rbErr), live, locked)}
	}
	return &Error{Code: ECONFLICT, Err: herr, Message: fmt.Sprintf("%s; rolled back to %s automatically; %s", failed, d.From, locked)}
}

// AutoActor is who deploybot's own deploys and locks are recorded as.
const AutoActor = "deploybot"
