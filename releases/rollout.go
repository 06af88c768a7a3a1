package releases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"
	"unicode/utf8"
)

// A rolling release (a gradual promote) sends a growing share of the
// site's visitors to the candidate before all of them: at each step of the
// site's RolloutPolicy the CDN is told the share (a Roller: the kvs
// strategy's rollout key), the change reaches the edge, the health checks
// run on the candidate's visitors, and the step holds for the policy's
// interval (or until someone advances it). After the last step the
// ordinary flip makes the candidate live for everyone and the share is
// cleared. It is one deploy, with a phase per step, holding the site's
// lock throughout; what people change while it runs (pause, resume,
// advance, abort) is written into the running deploy's record in the
// shared state (RolloutStore), where the runner reads it, so it works
// from any door and any process.
//
// An abort, by hand or by a failing health check, puts the share back to
// 0 with one write from whoever decided (the runner need not be alive),
// then the runner ends the deploy failed and leaves the site locked with
// the reason. Nothing else changes: the live release never stopped being
// live for the rest of the visitors.

// RolloutPolicy is a site's gradual promote: the percent of visitors the
// candidate reaches at each step (1 to 99, increasing; the full flip
// follows the last) and how long each step holds.
type RolloutPolicy struct {
	Steps    []int
	Interval time.Duration
}

// The rollout of a site that configures none.
var (
	DefaultRolloutSteps = []int{1, 10, 50}
)

// MaxRolloutInterval bounds a step's hold.
const MaxRolloutInterval = 24 * time.Hour

// DefaultRolloutInterval is how long a step holds when the site says not.
const DefaultRolloutInterval = 10 * time.Minute

// Validate says what is wrong with the steps, "" when nothing.
func (p RolloutPolicy) Validate() string {
	if len(p.Steps) == 0 {
		return "at least one step"
	}
	prev := 0
	for _, s := range p.Steps {
		if s < 1 || s > 99 {
			return fmt.Sprintf("steps are percents from 1 to 99 (got %d): the full flip follows the last", s)
		}
		if s <= prev {
			return fmt.Sprintf("steps only grow (%d after %d)", s, prev)
		}
		prev = s
	}
	if p.Interval < 0 || p.Interval > MaxRolloutInterval {
		return fmt.Sprintf("a hold of 0s to %s (got %s)", MaxRolloutInterval, p.Interval)
	}
	return ""
}

// withDefaults fills steps left out; the interval is as given (the
// configuration sets its default, and 0 there means no hold).
func (p RolloutPolicy) withDefaults() RolloutPolicy {
	if len(p.Steps) == 0 {
		p.Steps = DefaultRolloutSteps
	}
	return p
}

// valid reports whether r (nil: no rollout) is a plan deploybot makes:
// what a record read from the bucket must be before a runner or a
// recovery acts on it.
func (r *Rollout) valid() bool {
	if r == nil {
		return true
	}
	c := r.Control
	if len(c.PausedBy) > maxActor || c.Aborted != nil && (len(c.Aborted.By) > maxActor || utf8.RuneCountInString(c.Aborted.Reason) > MaxReason) {
		return false
	}
	return (RolloutPolicy{Steps: r.Steps, Interval: r.Interval}).Validate() == "" &&
		r.Percent >= 0 && r.Percent <= 100 && r.Advanced >= 0 && c.Advances >= 0
}

// maxActor bounds who a rollout's control names, read from the bucket.
const maxActor = 512

// Share is what a rollout asks of the CDN: Percent of the visitors, by
// cohort, get Candidate; the rest the live release. Salt varies which
// visitors come first from one rollout to the next. Percent 0 ends it.
type Share struct {
	Candidate string `json:"candidate"`
	Percent   int    `json:"percent"`
	Salt      uint32 `json:"salt"`
}

// Roller is a CDN that can send a share of the visitors to another
// release than the live one (the kvs strategy).
type Roller interface {
	// SetShare changes the share from what from says to what to says
	// (Percent 0: none, everyone on the live release). The CDN holding
	// neither is ECONFLICT (someone else changed it: an abort); holding
	// to already is done.
	SetShare(ctx context.Context, site Site, from, to Share) error
	// CurrentShare reads what the CDN is told now (Percent 0: none).
	CurrentShare(ctx context.Context, site Site) (Share, error)
	// ShareDelay is how long a written share takes to reach the edge.
	ShareDelay() time.Duration
	// CandidateCookie is a Cookie header that puts a request on
	// sh.Candidate, for the health checks of a step.
	CandidateCookie(sh Share) string
	// NewSalt is a salt for a new rollout.
	NewSalt() (uint32, error)
}

