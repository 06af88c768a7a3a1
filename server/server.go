// Package server is `deploybot serve` without its flags: the HTTP listener
// (CI hook, API, health, metrics), the reconcile loop, recovery of
// interrupted deploys at start, and graceful shutdown.
package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/deploybot/deploybot/internal/ticker"
	"github.com/deploybot/deploybot/releases"
)

// Store is what the server needs of the store beyond releases.Store.
type Store interface {
	releases.Store
	Ping(ctx context.Context) error
	// Backup writes a consistent snapshot of the whole store to w.
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// Notifier hears of things the server did, for chat (Slack). Every method
// must return quickly.
type Notifier interface {
	ReleaseRecorded(ctx context.Context, site releases.Site, r releases.Release, source string)
	PruneFinished(ctx context.Context, site releases.Site, rep *releases.PruneReport, err error)
	// LiveChanged: what is live on site may have changed (a deploy through
	// the API, or one reconcile found, such as a command-line deploy).
	LiveChanged(ctx context.Context, site releases.Site)
}

// ReadyCheck is one condition of /readyz; a nil error is ready.
type ReadyCheck struct {
	Name  string
	Check func(ctx context.Context) error
	// Degrades: a failure is reported ("degraded", the reason with
	// ?verbose) but leaves the process ready. Readiness means the hook
	// and the API can be served; Slack, or one site's channel, being
	// unreachable must not take them off the Service for every site.
	Degrades bool
}

// Timeouts bound what one connection may hold. Every request of the API
// and the hook is small (bodies of at most 64 KiB), so a connection that
// sends slowly, or sits idle, is closed rather than kept for ever. The
// answers that may legitimately take long (a deploy's NDJSON stream, a
// backup) lift the write deadline for themselves.
type Timeouts struct {
	ReadHeader time.Duration // headers of a request
	Read       time.Duration // a whole request, body included
	Write      time.Duration // an answer, from the end of the request
	Idle       time.Duration // a keep-alive connection between requests
	// MaxHeaderBytes bounds a request's headers.
	MaxHeaderBytes int
}

// DefaultTimeouts: enough for any client on a slow link to send 64 KiB,
// and short enough that 2,000 stalled connections are gone in a minute.
var DefaultTimeouts = Timeouts{ReadHeader: 10 * time.Second, Read: 30 * time.Second, Write: 60 * time.Second, Idle: 60 * time.Second, MaxHeaderBytes: 64 << 10}

func (t Timeouts) orDefaults() Timeouts {
	d := DefaultTimeouts
	if t.ReadHeader > 0 {
		d.ReadHeader = t.ReadHeader
	}
	if t.Read > 0 {
		d.Read = t.Read
	}
	if t.Write > 0 {
		d.Write = t.Write
	}
	if t.Idle > 0 {
		d.Idle = t.Idle
	}
	if t.MaxHeaderBytes > 0 {
		d.MaxHeaderBytes = t.MaxHeaderBytes
	}
	return d
}

// Server is a running deploybot.
type Server struct {
	Service *releases.Service
	Store   Store
	Logger  *slog.Logger
	Metrics *Metrics
	Now     func() time.Time

	HookSecret []byte
	// APIToken is http.api_token, the token named "api"; Tokens are
	// http.tokens. A caller is the name of the token it presents.
	APIToken string
	Tokens   []APIToken
	// ReconcileInterval is the period of the reconcile loop; zero: 5 minutes.
	ReconcileInterval time.Duration
	// MirrorInterval is how often the history the store has not yet
	// written to the bucket is pushed; zero: 5 seconds. A push that fails
	// is tried again then; nothing waits for it.
	MirrorInterval time.Duration
	// WatchInterval is how often each site's lock is read for a deploy
	// whose runner is gone; zero: DefaultWatchInterval.
	WatchInterval time.Duration
	// ApprovalInterval is how often requests waiting for approval past
	// their time are recorded as expired; zero: 15 seconds.
	ApprovalInterval time.Duration
	// ShutdownTimeout bounds the whole shutdown; zero: 25 seconds (inside
	// Kubernetes' default 30 s grace period).
	ShutdownTimeout time.Duration
	Notifier        Notifier
	// Ready holds extra readiness conditions (Slack connected).
	Ready []ReadyCheck
	// Background runs alongside the HTTP server on the work context (the
	// Slack socket); shutdown waits for each to return.
	Background []func(ctx context.Context) error
	// Schedules are the sites' prune schedules.
	Schedules []Schedule
	// After waits for d (time.After); tests replace it to fire at once.
	After func(d time.Duration) <-chan time.Time
	// Ticker paces the background loops (reconcile, leases, watch,
	// approval expiry, mirror); nil: the wall clock.
	Ticker ticker.Clock
	// Timeouts holds every connection to a bound: zero fields take
	// DefaultTimeouts.
	Timeouts Timeouts

	replay   replayCache
	prunes   pruneLocks
	draining atomic.Bool
	work     context.Context // cancelled with releases.ErrShutdown on stop
	patterns []string        // the routes, as registered
	stopWork context.CancelCauseFunc
	deploys  sync.WaitGroup // work shutdown waits for; Add only through begin
	trackMu  sync.Mutex
	stopping bool
	awsMu    sync.Mutex
	awsErr   error // of the last reconcile; nil when it reached AWS
	awsOnce  bool  // a reconcile has run
	// lastLive is what reconcile last saw live per site, to tell the
	// Notifier of changes made outside serve.
	lastLive map[string]*string
	// unannounced are the releases reconcile found while another replica
	// held the site's lease (see toAnnounce); tick's alone.
	unannounced map[string][]releases.Release
}

func (s *Server) watchInterval() time.Duration {
	if s.WatchInterval > 0 {
		return s.WatchInterval
	}
	return DefaultWatchInterval
}

func (s *Server) now() time.Time {
	if s.Now != nil {
		return s.Now()
	}
	return time.Now()
}

func (s *Server) init() {
	if s.Logger == nil {
		s.Logger = slog.New(slog.DiscardHandler)
	}
	if s.Metrics == nil {
		s.Metrics = NewMetrics()
	}
	if s.ReconcileInterval <= 0 {
		s.ReconcileInterval = 5 * time.Minute
	}
	if s.ShutdownTimeout <= 0 {
		s.ShutdownTimeout = 25 * time.Second
	}
	if s.work == nil {
		s.work, s.stopWork = context.WithCancelCause(context.Background())
	}
}

// Handler serves every route; Run serves it on a listener.
func (s *Server) Handler() http.Handler {
	s.init()
	mux := &routes{ServeMux: http.NewServeMux()}
	mux.handle("POST /hooks/release", s.handleHook)
	mux.handle("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, map[string]string{"status": "ok"})
	})
	mux.handle("GET /readyz", s.handleReady)
	mux.handle("GET /metrics", promhttp.HandlerFor(s.Metrics.Registry, promhttp.HandlerOpts{}).ServeHTTP)
	s.routeAPI(mux)
	// Every answer is JSON, including the mux's own refusals: an unknown
	// path is 404 and a known path asked with the wrong method is 405 with
	// Allow, each as {"error","code"}.
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		var allow []string
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete} {
			probe := r.Clone(r.Context())
			probe.Method = m
			if _, pattern := mux.Handler(probe); pattern != "/" && pattern != "" {
				allow = append(allow, m)
			}
		}
		if len(allow) == 0 {
			writeJSON(w, http.StatusNotFound, errorBody{Error: "no such route: " + bounded(r.URL.Path), Code: releases.ENOTFOUND})
			return
		}
		w.Header().Set("Allow", strings.Join(allow, ", "))
		writeJSON(w, http.StatusMethodNotAllowed, errorBody{Error: bounded(r.Method) + " is not allowed on " + bounded(r.URL.Path) + "; use " + strings.Join(allow, " or "), Code: releases.EINVALID})
	})
	s.patterns = mux.patterns
	return mux
}

