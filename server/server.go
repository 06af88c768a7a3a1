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

// NoticeRetrier is a Notifier that posts again the notices of releases
// whose post failed or whose poster died; called on the holder of the
// site's lease at each reconcile.
type NoticeRetrier interface {
	RetryNotices(ctx context.Context, site releases.Site)
}

// Resumer is a Notifier that goes on showing the deploys recovery resumes
// where they were shown (a chat card and thread); end is called once
// recovery returns.
type Resumer interface {
	Resumed(ctx context.Context) (progress releases.Progress, end func())
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

// progress wraps a door's progress sink with metrics.
func (s *Server) progress(next releases.Progress) releases.Progress {
	return func(e releases.Event) {
		s.Metrics.observe(e)
		if next != nil {
			next(e)
		}
	}
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
