package server

import (
	"crypto/subtle"
	"encoding/json"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// DeployRequest is the body of POST .../promote and .../rollback.
type DeployRequest struct {
	Version  string `json:"version"`
	Actor    string `json:"actor"`
	Reason   string `json:"reason"`
	NoVerify bool   `json:"no_verify,omitempty"`
}

// WireEvent is one line of a promote/rollback answer (NDJSON): progress
// events while the deploy runs, then one line with Result or Error.
type WireEvent struct {
	Type    releases.EventType `json:"type,omitempty"`
	Phase   releases.Phase     `json:"phase,omitempty"`
	Title   string             `json:"title,omitempty"`
	Seconds float64            `json:"seconds,omitempty"`
	Deploy  *releases.Deploy   `json:"deploy,omitempty"`
	Err     string             `json:"error,omitempty"`
	Code    string             `json:"code,omitempty"`
	Result  *releases.Outcome  `json:"result,omitempty"`
}

func statusOf(err error) int {
	switch releases.ErrorCode(err) {
	case releases.EINVALID:
		return http.StatusBadRequest
	case releases.ENOTFOUND:
		return http.StatusNotFound
	case releases.ECONFLICT:
		return http.StatusConflict
	case releases.EUNAUTHORIZED:
		return http.StatusForbidden
	}
	return http.StatusInternalServerError
}

func (s *Server) apiError(w http.ResponseWriter, route string, err error) {
	st := statusOf(err)
	s.Metrics.APIRequests.WithLabelValues(route, strconv.Itoa(st)).Inc()
	writeJSON(w, st, errorBody{Error: releases.ErrorMessage(err), Code: releases.ErrorCode(err)})
}

func (s *Server) apiOK(w http.ResponseWriter, route string, v any) {
	s.Metrics.APIRequests.WithLabelValues(route, "200").Inc()
	writeJSON(w, http.StatusOK, v)
}

// authorized checks the bearer token in constant time. Without a
// configured token the API is closed, never open.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, route string) bool {
	deny := func(msg string) bool {
		s.Metrics.APIRequests.WithLabelValues(route, "401").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="deploybot"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: msg, Code: releases.EUNAUTHORIZED})
		return false
	}
	if s.APIToken == "" {
		return deny("the API is disabled: set http.api_token")
	}
	token, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok || subtle.ConstantTimeCompare([]byte(token), []byte(s.APIToken)) != 1 {
		return deny("missing or wrong bearer token")
	}
	return true
}

