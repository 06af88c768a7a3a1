package releases

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"strings"
	"sync"
	"time"
)

// EventType says what happened in a deploy.
type EventType string

const (
	EventDeployStarted  EventType = "deploy_started"
	EventPhaseStarted   EventType = "phase_started"
	EventPhaseFinished  EventType = "phase_finished"
	EventPhaseFailed    EventType = "phase_failed"
	EventDeployFinished EventType = "deploy_finished"
	EventDeployFailed   EventType = "deploy_failed"
	// EventPhaseNote: a phase says what it is waiting for (Title), such
	// as an invalidation queued behind others.
	EventPhaseNote EventType = "phase_note"
	// EventDeployInterrupted: the process is shutting down; the deploy is
	// left in its phase, holding the lock, and resumes on the next start.
	EventDeployInterrupted EventType = "deploy_interrupted"
	// EventDeployResumed: a deploy interrupted earlier is being finished.
	EventDeployResumed EventType = "deploy_resumed"
)

// ErrShutdown is the cancellation cause a server gives the contexts of
// running deploys when it stops. A deploy cancelled with it is not failed
// but left resumable: every phase is safe to resume from the truth in AWS.
var ErrShutdown = errors.New("deploybot was stopped")

// Event is one progress report of a deploy. Deploy is a snapshot taken when
// the event happened.
type Event struct {
	Type    EventType
	Deploy  Deploy
	Phase   Phase
	Title   string
	Elapsed time.Duration // of the phase for phase events, of the deploy for deploy events
	Err     error
}

// Progress receives a deploy's events, in order, on the deploy's goroutine.
// It must not block for long: the flip waits for it.
type Progress func(Event)

// Service runs deploybot's operations. Every door (CLI, Slack, API,
// console) calls the same methods.
type Service struct {
	Store  Store
	Bucket Bucket
	// CDNs holds the flip strategies by name; a site's Strategy picks one.
	CDNs   map[string]CDN
	Sites  []Site
	Logger *slog.Logger
	// Now and NewID are injected so tests control time and ids.
	Now   func() time.Time
	NewID func() string
	// Timeout bounds a whole flip (all phases). Zero: 30 minutes, which
	// covers CloudFront's usual few minutes of propagation with room.
	Timeout time.Duration
	// Prober runs sites' health checks after a promote; nil skips them.
	Prober Prober
	// After waits between health checks; nil means time.After.
	After func(time.Duration) <-chan time.Time
	// Host and PID name this process in the locks of the deploys it runs
	// (zero: os.Hostname and os.Getpid); Heartbeat is how often it says it
	// is alive (zero: DefaultHeartbeat). ProcessAlive, when set, tells
	// whether a pid on this host is alive, so a deploy whose runner died
	// here is known at once rather than after missed heartbeats.
	Host         string
	PID          int
	Heartbeat    time.Duration
	ProcessAlive func(pid int) bool

	// refused remembers manifests found not valid ("site/version" ->
	// ETag), so reconcile does not read them again until they change.
	refused sync.Map
}

// DefaultStrategy is the flip strategy of a site that names none.
const DefaultStrategy = "origin-path"

// StrategyKVS is the strategy that flips by writing a key of a CloudFront
// KeyValueStore (cloud.KVS).
const StrategyKVS = "kvs"

func (s *Service) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

// Time is the service's clock (Now when set, else the wall clock), for
// callers that show ages next to what the service recorded.
func (s *Service) Time() time.Time { return s.now() }