// CookieEdgeProber is an EdgeProber that can send a Cookie header
// (probe.HTTP): a rollout's step watches its candidate's visitors.
type CookieEdgeProber interface {
	ProbeReleaseWithCookie(ctx context.Context, url, cookie string) (release string, status int, err error)
}

// cookieEdge probes the edge with a fixed cookie.
type cookieEdge struct {
	p      CookieEdgeProber
	cookie string
}

func (c cookieEdge) ProbeRelease(ctx context.Context, url string) (string, int, error) {
	return c.p.ProbeReleaseWithCookie(ctx, url, c.cookie)
}

// CookieProber is a Prober that can send a Cookie header (probe.HTTP).
type CookieProber interface {
	ProbeWithCookie(ctx context.Context, url, cookie string) (status int, body []byte, err error)
}

// Rollout is a gradual deploy's plan and where it is (Deploy.Rollout).
type Rollout struct {
	Steps    []int         `json:"steps"`
	Interval time.Duration `json:"interval"`
	Salt     uint32        `json:"salt"`
	// Percent is the share the CDN was last told.
	Percent int `json:"percent"`
	// Advanced is how many of Control.Advances the holds have taken: an
	// advance asked while a step shares or checks ends that step's hold.
	Advanced int `json:"advanced,omitempty"`
	// Control is what people changed while it runs; the runner never
	// writes it (the shared store keeps it across the runner's saves).
	Control RolloutControl `json:"control"`
}

// RolloutControl is what a person asks of a running rollout.
type RolloutControl struct {
	Paused   bool   `json:"paused,omitempty"`
	PausedBy string `json:"paused_by,omitempty"`
	// Advances counts the advance requests; a hold ends on any it has not
	// taken (Rollout.Advanced), so several at once end one hold.
	Advances int `json:"advances,omitempty"`
	// Aborted, when set, ends the rollout.
	Aborted *RolloutAbort `json:"aborted,omitempty"`
}

// RolloutAbort is who stopped a rollout, why and when.
type RolloutAbort struct {
	By     string    `json:"by"`
	Reason string    `json:"reason"`
	At     time.Time `json:"at"`
}

// RolloutStore is a store that keeps the running deploy where every
// process reads it: the shared store.
type RolloutStore interface {
	// RunningDeploy is the deploy holding the site's lock, as the shared
	// state has it now; nil when none.
	RunningDeploy(ctx context.Context, site string) (*Deploy, error)
	// ControlRollout changes the control of the running rollout deployID
	// with fn, by compare-and-swap, and returns the deploy as written.
	// ENOTFOUND when no such rollout holds the site.
	ControlRollout(ctx context.Context, site, deployID string, fn func(*RolloutControl) error) (Deploy, error)
}

// Rollout actions.
const (
	RolloutPause   = "pause"
	RolloutResume  = "resume"
	RolloutAdvance = "advance"
	RolloutAbortIt = "abort"
)

// RolloutRequest is a person asking something of a site's rollout.
type RolloutRequest struct {
	Site   string
	Action string // RolloutPause, RolloutResume, RolloutAdvance, RolloutAbortIt
	Actor  string
	Reason string
}

// ErrRolloutAborted ends a rollout stopped by hand or by a health check.
var ErrRolloutAborted = errors.New("rollout aborted")

// Phases of a rollout: share-N (the CDN told N percent), hold-N, and
// share-end (the share cleared after the full flip). Health checks of a
// step run in check-N.
func sharePhase(p int) Phase { return Phase("share-" + strconv.Itoa(p)) }
func holdPhase(p int) Phase  { return Phase("hold-" + strconv.Itoa(p)) }
func checkPhase(p int) Phase { return Phase("check-" + strconv.Itoa(p)) }

const phaseShareEnd Phase = "share-end"