// routes is the server's mux, remembering its patterns so that tests can
// walk every route.
type routes struct {
	*http.ServeMux
	patterns []string
}

func (m *routes) handle(pattern string, h http.HandlerFunc) {
	m.patterns = append(m.patterns, pattern)
	m.ServeMux.HandleFunc(pattern, h)
}

// Routes lists the patterns the server answers ("POST /hooks/release").
func (s *Server) Routes() []string {
	s.Handler()
	return slices.Clone(s.patterns)
}

// bounded keeps text a client sent short enough to echo in an answer.
func bounded(s string) string {
	if len(s) > 200 {
		return s[:200] + "..."
	}
	return s
}

// Run recovers interrupted deploys, then serves ln and runs the reconcile
// loop until ctx is done; then it drains (see shutdown) and returns nil.
func (s *Server) Run(ctx context.Context, ln net.Listener) error {
	s.init()
	h := s.Handler()
	t := s.Timeouts.orDefaults()
	srv := &http.Server{Handler: h, ReadHeaderTimeout: t.ReadHeader, ReadTimeout: t.Read, WriteTimeout: t.Write, IdleTimeout: t.Idle,
		MaxHeaderBytes: t.MaxHeaderBytes, BaseContext: func(net.Listener) context.Context { return s.work }}
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	s.Logger.Info("serving", "listen", ln.Addr().String(), "sites", len(s.Service.Sites))

	// The leases first, so that the first reconcile knows which sites'
	// notices are this replica's to post.
	s.holdLeases(s.work)
	loopDone := make(chan struct{})
	go func() {
		defer close(loopDone)
		s.loop(s.work)
	}()
	if s.begin() {
		go func() {
			defer s.deploys.Done()
			ticker.Every(s.work, s.Ticker, s.Service.LeaseRenewal(), s.holdLeases)
		}()
	}
	if s.begin() {
		go func() {
			defer s.deploys.Done()
			ticker.Every(s.work, s.Ticker, s.watchInterval(), s.watch)
		}()
	}
	if s.begin() {
		go func() {
			defer s.deploys.Done()
			s.expireApprovals(s.work)
		}()
	}
	mirrorDone := make(chan struct{})
	go func() {
		defer close(mirrorDone)
		s.mirror(s.work)
	}()
	for _, sch := range s.Schedules {
		if !s.begin() {
			break
		}
		go func() {
			defer s.deploys.Done()
			s.schedule(s.work, sch)
		}()
	}
	for _, bg := range s.Background {
		if !s.begin() {
			break
		}
		go func() {
			defer s.deploys.Done()
			if err := bg(s.work); err != nil {
				s.Logger.Error("background worker stopped", "err", err)
			}
		}()
	}

	var serveErr error
	select {
	case <-ctx.Done():
	case serveErr = <-errc:
	}
	s.shutdown(srv, loopDone, mirrorDone)
	if serveErr != nil && !errors.Is(serveErr, http.ErrServerClosed) {
		return fmt.Errorf("http: %w", serveErr)
	}
	return nil
}