func (s *Service) logger() *slog.Logger {
	if s.Logger != nil {
		return s.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// NewDeployID returns an id that sorts in creation order (microseconds,
// so two deploys in one second still sort right) and is unique enough to
// be an invalidation caller reference: 20261128T101800.123456Z-3f9c1b2a.
func NewDeployID(now time.Time) string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return now.UTC().Format("20060102T150405.000000Z") + "-" + hex.EncodeToString(b[:])
}

func (s *Service) newID() string {
	if s.NewID != nil {
		return s.NewID()
	}
	return NewDeployID(s.now())
}

// Site returns the configured site by name.
func (s *Service) Site(name string) (Site, error) {
	for _, site := range s.Sites {
		if site.Name == name {
			return site, nil
		}
	}
	// A site the configuration does not name is a mistake in the request
	// (EINVALID: exit 2, HTTP 400), like a malformed version, and unlike a
	// release that is not there (ENOTFOUND).
	names := make([]string, len(s.Sites))
	for i, site := range s.Sites {
		names[i] = site.Name
	}
	return Site{}, Errorf(EINVALID, "unknown site %q (configured: %s)", name, strings.Join(names, ", "))
}

// current asks the site's CDN what it serves: the strategy and what is
// live now.
func (s *Service) current(ctx context.Context, site Site) (CDN, Current, error) {
	cdn, err := s.cdn(site)
	if err != nil {
		return nil, Current{}, err
	}
	cur, err := cdn.Current(ctx, site)
	return cdn, cur, err
}

func (s *Service) cdn(site Site) (CDN, error) {
	name := site.Strategy
	if name == "" {
		name = DefaultStrategy
	}
	c, ok := s.CDNs[name]
	if !ok {
		return nil, Errorf(EINVALID, "site %s: flip strategy %q is not available", site.Name, name)
	}
	return c, nil
}

// Record records a published release from its manifest in the bucket. It is
// idempotent: created is false when the release was already recorded.
func (s *Service) Record(ctx context.Context, siteName, version string) (rel Release, created bool, err error) {
	rel, created, _, err = s.record(ctx, siteName, version)
	return rel, created, err
}

// RecordNotice records a release CI announced (the hook), with the commit
// and message the notice carries. The manifest is what publish wrote and
// stays the truth: the notice fills a commit or message the manifest
// lacks (a publish run without --commit, notified by a CI step that knows
// it), and a notice whose commit contradicts the manifest's is refused
// (ECONFLICT), since one of the two names the wrong build.
func (s *Service) RecordNotice(ctx context.Context, siteName, version, commit, message string) (rel Release, created bool, err error) {
	rel, created, _, err = s.recordNoted(ctx, siteName, version, commit, message)
	return rel, created, err
}

// record is Record that also hands back the manifest it read, so a
// promote verifies against it without a second GET.
func (s *Service) record(ctx context.Context, siteName, version string) (Release, bool, *Manifest, error) {
	return s.recordNoted(ctx, siteName, version, "", "")
}

// recordNoted is record with the commit and message of a CI notice, if
// any (see RecordNotice).
func (s *Service) recordNoted(ctx context.Context, siteName, version, commit, message string) (Release, bool, *Manifest, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return Release{}, false, nil, err
	}
	if err := ValidateVersion(version); err != nil {
		return Release{}, false, nil, err
	}
	m, err := s.Bucket.ReadManifest(ctx, site, version)
	if err != nil {
		return Release{}, false, nil, err
	}
	if m.Version != version {
		return Release{}, false, nil, Errorf(EINVALID, "manifest %s names version %q", site.ManifestKey(version), m.Version)
	}
	if commit != "" && m.Commit != "" && commit != m.Commit {
		return Release{}, false, nil, Errorf(ECONFLICT, "the notice says %s is commit %s, its manifest says %s; the manifest, written by publish, is kept", version, commit, m.Commit)
	}
	rel := m.Release(site.Name)
	if rel.Commit == "" {
		rel.Commit = commit
	}
	if rel.Message == "" {
		rel.Message = message
	}
	rel.RecordedAt = s.now()
	created, err := s.Store.PutRelease(ctx, rel)
	if err != nil {
		return Release{}, false, nil, err
	}
	if !created && (commit != "" || message != "") {
		// Recorded before (found in the bucket); the notice may still
		// fill in what the manifest lacks.
		if rel, err = s.Store.AnnotateRelease(ctx, site.Name, version, commit, message); err != nil {
			return Release{}, false, nil, err
		}
	}
	if created {
		s.logger().InfoContext(ctx, "release recorded", "site", site.Name, "version", version,
			"files", rel.Files, "bytes", rel.Bytes, "commit", rel.Commit)
	}
	return rel, created, m, nil
}