func (s *Server) routeAPI(mux *http.ServeMux) {
	auth := func(route string, h func(http.ResponseWriter, *http.Request)) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if s.authorized(w, r, route) {
				h(w, r)
			}
		}
	}
	mux.HandleFunc("GET /api/v1/sites", auth("sites", func(w http.ResponseWriter, r *http.Request) {
		names := []string{}
		for _, site := range s.Service.Sites {
			names = append(names, site.Name)
		}
		s.apiOK(w, "sites", map[string]any{"sites": names})
	}))
	mux.HandleFunc("GET /api/v1/sites/{site}/releases", auth("releases", func(w http.ResponseWriter, r *http.Request) {
		vs, err := s.Service.Versions(r.Context(), r.PathValue("site"))
		if err != nil {
			s.apiError(w, "releases", err)
			return
		}
		if vs == nil {
			vs = []releases.VersionInfo{}
		}
		s.apiOK(w, "releases", vs)
	}))
	mux.HandleFunc("GET /api/v1/sites/{site}/status", auth("status", func(w http.ResponseWriter, r *http.Request) {
		st, err := s.Service.Status(r.Context(), r.PathValue("site"))
		if err != nil {
			s.apiError(w, "status", err)
			return
		}
		s.apiOK(w, "status", st)
	}))
	mux.HandleFunc("POST /api/v1/sites/{site}/promote", auth("promote", func(w http.ResponseWriter, r *http.Request) {
		s.handleDeploy(w, r, releases.KindPromote)
	}))
	mux.HandleFunc("POST /api/v1/sites/{site}/rollback", auth("rollback", func(w http.ResponseWriter, r *http.Request) {
		s.handleDeploy(w, r, releases.KindRollback)
	}))
	mux.HandleFunc("GET /api/v1/backup", auth("backup", s.handleBackup))
	mux.HandleFunc("POST /api/v1/sites/{site}/prune", auth("prune", func(w http.ResponseWriter, r *http.Request) {
		var req PruneRequest
		if !decode(w, r, &req, s, "prune") {
			return
		}
		if req.Actor == "" {
			req.Actor = "api"
		}
		rep, err := s.Prune(r.Context(), releases.PruneRequest{Site: r.PathValue("site"), DryRun: req.DryRun, Actor: req.Actor})
		body := map[string]any{"report": rep}
		if err != nil {
			if rep == nil {
				s.apiError(w, "prune", err)
				return
			}
			body["error"], body["code"] = releases.ErrorMessage(err), releases.ErrorCode(err)
		}
		s.apiOK(w, "prune", body)
	}))
	mux.HandleFunc("POST /api/v1/sites/{site}/pins", auth("pin", func(w http.ResponseWriter, r *http.Request) {
		var req PinRequest
		if !decode(w, r, &req, s, "pin") {
			return
		}
		if req.Actor == "" {
			req.Actor = "api"
		}
		p, err := s.Service.PinRelease(r.Context(), r.PathValue("site"), req.Version, req.Actor, req.Reason)
		if err != nil {
			s.apiError(w, "pin", err)
			return
		}
		s.apiOK(w, "pin", p)
	}))
	mux.HandleFunc("POST /api/v1/sites/{site}/previews", auth("preview", func(w http.ResponseWriter, r *http.Request) {
		var req PreviewRequest
		if !decode(w, r, &req, s, "preview") {
			return
		}
		p, err := s.Service.Preview(r.Context(), r.PathValue("site"), req.Version, time.Duration(req.TTLSeconds)*time.Second)
		if err != nil {
			s.apiError(w, "preview", err)
			return
		}
		s.apiOK(w, "preview", p)
	}))
	mux.HandleFunc("PUT /api/v1/sites/{site}/lock", auth("lock", func(w http.ResponseWriter, r *http.Request) {
		var req LockRequest
		if !decode(w, r, &req, s, "lock") {
			return
		}
		if req.Actor == "" {
			req.Actor = "api"
		}
		l, err := s.Service.LockSite(r.Context(), r.PathValue("site"), req.Actor, req.Reason)
		s.Service.Audit(r.Context(), auditOf(r.PathValue("site"), req.Actor, "lock", req.Reason, err))
		if err != nil {
			s.apiError(w, "lock", err)
			return
		}
		s.apiOK(w, "lock", l)
	}))
	mux.HandleFunc("DELETE /api/v1/sites/{site}/lock", auth("unlock", func(w http.ResponseWriter, r *http.Request) {
		actor := r.URL.Query().Get("actor")
		if actor == "" {
			actor = "api"
		}
		l, err := s.Service.UnlockSite(r.Context(), r.PathValue("site"), actor)
		s.Service.Audit(r.Context(), auditOf(r.PathValue("site"), actor, "unlock", "", err))
		if err != nil {
			s.apiError(w, "unlock", err)
			return
		}
		s.apiOK(w, "unlock", UnlockResponse{Released: l})
	}))
	mux.HandleFunc("DELETE /api/v1/sites/{site}/pins/{version}", auth("unpin", func(w http.ResponseWriter, r *http.Request) {
		if err := s.Service.UnpinRelease(r.Context(), r.PathValue("site"), r.PathValue("version")); err != nil {
			s.apiError(w, "unpin", err)
			return
		}
		s.apiOK(w, "unpin", map[string]string{"status": "unpinned"})
	}))
}

// PruneRequest is the body of POST .../prune.
type PruneRequest struct {
	DryRun bool   `json:"dry_run"`
	Actor  string `json:"actor"`
}

// PreviewRequest is the body of POST .../previews.
type PreviewRequest struct {
	Version    string `json:"version"`
	TTLSeconds int64  `json:"ttl_seconds"` // zero: an hour
}

// LockRequest is the body of PUT .../lock.
type LockRequest struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
}

// UnlockResponse names the lock that was released (null: none was held).
type UnlockResponse struct {
	Released *releases.Lock `json:"released"`
}

func auditOf(site, actor, action, detail string, err error) releases.AuditEntry {
	e := releases.AuditEntry{Site: site, Actor: actor, Action: action, Result: "ok", Detail: detail, Door: "api"}
	if err != nil {
		e.Result, e.Detail = "refused", releases.ErrorMessage(err)
	}
	return e
}

// PinRequest is the body of POST .../pins.
type PinRequest struct {
	Version string `json:"version"`
	Actor   string `json:"actor"`
	Reason  string `json:"reason"`
}