// rollerOf is the site's CDN as a Roller, or why it cannot roll out.
func (s *Service) rollerOf(site Site, cdn CDN) (Roller, error) {
	r, ok := cdn.(Roller)
	if !ok {
		return nil, Errorf(EINVALID, "site %s flips by %s, which serves one release to everyone: a gradual promote needs strategy kvs (deploybot kvs-setup)", site.Name, cdn.Strategy())
	}
	if _, ok := s.Store.(RolloutStore); !ok {
		return nil, Errorf(EINVALID, "a gradual promote needs the shared state in the bucket, which this process does not use")
	}
	if site.NoReleaseHeader {
		return nil, Errorf(EINVALID, "site %s has release_header: false, so no viewer-response function sets the cohort cookie that keeps a visitor on one release: a gradual promote needs it", site.Name)
	}
	return r, nil
}

// newRollout is the plan of a gradual deploy of site.
func newRollout(site Site, salt uint32) *Rollout {
	p := site.Rollout.withDefaults()
	return &Rollout{Steps: slices.Clone(p.Steps), Interval: p.Interval, Salt: salt}
}

// rolloutSteps are a gradual deploy's steps from step index from on: each
// step's share, its health checks and its hold, then the flip's own steps
// (flip), then the share cleared.
func (s *Service) rolloutSteps(site Site, r Roller, d *Deploy, from int, flip []Step, stamped bool) []Step {
	ro := d.Rollout
	var steps []Step
	for i, p := range ro.Steps[from:] {
		prev := Share{Candidate: d.To, Salt: ro.Salt}
		if i+from > 0 {
			prev.Percent = ro.Steps[i+from-1]
		}
		sh := Share{Candidate: d.To, Percent: p, Salt: ro.Salt}
		steps = append(steps, s.shareStep(site, r, prev, sh, d.ID, stamped))
		if h := s.rolloutCheck(site, r, sh, d.ID); h != nil {
			steps = append(steps, *h)
		}
		steps = append(steps, s.holdStep(site, r, sh, d.ID))
	}
	steps = append(steps, s.guardFlip(site, r, d.ID, flip)...)
	return append(steps, shareEnd(site, r, *d))
}

// guardFlip gives the flip's first step the last word before everyone
// gets the candidate: an abort that came after the last hold ended (or
// before a recovery flips again) is honoured, not overtaken. It reads the
// shared state: a recovery's copy of the deploy may predate the abort.
func (s *Service) guardFlip(site Site, r Roller, id string, flip []Step) []Step {
	if len(flip) == 0 {
		return flip
	}
	first := flip[0]
	run := first.Run
	first.Run = func(ctx context.Context) error {
		if err := s.honourAbort(ctx, site, r, id); err != nil {
			return err
		}
		return run(ctx)
	}
	return append([]Step{first}, flip[1:]...)
}

// honourAbort ends the rollout id (clearing its share) when someone asked
// to abort it; nil when nobody did.
func (s *Service) honourAbort(ctx context.Context, site Site, r Roller, id string) error {
	a, err := s.abortAsked(ctx, site, id)
	if err != nil || a == nil {
		return err
	}
	return s.abortRollout(ctx, site, r, id, a.By, a.Reason)
}

// shareEnd clears the share once everyone has the candidate.
func shareEnd(site Site, r Roller, d Deploy) Step {
	return Step{Phase: phaseShareEnd, Title: "Clearing the rollout share",
		Run:    func(ctx context.Context) error { return clearShare(ctx, site, r) },
		Record: func(d *Deploy) { d.Rollout.Percent = 0 }}
}

// clearShare sends everyone to the live release, whatever share the CDN
// holds (read, then changed from it; once more if it changed between).
func clearShare(ctx context.Context, site Site, r Roller) error {
	for try := 0; ; try++ {
		cur, err := r.CurrentShare(ctx, site)
		if err != nil || cur.Percent == 0 {
			return err
		}
		err = r.SetShare(ctx, site, cur, Share{Candidate: cur.Candidate, Salt: cur.Salt})
		if ErrorCode(err) != ECONFLICT || try > 0 {
			return err
		}
	}
}

