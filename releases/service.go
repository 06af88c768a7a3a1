package releases

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
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

// ErrFenced is the cancellation cause of a deploy whose runner lost the
// site's lock to another process (taken for gone while cut off, then
// taken over): it stops acting at once and leaves the record to the
// process that holds the lock now, which finishes it from the truth.
var ErrFenced = errors.New("another process runs this deploy now")

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
	// Access is who may do what (see access.go); nil decides nothing and
	// takes callers at their word, for tests of other things. Every
	// entry point of the binary sets it.
	Access *Access
	// Caller is who asks when the context does not say: the command
	// line's AWS identity, the one door of its process. nil: a context
	// without a principal is refused (serve's doors always set one).
	Caller func(ctx context.Context) (Principal, error)
	// OnApproval hears of every change to an approval request (a chat
	// keeps its card true); nil: nobody listens.
	OnApproval ApprovalNotifier
	// Prober runs sites' health checks after a promote; nil skips them.
	Prober Prober
	// EdgeProber watches a site's url after a flip until visitors get the
	// new release (the visible phase); nil skips it. VisibleTimeout
	// bounds that phase (zero: DefaultVisibleTimeout).
	EdgeProber     EdgeProber
	VisibleTimeout time.Duration
	// VisibleInterval is the pause between rounds of the visible phase
	// (zero: a second); benchmarks that scale CloudFront down set it.
	VisibleInterval time.Duration
	// VisibleUnreachable is how long the visible phase goes on while its
	// address cannot be reached at all (zero: DefaultVisibleUnreachable).
	VisibleUnreachable time.Duration
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
	// EndOnStop: a deploy stopped (ErrShutdown) after its flip ends its
	// record there, live pointer moved and lock freed, instead of waiting
	// in its phase for recovery. The command line sets it: nothing
	// restarts it, and its user has stopped watching. serve does not: it
	// resumes the deploy when it starts again, finishing the steps.
	EndOnStop bool
	// Lease is how long a site lease holds without renewal (zero:
	// DefaultLease); see HoldLease.
	Lease time.Duration

	pulled pulled // see PullHistory
	// beats remembers the heartbeat of each deploy run elsewhere as this
	// process first saw it (see RunnerGone).
	beats sync.Map

	// ManifestBudget bounds the manifest bytes this service's readers
	// hold at once (see ManifestBudget); nil: the process-wide one.
	ManifestBudget *ManifestBudget

	// diffs holds the sites with a diff running (site name -> struct{}):
	// one at a time per site, see Diff.
	diffs sync.Map
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

func orNone(v string) string {
	if v == "" {
		return "none"
	}
	return v
}