// Sync records every release whose manifest is in the bucket but not in
// the store. Manifests are read only for unknown versions.
func (s *Service) Sync(ctx context.Context, siteName string) (added []Release, err error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	versions, err := s.Bucket.ListVersions(ctx, site)
	if err != nil {
		return nil, err
	}
	known, err := s.Store.Releases(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	have := make(map[string]bool, len(known))
	for _, r := range known {
		have[r.Version] = true
	}
	for _, v := range versions {
		if have[v] || ValidateVersion(v) != nil {
			continue
		}
		refusedKey := site.Name + "/" + v
		if etag, ok := s.refused.Load(refusedKey); ok {
			// Refused before: read it again only once it has changed (a
			// HEAD, instead of the whole object on every reconcile).
			if cur, err := s.Bucket.ManifestETag(ctx, site, v); err == nil && cur == etag {
				continue
			}
		}
		rel, created, err := s.Record(ctx, site.Name, v)
		if errors.Is(err, ErrNoManifest) {
			continue // deleted between list and read
		}
		if ErrorCode(err) == EINVALID {
			// One bad manifest (hand-written, damaged) must not hide every
			// other release: it stays unrecorded, and unpromotable.
			s.logger().WarnContext(ctx, "manifest is not valid; release not recorded", "site", site.Name, "version", v, "err", err)
			var rm *RefusedManifest
			if errors.As(err, &rm) && rm.ETag != "" {
				s.refused.Store(refusedKey, rm.ETag)
			}
			continue
		}
		if err != nil {
			return added, err
		}
		if created {
			added = append(added, rel)
		}
	}
	return added, nil
}

// VersionInfo is a release as listed to people.
type VersionInfo struct {
	Release
	Live bool `json:"live"`
	// Pin keeps the release from retention, with who pinned it and why;
	// nil when it is not pinned.
	Pin *Pin `json:"pin"`
}

// Versions returns the site's releases, newest first, after recording the
// ones found in the bucket. Live is the store's live pointer.
func (s *Service) Versions(ctx context.Context, siteName string) ([]VersionInfo, error) {
	if _, err := s.Sync(ctx, siteName); err != nil {
		return nil, err
	}
	rels, err := s.Store.Releases(ctx, siteName)
	if err != nil {
		return nil, err
	}
	live, _, err := s.Store.Live(ctx, siteName)
	if err != nil {
		return nil, err
	}
	pins, err := s.Store.Pins(ctx, siteName)
	if err != nil {
		return nil, err
	}
	out := make([]VersionInfo, len(rels))
	for i, r := range rels {
		out[i] = VersionInfo{Release: r, Live: r.Version == live.Version}
		if p, ok := pins[r.Version]; ok {
			out[i].Pin = &p
		}
	}
	return out, nil
}

// Status is what a site serves and what is happening to it.
type Status struct {
	Site      string     `json:"site"`
	Live      *string    `json:"live"`
	LiveSince *time.Time `json:"live_since"`
	// OriginPath is what the CDN says now: the distribution's origin path,
	// or with strategy kvs the site's key.
	OriginPath string  `json:"origin_path"`
	Strategy   string  `json:"strategy"`
	Deploy     *Deploy `json:"deploy"`
	Lock       *Lock   `json:"lock"`
	// Recorded is the store's live pointer, which may disagree with the
	// CDN after a hand-made change; Drift says so.
	Recorded string `json:"recorded_live"`
	Drift    bool   `json:"drift"`
	// RunnerGone says the process running Deploy is gone: it will not
	// finish by itself (deploybot recover finishes it).
	RunnerGone bool `json:"runner_gone"`
	// LastDeploy is the newest deploy, running or not.
	LastDeploy *Deploy `json:"last_deploy"`
	// Links are where the running deploy is shown (its Slack thread).
	Links map[string]string `json:"links,omitempty"`
}

// Status reads the live release from the CDN and the deploy and lock from
// the store.
func (s *Service) Status(ctx context.Context, siteName string) (*Status, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	cdn, cur, err := s.current(ctx, site)
	if err != nil {
		return nil, err
	}
	st := &Status{Site: site.Name, OriginPath: cur.Path, Strategy: cdn.Strategy()}
	if cur.Version != "" {
		v := cur.Version
		st.Live = &v
	}
	live, ok, err := s.Store.Live(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	if ok {
		st.Recorded = live.Version
		if live.Version == cur.Version {
			since := live.Since
			st.LiveSince = &since
		}
	}
	if st.Lock, err = s.Store.Lock(ctx, site.Name); err != nil {
		return nil, err
	}
	deploys, err := s.Store.Deploys(ctx, site.Name, 1)
	if err != nil {
		return nil, err
	}
	if len(deploys) > 0 {
		d := deploys[0]
		st.LastDeploy = &d
		if !d.Phase.Final() {
			st.Deploy = &d
			if st.Links, err = s.Store.DeployLinks(ctx, site.Name, d.ID); err != nil {
				return nil, err
			}
		}
	}
	if st.Lock != nil {
		st.RunnerGone = s.RunnerGone(*st.Lock)
	}
	// The store and the CDN disagree while a deploy flips (the store
	// moves when the deploy ends): that is the deploy in progress, not a
	// change made outside deploybot.
	st.Drift = st.Recorded != cur.Version && (st.Deploy == nil || cur.Version != st.Deploy.To && cur.Version != st.Deploy.From)
	return st, nil
}

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
	// lockAfter becomes the deploy's LockAfter.
	lockAfter *Lock
}

// Outcome is the result of a promote or rollback. AlreadyLive means nothing
// was done because the version is live already; Deploy is then nil.
type Outcome struct {
	Deploy      *Deploy `json:"deploy"`
	AlreadyLive bool    `json:"already_live"`
	Version     string  `json:"version"`
}

// Promote makes req.Version live: it checks the release, takes the site's
// lock, and runs the CDN's steps, recording each phase before it acts and
// reporting it to progress (which may be nil).
func (s *Service) Promote(ctx context.Context, req PromoteRequest, progress Progress) (out *Outcome, err error) {
	if req.Kind == "" {
		req.Kind = KindPromote
	}
	defer func() { s.audit(ctx, req.Site, req.Actor, string(req.Kind), joinDetail(req.Version, req.Reason), err) }()
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
	_, _, manifest, err := s.record(ctx, site.Name, req.Version)
	if err != nil {
		if errors.Is(err, ErrNoManifest) {
			return nil, Errorf(ENOTFOUND, "site %s has no release %s: no manifest in the bucket (never published, upload unfinished, or pruned)", site.Name, req.Version)
		}
		return nil, err
	}
	if l, err := s.Store.Lock(ctx, site.Name); err != nil {
		return nil, err
	} else if l != nil {
		return nil, s.lockError(*l)
	}
	if !req.NoVerify {
		rep, err := s.verify(ctx, site, manifest)
		if err != nil {
			return nil, err
		}
		if !rep.OK() {
			return nil, Errorf(ECONFLICT, "refusing to promote %s of %s: %s (use --no-verify to promote anyway)", req.Version, site.Name, rep.Summary())
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
	carry := s.carryStep(ctx, site, cur, manifest)

	now := s.now()
	d := Deploy{
		ID: s.newID(), Site: site.Name, Kind: req.Kind, Actor: req.Actor, Reason: req.Reason,
		From: cur.Version, FromPath: cur.Path, To: req.Version, Strategy: cdn.Strategy(),
		Phase: PhasePending, StartedAt: now, LockAfter: req.lockAfter,
	}
	host, pid := s.runner()
	lock := Lock{Site: site.Name, Holder: req.Actor, Reason: fmt.Sprintf("%s %s", req.Kind, req.Version), DeployID: d.ID, Since: now,
		Host: host, PID: pid, Process: processID, Heartbeat: now}
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

	steps := cdn.Plan(site, cur, req.Version, d.ID)
	if carry != nil {
		steps = append([]Step{*carry}, steps...)
	}
	if h := s.healthStep(site); h != nil && req.Kind == KindPromote {
		steps = append(steps, *h)
	}
	err = s.run(ctx, &d, steps, false, log, progress)
	return &Outcome{Deploy: &d, Version: req.Version}, s.afterHealth(ctx, site, &d, err, progress)
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
	host, pid := s.runner()
	claim := Lock{Site: d.Site, DeployID: d.ID, Host: host, PID: pid, Process: processID, Heartbeat: s.now()}
	if err := s.Store.TouchLock(context.WithoutCancel(ctx), claim); err != nil {
		log.WarnContext(ctx, "recording the deploy's runner", "err", err)
	}
	stopBeat := make(chan struct{})
	defer close(stopBeat)
	go s.beat(ctx, claim, stopBeat)
	timeout := s.Timeout
	if timeout <= 0 {
		timeout = 30 * time.Minute
	}
	flipCtx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()

	for _, step := range steps {
		if errors.Is(context.Cause(ctx), ErrShutdown) {
			return s.interrupt(ctx, d, flipped, log, progress)
		}
		started := s.now()
		d.Phase = step.Phase
		d.Phases = append(d.Phases, PhaseRecord{Phase: step.Phase, Started: started})
		if err := s.Store.SaveDeploy(flipCtx, *d); err != nil {
			return s.fail(ctx, d, flipped, fmt.Errorf("recording phase %s: %w", step.Phase, err), log, progress)
		}
		log.InfoContext(ctx, "phase started", "phase", step.Phase)
		progress(Event{Type: EventPhaseStarted, Deploy: d.clone(), Phase: step.Phase, Title: step.Title})

		phase := step.Phase
		stepCtx := context.WithValue(flipCtx, noteKey{}, func(text string) {
			progress(Event{Type: EventPhaseNote, Deploy: d.clone(), Phase: phase, Title: text})
		})
		err := step.Run(stepCtx)
		ended := s.now()
		rec := &d.Phases[len(d.Phases)-1]
		if err != nil && errors.Is(context.Cause(ctx), ErrShutdown) {
			return s.interrupt(ctx, d, flipped || step.Flips && err == nil, log, progress)
		}
		rec.Ended = ended
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) && ctx.Err() == nil {
				err = Errorf(EINTERNAL, "deploy timed out after %s in phase %s: %w", timeout, step.Phase, err)
			}
			rec.Error = ErrorMessage(err)
			log.ErrorContext(ctx, "phase failed", "phase", step.Phase, "seconds", ended.Sub(started).Seconds(), "err", err)
			progress(Event{Type: EventPhaseFailed, Deploy: d.clone(), Phase: step.Phase, Title: step.Title, Elapsed: ended.Sub(started), Err: err})
			return s.fail(ctx, d, flipped, err, log, progress)
		}
		if step.Flips {
			flipped = true
		}
		log.InfoContext(ctx, "phase finished", "phase", step.Phase, "seconds", ended.Sub(started).Seconds())
		progress(Event{Type: EventPhaseFinished, Deploy: d.clone(), Phase: step.Phase, Title: step.Title, Elapsed: ended.Sub(started)})
	}

	d.Phase = PhaseDone
	d.FinishedAt = s.now()
	d.fillLockAfter()
	live := &Live{Version: d.To, Since: d.FinishedAt, DeployID: d.ID}
	if err := s.Store.FinishDeploy(context.WithoutCancel(ctx), *d, live); err != nil {
		log.ErrorContext(ctx, "recording finished deploy", "err", err)
		return Errorf(EINTERNAL, "%s is live, but recording the deploy failed: %w", d.To, err)
	}
	log.InfoContext(ctx, "deploy finished", "to", d.To, "seconds", d.FinishedAt.Sub(d.StartedAt).Seconds())
	progress(Event{Type: EventDeployFinished, Deploy: d.clone(), Elapsed: d.FinishedAt.Sub(d.StartedAt)})
	return nil
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

// interrupt leaves d in its phase, lock held, for recovery: by serve when
// it starts, or by `deploybot recover`. Being stopped is no failure of the
// deploy, and no internal error either; the message says where it stopped
// and what visitors get meanwhile.
func (s *Service) interrupt(ctx context.Context, d *Deploy, flipped bool, log *slog.Logger, progress Progress) error {
	if n := len(d.Phases); n > 0 {
		d.Phases[n-1].Error = "interrupted; resumes on recovery"
	}
	if err := s.Store.SaveDeploy(context.WithoutCancel(ctx), *d); err != nil {
		log.ErrorContext(ctx, "recording interrupted deploy", "err", err)
	}
	log.WarnContext(ctx, "deploy interrupted; it resumes on recovery", "phase", d.Phase)
	progress(Event{Type: EventDeployInterrupted, Deploy: d.clone(), Phase: d.Phase})
	live := d.From
	if flipped {
		live = d.To
	}
	return Errorf(ECONFLICT, "deploy %s (%s %s) was interrupted in phase %s; live now: %s (the site stays locked); it resumes when deploybot serve starts, or with deploybot recover --site %s: %w",
		d.ID, d.Kind, d.To, d.Phase, orNone(live), d.Site, ErrShutdown)
}

func (s *Service) fail(ctx context.Context, d *Deploy, flipped bool, cause error, log *slog.Logger, progress Progress) error {
	d.Phase = PhaseFailed
	d.FinishedAt = s.now()
	d.fillLockAfter()
	d.Error = ErrorMessage(cause)
	// Once the CDN points at the new release, that release is what visitors
	// get (or will, as it propagates), so the live pointer follows the truth
	// even though the deploy did not finish.
	var live *Live
	if flipped {
		live = &Live{Version: d.To, Since: d.FinishedAt, DeployID: d.ID}
	}
	if err := s.Store.FinishDeploy(context.WithoutCancel(ctx), *d, live); err != nil {
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
	return d
}

// RollbackRequest asks to go back to the previous good release, or to
// Version when set.
type RollbackRequest struct {
	Site    string
	Version string
	Actor   string
	Reason  string
}

// Rollback makes the previous good release live again. Without a version
// it walks finished deploys back from the newest: versions that were rolled
// back away from are skipped, so repeated rollbacks keep going back rather
// than toggling between two releases. Failed deploys are never targets.
func (s *Service) Rollback(ctx context.Context, req RollbackRequest, progress Progress) (out *Outcome, err error) {
	target := req.Version
	defer func() { s.audit(ctx, req.Site, req.Actor, string(KindRollback), joinDetail(target, req.Reason), err) }()
	site, err := s.Site(req.Site)
	if err != nil {
		return nil, err
	}
	if target == "" {
		if target, err = s.RollbackTarget(ctx, site.Name); err != nil {
			return nil, err
		}
	}
	return s.deploy(ctx, PromoteRequest{Site: site.Name, Version: target, Actor: req.Actor, Reason: req.Reason, Kind: KindRollback}, progress)
}

// RollbackTarget returns the version Rollback goes to without a version.
func (s *Service) RollbackTarget(ctx context.Context, siteName string) (string, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return "", err
	}
	_, cur, err := s.current(ctx, site)
	if err != nil {
		return "", err
	}
	deploys, err := s.Store.Deploys(ctx, site.Name, 0)
	if err != nil {
		return "", err
	}
	abandoned := map[string]bool{}
	for _, d := range deploys {
		if d.Phase != PhaseDone {
			continue
		}
		if d.Kind == KindRollback {
			abandoned[d.From] = true
		}
		for _, v := range []string{d.To, d.From} {
			if v == "" || v == cur.Version || abandoned[v] {
				continue
			}
			if _, err := s.Bucket.ReadManifest(ctx, site, v); errors.Is(err, ErrNoManifest) {
				continue // pruned since
			} else if err != nil {
				return "", err
			}
			return v, nil
		}
	}
	return "", Errorf(ENOTFOUND, "site %s has no earlier release to roll back to (live: %s)", site.Name, orNone(cur.Version))
}

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// SortReleases orders releases newest first: by publish time, then by
// version name so that equal times still sort stably.
func SortReleases(rs []Release) {
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].PublishedAt.Equal(rs[j].PublishedAt) {
			return rs[i].PublishedAt.After(rs[j].PublishedAt)
		}
		return rs[i].Version > rs[j].Version
	})
}