func (s *Service) shareStep(site Site, r Roller, prev, sh Share, id string, stamped bool) Step {
	reached := s.shareReached(site, r, sh, stamped)
	return Step{Phase: sharePhase(sh.Percent), Title: fmt.Sprintf("Sending %d%% of visitors to %s", sh.Percent, sh.Candidate),
		Run: func(ctx context.Context) error {
			if a, err := s.abortAsked(ctx, site, id); err != nil || a != nil {
				if err != nil {
					return err
				}
				return s.abortRollout(ctx, site, r, id, a.By, a.Reason)
			}
			err := r.SetShare(ctx, site, prev, sh)
			// An abort may have come while the share was written (it
			// found nothing to clear yet, or cleared what the write then
			// found changed): it is honoured now, not a hold later.
			if a, aerr := s.abortAsked(ctx, site, id); aerr == nil && a != nil {
				return s.abortRollout(ctx, site, r, id, a.By, a.Reason)
			}
			if err != nil {
				return err
			}
			return s.untilAborted(ctx, site, r, id, reached)
		},
		Record: func(d *Deploy) { d.Rollout.Percent = sh.Percent }}
}

// untilAborted runs wait (a step's watch of the edge) while reading the
// rollout's control every poll: an abort ends it at once (the share was
// cleared by whoever aborted, so the watch would only time out).
func (s *Service) untilAborted(ctx context.Context, site Site, r Roller, id string, wait func(context.Context) error) error {
	wctx, stop := context.WithCancelCause(ctx)
	defer stop(nil)
	go func() {
		for wctx.Err() == nil {
			if a, err := s.abortAsked(wctx, site, id); err == nil && a != nil {
				stop(ErrRolloutAborted)
				return
			}
			if Wait(wctx, s.After, rolloutPoll) != nil {
				return
			}
		}
	}()
	err := wait(wctx)
	if errors.Is(context.Cause(wctx), ErrRolloutAborted) || err != nil {
		if aerr := s.honourAbort(context.WithoutCancel(ctx), site, r, id); aerr != nil {
			return aerr
		}
	}
	return err
}

// shareReached waits until a written share has reached the edge: the
// visible phase, watching the candidate's visitors (their cohort cookie)
// until every answer names the candidate, with the key's propagation as
// its floor; where the site cannot be watched, that propagation alone.
func (s *Service) shareReached(site Site, r Roller, sh Share, stamped bool) func(context.Context) error {
	wait := func(ctx context.Context) error { return Wait(ctx, s.After, r.ShareDelay()) }
	ep, ok := s.EdgeProber.(CookieEdgeProber)
	if !ok {
		return wait
	}
	pinned := &Service{EdgeProber: cookieEdge{ep, r.CandidateCookie(sh)}, After: s.After, Now: s.Now, Logger: s.Logger,
		VisibleTimeout: s.VisibleTimeout, VisibleInterval: s.VisibleInterval, VisibleUnreachable: s.VisibleUnreachable}
	v := pinned.visibleStep(site, sh.Candidate, stamped, r.ShareDelay())
	if v == nil {
		return wait
	}
	return v.Run
}

// rolloutCheck runs the site's health checks on the candidate's visitors
// (their cohort cookie) for the step; a failure aborts the rollout.
func (s *Service) rolloutCheck(site Site, r Roller, sh Share, id string) *Step {
	cp, ok := s.Prober.(CookieProber)
	if len(site.Health.Checks) == 0 || !ok {
		return nil
	}
	cookie := r.CandidateCookie(sh)
	pinned := &Service{Prober: cookieProber{cp, cookie}, After: s.After, Now: s.Now}
	h := pinned.healthStep(site)
	if h == nil {
		return nil
	}
	check := h.Run
	return &Step{Phase: checkPhase(sh.Percent), Title: h.Title + " on the candidate's visitors",
		Run: func(ctx context.Context) error {
			err := check(ctx)
			var herr *HealthError
			if errors.As(err, &herr) {
				reason := shorten(fmt.Sprintf("health check failed at %d%%: %v", sh.Percent, herr), MaxReason-1)
				// Recorded where a recovery reads it before the share is
				// cleared: a crash in between never shares the bad
				// candidate again.
				if _, cerr := s.Store.(RolloutStore).ControlRollout(context.WithoutCancel(ctx), site.Name, id, func(c *RolloutControl) error {
					if c.Aborted == nil {
						c.Aborted = &RolloutAbort{By: AutoActor, Reason: reason, At: s.now()}
					}
					return nil
				}); cerr != nil {
					return fmt.Errorf("%s; recording the abort failed: %w", reason, cerr)
				}
				return s.abortRollout(ctx, site, r, id, AutoActor, reason)
			}
			return err
		}}
}

