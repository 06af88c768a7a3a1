package server

import (
	"context"
	"net/http"
)

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