// LockSite takes a person's lock: promotes and rollbacks of the site are
// refused, naming the holder, until UnlockSite.
func (s *Service) LockSite(ctx context.Context, siteName, actor, reason string) (_ *Lock, err error) {
	defer func() { s.audit(ctx, siteName, actor, "lock", reason, err) }()
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if reason == "" {
		return nil, Errorf(EINVALID, "say why site %s is locked", site.Name)
	}
	l := Lock{Site: site.Name, Holder: actor, Reason: reason, Since: s.now()}
	if err := s.Store.AcquireLock(ctx, l); err != nil {
		return nil, err
	}
	s.logger().InfoContext(ctx, "site locked", "site", site.Name, "actor", actor, "reason", reason)
	return &l, nil
}

// UnlockSite frees a person's lock; it returns the lock freed, nil when
// the site was not locked.
func (s *Service) UnlockSite(ctx context.Context, siteName, actor string) (_ *Lock, err error) {
	defer func() { s.audit(ctx, siteName, actor, "unlock", "", err) }()
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	l, err := s.Store.ReleaseLock(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	if l != nil {
		s.logger().InfoContext(ctx, "site unlocked", "site", site.Name, "actor", actor, "was_held_by", l.Holder)
	}
	return l, nil
}

// VerifyReport says whether a release's files are all in the bucket.
type VerifyReport struct {
	Site    string          `json:"site"`
	Version string          `json:"version"`
	Files   int             `json:"files"`
	Missing []string        `json:"missing"`
	Wrong   []WrongSizeFile `json:"wrong_size"`
}

// WrongSizeFile is a file whose object has another size than the manifest says.
type WrongSizeFile struct {
	Path string `json:"path"`
	Want int64  `json:"want"`
	Have int64  `json:"have"`
}

// OK reports a complete release.
func (r *VerifyReport) OK() bool { return len(r.Missing) == 0 && len(r.Wrong) == 0 }

// Summary names what is wrong, the first few files of each kind.
func (r *VerifyReport) Summary() string {
	if r.OK() {
		return fmt.Sprintf("all %d files present with the right sizes", r.Files)
	}
	var parts []string
	list := func(names []string) string {
		if len(names) > 5 {
			return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
		}
		return strings.Join(names, ", ")
	}
	if len(r.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d file(s) missing: %s", len(r.Missing), list(r.Missing)))
	}
	if len(r.Wrong) > 0 {
		var names []string
		for _, w := range r.Wrong {
			names = append(names, fmt.Sprintf("%s (%d bytes, manifest says %d)", w.Path, w.Have, w.Want))
		}
		parts = append(parts, fmt.Sprintf("%d file(s) with the wrong size: %s", len(r.Wrong), list(names)))
	}
	return "release is damaged: " + strings.Join(parts, "; ")
}

// Verify checks every manifest entry (files and carried assets) exists in
// the release folder with the right size.
func (s *Service) Verify(ctx context.Context, siteName, version string) (*VerifyReport, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	return Inspect{Bucket: s.Bucket}.Verify(ctx, site, version)
}

// Inspect reads a site's releases from its bucket alone, without a store:
// what `verify` and `diff` need on a machine without serve's store (CI),
// and what the service uses for the same questions.
type Inspect struct{ Bucket Bucket }

// Verify checks every file of a release's manifest is in the bucket with
// the right size.
func (i Inspect) Verify(ctx context.Context, site Site, version string) (*VerifyReport, error) {
	if err := ValidateVersion(version); err != nil {
		return nil, err
	}
	m, err := i.Bucket.ReadManifest(ctx, site, version)
	if err != nil {
		return nil, err
	}
	return i.verify(ctx, site, m)
}

func (s *Service) verify(ctx context.Context, site Site, m *Manifest) (*VerifyReport, error) {
	return Inspect{Bucket: s.Bucket}.verify(ctx, site, m)
}

func (i Inspect) verify(ctx context.Context, site Site, m *Manifest) (*VerifyReport, error) {
	have, err := i.Bucket.ReleaseObjects(ctx, site, m.Version)
	if err != nil {
		return nil, err
	}
	rep := &VerifyReport{Site: site.Name, Version: m.Version, Missing: []string{}, Wrong: []WrongSizeFile{}}
	for _, f := range append(append([]ManifestFile(nil), m.Files...), m.Carried...) {
		rep.Files++
		size, ok := have[f.Path]
		switch {
		case !ok:
			rep.Missing = append(rep.Missing, f.Path)
		case size != f.Size:
			rep.Wrong = append(rep.Wrong, WrongSizeFile{Path: f.Path, Want: f.Size, Have: size})
		}
	}
	sort.Strings(rep.Missing)
	return rep, nil
}