func decode(w http.ResponseWriter, r *http.Request, v any, s *Server, route string) bool {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		s.apiError(w, route, releases.Errorf(releases.EINVALID, "bad JSON body: %v", err))
		return false
	}
	return true
}

// handleDeploy runs a promote or rollback. The deploy runs on the server's
// own context, not the request's: a client that goes away does not stop a
// flip half way. Refusals before the deploy starts get their own HTTP
// status; once it starts, the answer is 200 and a stream of NDJSON events
// ending in a result or error line.
func (s *Server) handleDeploy(w http.ResponseWriter, r *http.Request, kind releases.Kind) {
	route := string(kind)
	if s.draining.Load() {
		s.Metrics.APIRequests.WithLabelValues(route, "503").Inc()
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "deploybot is shutting down; retry shortly"})
		return
	}
	var req DeployRequest
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(&req); err != nil {
		s.apiError(w, route, releases.Errorf(releases.EINVALID, "bad JSON body: %v", err))
		return
	}
	if req.Actor == "" {
		req.Actor = "api"
	}
	site := r.PathValue("site")

	events := make(chan releases.Event, 64)
	type result struct {
		out *releases.Outcome
		err error
	}
	done := make(chan result, 1)
	if !s.begin() {
		s.Metrics.APIRequests.WithLabelValues(route, "503").Inc()
		writeJSON(w, http.StatusServiceUnavailable, errorBody{Error: "deploybot is shutting down; retry shortly"})
		return
	}
	go func() {
		defer s.deploys.Done()
		progress := s.progress(func(e releases.Event) {
			select {
			case events <- e:
			default: // a slow client must not hold the flip back
			}
		})
		var out *releases.Outcome
		var err error
		if kind == releases.KindRollback {
			out, err = s.Service.Rollback(s.work, releases.RollbackRequest{Site: site, Version: req.Version, Actor: req.Actor, Reason: req.Reason}, progress)
		} else {
			out, err = s.Service.Promote(s.work, releases.PromoteRequest{Site: site, Version: req.Version, Actor: req.Actor, Reason: req.Reason, NoVerify: req.NoVerify}, progress)
		}
		done <- result{out, err}
	}()

	var enc *json.Encoder
	flusher, _ := w.(http.Flusher)
	send := func(v WireEvent) {
		if enc == nil {
			w.Header().Set("Content-Type", "application/x-ndjson")
			w.WriteHeader(http.StatusOK)
			enc = json.NewEncoder(w)
		}
		_ = enc.Encode(v)
		if flusher != nil {
			flusher.Flush()
		}
	}
	wire := func(e releases.Event) WireEvent {
		d := e.Deploy
		we := WireEvent{Type: e.Type, Phase: e.Phase, Title: e.Title, Seconds: e.Elapsed.Seconds(), Deploy: &d}
		if e.Err != nil {
			we.Err, we.Code = releases.ErrorMessage(e.Err), releases.ErrorCode(e.Err)
		}
		return we
	}
	for {
		select {
		case e := <-events:
			send(wire(e))
		case res := <-done:
			for len(events) > 0 {
				send(wire(<-events))
			}
			if enc == nil { // refused before anything started
				if res.err != nil {
					s.apiError(w, route, res.err)
					return
				}
				s.Metrics.APIRequests.WithLabelValues(route, "200").Inc()
				send(WireEvent{Result: res.out})
				return
			}
			s.Metrics.APIRequests.WithLabelValues(route, "200").Inc()
			if res.err != nil {
				send(WireEvent{Err: releases.ErrorMessage(res.err), Code: releases.ErrorCode(res.err)})
				return
			}
			send(WireEvent{Result: res.out})
			return
		}
	}
}

// handleBackup streams a consistent snapshot of the store (a bbolt read
// transaction: deploys keep running while it is written).
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Content-Type", "application/octet-stream")
	w.Header().Set("Content-Disposition", `attachment; filename="deploybot-`+s.now().UTC().Format("20060102T150405Z")+`.db"`)
	n, err := s.Store.Backup(r.Context(), w)
	if err != nil {
		s.Logger.Error("backup failed", "bytes", n, "err", err)
		if n == 0 {
			s.apiError(w, "backup", err)
		}
		return
	}
	s.Metrics.APIRequests.WithLabelValues("backup", "200").Inc()
	s.Logger.Info("backup written", "bytes", n)
}