// cookieProber probes with a fixed cookie.
type cookieProber struct {
	p      CookieProber
	cookie string
}

func (c cookieProber) Probe(ctx context.Context, url string) (int, []byte, error) {
	return c.p.ProbeWithCookie(ctx, url, c.cookie)
}

// holdStep waits the interval at a step, longer while paused, shorter
// when someone advances; it ends the rollout when someone aborts it.
// It reads the control every poll (a read of the shared state).
func (s *Service) holdStep(site Site, r Roller, sh Share, id string) Step {
	advanced := -1 // the advances taken, once this hold ends on one
	return Step{Phase: holdPhase(sh.Percent), Waits: true,
		Title: fmt.Sprintf("Holding at %d%%", sh.Percent),
		Record: func(d *Deploy) {
			if advanced >= 0 {
				d.Rollout.Advanced = advanced
			}
		},
		Run: func(ctx context.Context) error {
			d, err := s.running(ctx, site.Name, id)
			if err != nil {
				return err
			}
			start, advances := s.now(), d.Rollout.Advanced
			paused, frozen := false, false
			var pausedAt time.Time
			for {
				c := d.Rollout.Control
				switch {
				case c.Aborted != nil:
					return s.abortRollout(ctx, site, r, id, c.Aborted.By, c.Aborted.Reason)
				case c.Advances > advances:
					Note(ctx, "advanced by hand")
					advanced = c.Advances
					return nil
				case c.Paused && !paused:
					Note(ctx, "paused by "+c.PausedBy)
					pausedAt = s.now()
				case !c.Paused && paused:
					Note(ctx, "resumed")
					// A pause stops the clock: the hold's time left is kept.
					start = start.Add(s.now().Sub(pausedAt))
				}
				paused = c.Paused
				if !paused && !s.now().Before(start.Add(d.Rollout.Interval)) {
					// A freeze (or a closed deploy window) that began
					// meanwhile holds the rollout at this step: it reaches
					// no more visitors until it ends; abort stays open.
					var ge *GuardError
					if err := s.guard(ctx, site, PromoteRequest{Kind: KindPromote}); errors.As(err, &ge) {
						if !frozen {
							Note(ctx, "held: "+ErrorMessage(err))
						}
						frozen = true
					} else if err != nil {
						return err
					} else {
						return nil
					}
				}
				if err := Wait(ctx, s.After, rolloutPoll); err != nil {
					return err
				}
				if d, err = s.running(ctx, site.Name, id); err != nil {
					return err
				}
			}
		}}
}

// rolloutPoll is how often a hold reads the rollout's control: what an
// abort, a pause or an advance waits for at most (one shared-state read
// each).
const rolloutPoll = time.Second

// running is the running deploy id of site as the shared state has it.
func (s *Service) running(ctx context.Context, site, id string) (Deploy, error) {
	rs := s.Store.(RolloutStore)
	d, err := rs.RunningDeploy(ctx, site)
	if err != nil {
		return Deploy{}, err
	}
	if d == nil || d.ID != id || d.Rollout == nil {
		return Deploy{}, Errorf(ECONFLICT, "the rollout %s no longer holds site %s", id, site)
	}
	return *d, nil
}

// abortAsked is the abort of rollout id someone asked for, or nil.
func (s *Service) abortAsked(ctx context.Context, site Site, id string) (*RolloutAbort, error) {
	d, err := s.running(ctx, site.Name, id)
	if err != nil {
		return nil, err
	}
	return d.Rollout.Control.Aborted, nil
}

// RolloutAbortError ends a rollout: who stopped it and why. The deploy
// fails with it, and the site stays locked.
type RolloutAbortError struct {
	By, Reason string
}

func (e *RolloutAbortError) Error() string {
	return fmt.Sprintf("rollout aborted by %s: %s; every visitor is back on the live release", e.By, e.Reason)
}

func (e *RolloutAbortError) Unwrap() error { return ErrRolloutAborted }

// abortRollout sends everyone back to live (one share write) and returns
// the error that ends the deploy.
func (s *Service) abortRollout(ctx context.Context, site Site, r Roller, id, by, reason string) error {
	if err := clearShare(context.WithoutCancel(ctx), site, r); err != nil {
		return fmt.Errorf("aborting rollout %s (%s): clearing the share: %w", id, reason, err)
	}
	return &RolloutAbortError{By: by, Reason: reason}
}