// shutdown stops taking work (new deploys get 503), interrupts running
// deploys at their next safe point (each is left in its recorded phase and
// resumes on the next start), waits for them and for the HTTP server, all
// within ShutdownTimeout.
func (s *Server) shutdown(srv *http.Server, loopDone, mirrorDone <-chan struct{}) {
	deadline := time.Now().Add(s.ShutdownTimeout)
	s.Logger.Info("shutting down", "timeout", s.ShutdownTimeout.String())
	s.draining.Store(true)
	s.trackMu.Lock()
	s.stopping = true // no new work can begin; Wait below cannot race an Add
	s.trackMu.Unlock()
	s.stopWork(releases.ErrShutdown)
	waited := make(chan struct{})
	go func() { s.deploys.Wait(); <-loopDone; close(waited) }()
	select {
	case <-waited:
	case <-time.After(time.Until(deadline)):
		s.Logger.Error("deploys did not stop in time; their records say which phase they were in")
	}
	ctx, cancel := context.WithDeadline(context.Background(), deadline)
	defer cancel()
	// Another replica takes the sites' jobs over at its next renewal.
	if err := s.Service.ReleaseLeases(ctx); err != nil {
		s.Logger.Warn("giving up the site leases; another replica takes them when they expire", "err", err)
	}
	// What the stopped work recorded last goes to the bucket now, within
	// the deadline; what does not make it stays pending for the next start.
	select {
	case <-mirrorDone:
		s.pushHistory(ctx)
	case <-ctx.Done():
	}
	if err := srv.Shutdown(ctx); err != nil {
		s.Logger.Warn("closing HTTP connections", "err", err)
		_ = srv.Close()
	}
	select {
	case <-loopDone:
	case <-ctx.Done():
	}
	s.Logger.Info("stopped")
}

// mirror pushes the history the store has not yet written to the bucket:
// at start (what a crash left pending), then every MirrorInterval, until
// the work context ends; shutdown pushes once more after the work stops.
func (s *Server) mirror(ctx context.Context) {
	every := s.MirrorInterval
	if every <= 0 {
		every = 5 * time.Second
	}
	ticker.Every(ctx, s.Ticker, every, s.pushHistory)
}

// pushHistory runs one push and says how it went in the metrics.
func (s *Server) pushHistory(ctx context.Context) {
	n, err := s.Service.PushHistory(ctx)
	result := "ok"
	if err != nil {
		result = "failed"
		if ctx.Err() == nil {
			s.Logger.Warn("mirroring the history to the bucket; it stays pending and is tried again", "pushed", n, "err", err)
		}
	}
	s.Metrics.HistoryPushes.WithLabelValues(result).Inc()
	if pending, err := s.Service.HistoryPending(context.WithoutCancel(ctx)); err == nil {
		s.Metrics.HistoryPending.Set(float64(pending))
	}
}

// expireApprovals records, every ApprovalInterval, the requests of sites
// with approvals that nobody approved in time (their cards say so through
// the service's ApprovalNotifier). A request is also read as expired the
// moment its time is up, so the interval only delays the record.
func (s *Server) expireApprovals(ctx context.Context) {
	every := s.ApprovalInterval
	if every <= 0 {
		every = 15 * time.Second
	}
	ticker.Every(ctx, s.Ticker, every, func(ctx context.Context) {
		for _, site := range s.Service.Sites {
			if site.Approval.Required == 0 || ctx.Err() != nil || !s.Service.HoldsLease(site.Name) {
				continue
			}
			if _, err := s.Service.ExpireApprovals(releases.WithDoor(ctx, releases.DoorSchedule), site.Name); err != nil && ctx.Err() == nil {
				s.Logger.Warn("expiring approval requests", "site", site.Name, "err", err)
			}
		}
	})
}

// loop runs recovery and reconcile at start, then every interval.
func (s *Server) loop(ctx context.Context) {
	ticker.Every(ctx, s.Ticker, s.ReconcileInterval, s.tick)
}

// tick finishes interrupted deploys and reconciles every site.
func (s *Server) tick(ctx context.Context) {
	recovered, err := s.Service.Recover(ctx, s.progress(nil))
	s.recovered(recovered)
	if err != nil && ctx.Err() == nil {
		s.Logger.Error("recovering interrupted deploys", "err", err)
	}
	var awsErr error
	for _, site := range s.Service.Sites {
		if ctx.Err() != nil {
			return
		}
		res, err := s.Service.Reconcile(ctx, site.Name)
		if err != nil {
			awsErr = err
			s.Metrics.ReconcileRuns.WithLabelValues(site.Name, "error").Inc()
			s.Logger.Error("reconcile failed", "site", site.Name, "err", err)
			continue
		}
		s.Metrics.ReconcileRuns.WithLabelValues(site.Name, "ok").Inc()
		s.Metrics.LastReconcileOK.WithLabelValues(site.Name).Set(float64(s.now().Unix()))
		if res.Drift {
			s.Metrics.Drift.WithLabelValues(site.Name).Inc()
		}
		// What reconcile finds reaches the chat from one replica: the
		// holder of the site's lease (the notice itself is claimed per
		// release, so the replica that took the hook does not post twice).
		// A release found while another replica held the lease is
		// announced here once this one holds it (that holder may have
		// stopped before its own reconcile found it); the claim in the
		// notices keeps a release announced elsewhere from a second post.
		leader := s.Service.HoldsLease(site.Name)
		for _, r := range res.Added {
			s.Metrics.Releases.WithLabelValues(site.Name, "reconcile").Inc()
			s.Logger.Info("release found in the bucket", "site", site.Name, "version", r.Version)
		}
		if s.Notifier != nil {
			for _, r := range s.toAnnounce(site.Name, res.Added, leader) {
				s.Notifier.ReleaseRecorded(ctx, site, r, "reconcile")
			}
		}
		// The first run (what changed while serve was down) and every
		// change since (a command-line deploy) reach the chat.
		if prev, ok := s.lastLive[site.Name]; s.Notifier != nil && leader && (!ok || *prev != res.Live) {
			s.Notifier.LiveChanged(ctx, site)
		}
		if s.lastLive == nil {
			s.lastLive = map[string]*string{}
		}
		live := res.Live
		s.lastLive[site.Name] = &live
	}
	s.awsMu.Lock()
	s.awsErr, s.awsOnce = awsErr, true
	s.awsMu.Unlock()
}

// unannouncedMax bounds the releases a replica keeps to announce once it
// holds the site's lease, and unannouncedAge how old one may be then.
const (
	unannouncedMax = 100
	unannouncedAge = 24 * time.Hour
)

// toAnnounce is what reconcile's notices are for: the releases it just
// found and those it found while another replica held the lease (no
// older than unannouncedAge), when this one holds it; nothing otherwise:
// they wait, the newest unannouncedMax of them.
func (s *Server) toAnnounce(site string, added []releases.Release, leader bool) []releases.Release {
	if !leader {
		if s.unannounced == nil {
			s.unannounced = map[string][]releases.Release{}
		}
		waiting := append(s.unannounced[site], added...)
		if len(waiting) > unannouncedMax {
			waiting = waiting[len(waiting)-unannouncedMax:]
		}
		s.unannounced[site] = waiting
		return nil
	}
	var out []releases.Release
	for _, r := range s.unannounced[site] {
		if s.now().Sub(r.PublishedAt) < unannouncedAge {
			out = append(out, r)
		}
	}
	delete(s.unannounced, site)
	return append(out, added...)
}

// progress wraps a door's progress sink with metrics.
func (s *Server) progress(next releases.Progress) releases.Progress {
	return func(e releases.Event) {
		s.Metrics.observe(e)
		if next != nil {
			next(e)
		}
	}
}

// handleReady is /readyz. Anyone who reaches the port (a load balancer, a
// kubelet) gets whether each check passed; the reasons (AWS errors that
// name buckets and distributions, store paths) go to the log, and to a
// caller with the API token asking /readyz?verbose.
func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	failed := map[string]string{}
	checks := map[string]string{}
	fail := func(name, why string) {
		failed[name], checks[name] = why, "failed"
	}
	if s.draining.Load() {
		fail("shutdown", "draining")
	}
	if err := s.Store.Ping(r.Context()); err != nil {
		fail("store", err.Error())
	} else {
		checks["store"] = "ok"
	}
	s.awsMu.Lock()
	awsErr, once := s.awsErr, s.awsOnce
	s.awsMu.Unlock()
	switch {
	case !once:
		fail("aws", "not checked yet")
	case awsErr != nil:
		fail("aws", awsErr.Error())
	default:
		checks["aws"] = "ok"
	}
	degraded := map[string]string{}
	for _, c := range s.Ready {
		switch err := c.Check(r.Context()); {
		case err == nil:
			checks[c.Name] = "ok"
		case c.Degrades:
			degraded[c.Name], checks[c.Name] = err.Error(), "degraded"
		default:
			fail(c.Name, err.Error())
		}
	}
	if len(degraded) > 0 {
		s.Logger.Warn("degraded", "checks", degraded)
	}
	status := http.StatusOK
	if len(failed) > 0 {
		status = http.StatusServiceUnavailable
		s.Logger.Warn("not ready", "failed", failed)
	}
	if r.URL.Query().Has("verbose") {
		if _, ok := s.authorized(w, r, "readyz"); !ok {
			return
		}
		for name, why := range failed {
			checks[name] = why
		}
		for name, why := range degraded {
			checks[name] = "degraded: " + why
		}
	}
	writeJSON(w, status, map[string]any{"ready": len(failed) == 0, "degraded": len(degraded) > 0, "checks": checks})
}

// begin registers a piece of work shutdown must wait for; false once the
// server is stopping.
func (s *Server) begin() bool {
	s.trackMu.Lock()
	defer s.trackMu.Unlock()
	if s.stopping {
		return false
	}
	s.deploys.Add(1)
	return true
}
