package server

import (
	"context"
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
	// OverrideFreeze, when set, is why a promote goes ahead in a freeze or
	// outside the deploy windows.
	OverrideFreeze string `json:"override_freeze,omitempty"`
	// Rollback, on a promote, says the caller knows the release is older
	// than the live one: without it such a promote is refused (409).
	Rollback bool `json:"rollback,omitempty"`
	// Gradual makes a promote a rolling release (strategy kvs).
	Gradual bool `json:"gradual,omitempty"`
}

// RolloutRequest is the body of POST .../rollout: pause, resume,
// advance or abort the site's running rollout.
type RolloutRequest struct {
	Action string `json:"action"`
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
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
	Hint    string             `json:"hint,omitempty"`
	Result  *releases.Outcome  `json:"result,omitempty"`
}

// liftDeadlines frees one long answer from the server's read and write
// timeouts, which bound every other request.
func liftDeadlines(w http.ResponseWriter) {
	rc := http.NewResponseController(w)
	_ = rc.SetReadDeadline(time.Time{})
	_ = rc.SetWriteDeadline(time.Time{})
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
	writeJSON(w, st, errorBody{Error: releases.ErrorMessage(err), Code: releases.ErrorCode(err), Hint: releases.ErrorHint(err)})
}

func (s *Server) apiOK(w http.ResponseWriter, route string, v any) {
	s.Metrics.APIRequests.WithLabelValues(route, "200").Inc()
	writeJSON(w, http.StatusOK, v)
}

// authorized checks the bearer token against every configured token, in
// constant time, and returns the request with the token's name as its
// verified identity (releases.WithPrincipal): what the service decides
// on. Without a configured token the API is closed, never open.
func (s *Server) authorized(w http.ResponseWriter, r *http.Request, route string) (*http.Request, bool) {
	deny := func(msg string) (*http.Request, bool) {
		s.Metrics.APIRequests.WithLabelValues(route, "401").Inc()
		w.Header().Set("WWW-Authenticate", `Bearer realm="deploybot"`)
		writeJSON(w, http.StatusUnauthorized, errorBody{Error: msg, Code: releases.EUNAUTHORIZED})
		return r, false
	}
	tokens := s.tokens()
	if len(tokens) == 0 {
		return deny("the API is disabled: set http.api_token or http.tokens")
	}
	given, ok := strings.CutPrefix(r.Header.Get("Authorization"), "Bearer ")
	if !ok {
		return deny("missing or wrong bearer token")
	}
	// Every token is compared, whichever matches, so the time taken
	// does not say which (or whether an earlier one) matched.
	name := ""
	for _, t := range tokens {
		if subtle.ConstantTimeCompare([]byte(given), []byte(t.Token)) == 1 {
			name = t.Name
		}
	}
	if name == "" {
		return deny("missing or wrong bearer token")
	}
	p := releases.Principal{Kind: releases.PrincipalToken, ID: name}
	return r.WithContext(releases.WithPrincipal(r.Context(), p)), true
}

// APIToken is one bearer token of the API and the name it acts as.
type APIToken struct {
	Name  string
	Token string
}

func (s *Server) tokens() []APIToken {
	out := append([]APIToken(nil), s.Tokens...)
	if s.APIToken != "" {
		out = append(out, APIToken{Name: releases.LegacyTokenName, Token: s.APIToken})
	}
	return out
}

// labelled is r's context with what the caller named itself (the body's
// or query's actor) as its identity's label: recorded beside the token's
// name in the audit log, never trusted. The name is outside text: control
// characters and spaces are dropped and it is cut to 64 bytes.
func labelled(r *http.Request, actor string) context.Context {
	actor = strings.Map(func(r rune) rune {
		if r < ' ' || r == 0x7f || r == ' ' {
			return -1
		}
		return r
	}, actor)
	if len(actor) > 64 {
		actor = strings.ToValidUTF8(actor[:64], "")
	}
	ctx := r.Context()
	if p, ok := releases.PrincipalOf(ctx); ok && actor != "" {
		p.Label = actor
		ctx = releases.WithPrincipal(ctx, p)
	}
	return ctx
}

// answer is one API route whose request has no body: the bearer token,
// the call, its answer or error, each counted under route.
func (s *Server) answer(route string, call func(r *http.Request) (any, error)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		r, ok := s.authorized(w, r, route)
		if !ok {
			return
		}
		r = r.WithContext(releases.WithDoor(r.Context(), releases.DoorAPI))
		out, err := call(r)
		if err != nil {
			s.apiError(w, route, err)
			return
		}
		s.apiOK(w, route, out)
	}
}

// answerJSON is answer for a route that takes a JSON body of type Req
// (at most 64 KiB, no unknown fields).
func answerJSON[Req any](s *Server, route string, call func(r *http.Request, req Req) (any, error)) http.HandlerFunc {
	return s.answer(route, func(r *http.Request) (any, error) {
		var req Req
		if err := decodeBody(r, &req); err != nil {
			return nil, err
		}
		return call(r, req)
	})
}

func (s *Server) routeAPI(mux *routes) {
	s.routeReads(mux)
	s.routeDeploys(mux)
	s.routeRecords(mux)
	s.routeChanges(mux)
}

// routeReads: what the sites hold and serve.
func (s *Server) routeReads(mux *routes) {
	mux.handle("GET /api/v1/sites", s.answer("sites", func(*http.Request) (any, error) {
		names := []string{}
		for _, site := range s.Service.Sites {
			names = append(names, site.Name)
		}
		return map[string]any{"sites": names}, nil
	}))
	mux.handle("GET /api/v1/sites/{site}/releases", s.answer("releases", func(r *http.Request) (any, error) {
		vs, err := s.Service.Versions(r.Context(), r.PathValue("site"))
		if vs == nil {
			vs = []releases.VersionInfo{}
		}
		return vs, err
	}))
	mux.handle("POST /api/v1/sites/{site}/sync", s.answer("sync", func(r *http.Request) (any, error) {
		added, err := s.Service.Sync(r.Context(), r.PathValue("site"))
		if added == nil {
			added = []releases.Release{}
		}
		return SyncResponse{Added: added}, err
	}))
	mux.handle("GET /api/v1/sites/{site}/status", s.answer("status", func(r *http.Request) (any, error) {
		return s.Service.Status(r.Context(), r.PathValue("site"))
	}))
	// A diff reads two manifests: within the process's manifest budget,
	// one at a time per site (a second meanwhile is 409), as from chat.
	mux.handle("GET /api/v1/sites/{site}/diff", s.answer("diff", func(r *http.Request) (any, error) {
		q := r.URL.Query()
		return s.Service.Diff(r.Context(), r.PathValue("site"), q.Get("from"), q.Get("to"))
	}))
}

// routeDeploys: promote, rollback, and the approvals that start them.
func (s *Server) routeDeploys(mux *routes) {
	for _, kind := range []releases.Kind{releases.KindPromote, releases.KindRollback} {
		route := string(kind)
		mux.handle("POST /api/v1/sites/{site}/"+route, func(w http.ResponseWriter, r *http.Request) {
			if r, ok := s.authorized(w, r, route); ok {
				s.handleDeploy(w, r, kind)
			}
		})
	}
	mux.handle("GET /api/v1/sites/{site}/approvals", s.answer("approvals", func(r *http.Request) (any, error) {
		as, err := s.Service.Approvals(r.Context(), r.PathValue("site"), 50)
		if as == nil {
			as = []releases.ApprovalRequest{}
		}
		return as, err
	}))
	mux.handle("GET /api/v1/sites/{site}/approvals/{id}", s.answer("approval", func(r *http.Request) (any, error) {
		return s.Service.Approval(r.Context(), r.PathValue("site"), r.PathValue("id"))
	}))
	mux.handle("POST /api/v1/sites/{site}/approvals/{id}/approve", s.handleApprove)
	mux.handle("POST /api/v1/sites/{site}/approvals/{id}/reject", answerJSON(s, "reject", func(r *http.Request, req DecisionRequest) (any, error) {
		return s.Service.Reject(labelled(r, req.Actor), r.PathValue("site"), r.PathValue("id"), req.Actor, req.Reason)
	}))
}

// handleApprove approves a request; the deploy it starts streams as a
// promote's does.
func (s *Server) handleApprove(w http.ResponseWriter, r *http.Request) {
	r, ok := s.authorized(w, r, "approve")
	if !ok {
		return
	}
	var req DecisionRequest
	if err := decodeBody(r, &req); err != nil {
		s.apiError(w, "approve", err)
		return
	}
	site, id, actor := r.PathValue("site"), r.PathValue("id"), req.Actor
	s.streamDeploy(w, labelled(r, req.Actor), "approve", site, func(work context.Context, progress releases.Progress) (*releases.Outcome, error) {
		return s.Service.Approve(work, site, id, actor, progress)
	})
}

// routeRecords: the store's backup, prune and the history.
func (s *Server) routeRecords(mux *routes) {
	mux.handle("GET /api/v1/backup", func(w http.ResponseWriter, r *http.Request) {
		r, ok := s.authorized(w, r, "backup")
		if !ok {
			return
		}
		// The store holds every site's records: a token needs the
		// deployer role on every site, not a grant of one.
		if p, _ := releases.PrincipalOf(r.Context()); s.Service.Access != nil && !s.Service.Access.HoldsEverywhere(p, releases.RoleDeployer) {
			s.apiError(w, "backup", releases.Errorf(releases.EUNAUTHORIZED, "a backup holds every site's records: %s needs the deployer role on every site (http.tokens roles without :SITE)", p))
			return
		}
		s.handleBackup(w, r)
	})
	mux.handle("POST /api/v1/sites/{site}/prune", answerJSON(s, "prune", s.prune))
	mux.handle("GET /api/v1/sites/{site}/history", s.answer("history", func(r *http.Request) (any, error) {
		limit := 100
		if v := r.URL.Query().Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 10000 {
				return nil, releases.Errorf(releases.EINVALID, "limit must be 1 to 10000 (got %q)", v)
			}
			limit = n
		}
		h, err := s.Service.History(r.Context(), r.PathValue("site"), limit)
		if h == nil {
			h = []releases.AuditEntry{}
		}
		return h, err
	}))
}

// prune answers a prune: a run that deleted some releases and then
// failed answers 200 with what it did and the error, so a script sees
// both.
func (s *Server) prune(r *http.Request, req PruneRequest) (any, error) {
	rep, err := s.Prune(labelled(r, req.Actor), releases.PruneRequest{Site: r.PathValue("site"), DryRun: req.DryRun, Actor: req.Actor})
	if err != nil && rep == nil {
		return nil, err
	}
	body := map[string]any{"report": rep}
	if err != nil {
		body["error"], body["code"] = releases.ErrorMessage(err), releases.ErrorCode(err)
		if h := releases.ErrorHint(err); h != "" {
			body["hint"] = h
		}
	}
	return body, nil
}

// routeChanges: pins, previews, locks and freezes.
func (s *Server) routeChanges(mux *routes) {
	mux.handle("POST /api/v1/sites/{site}/pins", answerJSON(s, "pin", func(r *http.Request, req PinRequest) (any, error) {
		return s.Service.PinRelease(labelled(r, req.Actor), r.PathValue("site"), req.Version, req.Actor, req.Reason)
	}))
	mux.handle("POST /api/v1/sites/{site}/previews", answerJSON(s, "preview", func(r *http.Request, req PreviewRequest) (any, error) {
		return s.Service.Preview(labelled(r, req.Actor), r.PathValue("site"), req.Version, req.Actor, time.Duration(req.TTLSeconds)*time.Second)
	}))
	mux.handle("POST /api/v1/sites/{site}/rollout", answerJSON(s, "rollout", func(r *http.Request, req RolloutRequest) (any, error) {
		return s.Service.ControlRollout(labelled(r, req.Actor), releases.RolloutRequest{Site: r.PathValue("site"), Action: req.Action, Actor: req.Actor, Reason: req.Reason})
	}))
	mux.handle("PUT /api/v1/sites/{site}/lock", answerJSON(s, "lock", func(r *http.Request, req LockRequest) (any, error) {
		return s.Service.LockSite(labelled(r, req.Actor), r.PathValue("site"), req.Actor, req.Reason)
	}))
	mux.handle("DELETE /api/v1/sites/{site}/lock", s.answer("unlock", func(r *http.Request) (any, error) {
		actor := r.URL.Query().Get("actor")
		l, err := s.Service.UnlockSite(labelled(r, actor), r.PathValue("site"), actor)
		return UnlockResponse{Released: l}, err
	}))
	// {site} "all" freezes every site (no site may be called that: site
	// names are lower case, and "all" is refused by config).
	mux.handle("PUT /api/v1/sites/{site}/freeze", answerJSON(s, "freeze", func(r *http.Request, req FreezeRequest) (any, error) {
		site := r.PathValue("site")
		fs, err := s.Service.Freeze(labelled(r, req.Actor), releases.FreezeRequest{Site: site, All: site == AllSites, Until: req.Until, Reason: req.Reason, Actor: req.Actor})
		return FreezeResponse{Frozen: orEmpty(fs)}, err
	}))
	mux.handle("DELETE /api/v1/sites/{site}/freeze", s.answer("unfreeze", func(r *http.Request) (any, error) {
		site := r.PathValue("site")
		actor := r.URL.Query().Get("actor")
		fs, err := s.Service.Unfreeze(labelled(r, actor), site, site == AllSites, actor)
		return UnfreezeResponse{Lifted: orEmpty(fs)}, err
	}))
	mux.handle("DELETE /api/v1/sites/{site}/pins/{version}", s.answer("unpin", func(r *http.Request) (any, error) {
		actor := r.URL.Query().Get("actor")
		err := s.Service.UnpinRelease(labelled(r, actor), r.PathValue("site"), r.PathValue("version"), actor)
		return map[string]string{"status": "unpinned"}, err
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
	Actor      string `json:"actor"`
}

// LockRequest is the body of PUT .../lock.
type LockRequest struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason"`
}

// DecisionRequest is the body of POST .../approvals/{id}/approve and
// .../reject (the reason is a rejection's).
type DecisionRequest struct {
	Actor  string `json:"actor"`
	Reason string `json:"reason,omitempty"`
}

// SyncResponse lists the releases a sync recorded.
type SyncResponse struct {
	Added []releases.Release `json:"added"`
}

// AllSites in a freeze's path freezes (or unfreezes) every site.
const AllSites = "all"

// FreezeRequest is the body of PUT .../freeze. Until is a duration from
// now ("2h", "3d") or a time (RFC 3339, or a UTC date "2026-12-24").
type FreezeRequest struct {
	Until  string `json:"until"`
	Reason string `json:"reason"`
	Actor  string `json:"actor"`
}

// FreezeResponse lists the freezes made, one per site.
type FreezeResponse struct {
	Frozen []releases.Freeze `json:"frozen"`
}

// UnfreezeResponse lists the run-time freezes lifted (empty: none held;
// configured freezes are never lifted).
type UnfreezeResponse struct {
	Lifted []releases.Freeze `json:"lifted"`
}

func orEmpty(fs []releases.Freeze) []releases.Freeze {
	if fs == nil {
		return []releases.Freeze{}
	}
	return fs
}

// UnlockResponse names the lock that was released (null: none was held).
type UnlockResponse struct {
	Released *releases.Lock `json:"released"`
}

// PinRequest is the body of POST .../pins.
type PinRequest struct {
	Version string `json:"version"`
	Actor   string `json:"actor"`
	Reason  string `json:"reason"`
}

func decodeBody(r *http.Request, v any) error {
	dec := json.NewDecoder(io.LimitReader(r.Body, 64<<10))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return releases.Errorf(releases.EINVALID, "bad JSON body: %v", err)
	}
	return nil
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
	if err := decodeBody(r, &req); err != nil {
		s.apiError(w, route, err)
		return
	}
	site := r.PathValue("site")
	if kind == releases.KindRollback && req.Gradual {
		s.apiError(w, route, releases.Errorf(releases.EINVALID, "a rollback is never gradual: it goes back for everyone at once"))
		return
	}
	s.streamDeploy(w, labelled(r, req.Actor), route, site, func(work context.Context, progress releases.Progress) (*releases.Outcome, error) {
		if kind == releases.KindRollback {
			return s.Service.Rollback(work, releases.RollbackRequest{Site: site, Version: req.Version, Actor: req.Actor, Reason: req.Reason}, progress)
		}
		return s.Service.Promote(work, releases.PromoteRequest{Site: site, Version: req.Version, Actor: req.Actor, Reason: req.Reason,
			NoVerify: req.NoVerify, Override: req.OverrideFreeze, Back: req.Rollback, Gradual: req.Gradual}, progress)
	})
}

// streamDeploy runs what may become a deploy (a promote, a rollback, the
// approval that starts one) on the server's work context and answers as
// handleDeploy says.
func (s *Server) streamDeploy(w http.ResponseWriter, asked context.Context, route, site string, run func(work context.Context, progress releases.Progress) (*releases.Outcome, error)) {
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
	// The deploy outlives the request: it runs on the server's work
	// context, marked as the API's for the audit record.
	work := releases.WithDoor(s.work, releases.DoorAPI)
	if p, ok := releases.PrincipalOf(asked); ok {
		work = releases.WithPrincipal(work, p)
	}
	go func() {
		defer s.deploys.Done()
		progress := s.progress(func(e releases.Event) {
			select {
			case events <- e:
			default: // a slow client must not hold the flip back
			}
		})
		out, err := run(work, progress)
		if s.Notifier != nil {
			if st, serr := s.Service.Site(site); serr == nil {
				s.Notifier.LiveChanged(work, st)
			}
		}
		done <- result{out, err}
	}()

	// A deploy streams for as long as it runs (minutes with CloudFront):
	// the server's read and write timeouts would cut it off (past the read
	// deadline net/http takes the connection for dead).
	liftDeadlines(w)
	out := &ndjson{w: w}
	out.flusher, _ = w.(http.Flusher)
	send := out.send
	for {
		select {
		case e := <-events:
			send(wireEvent(e))
		case res := <-done:
			for len(events) > 0 {
				send(wireEvent(<-events))
			}
			if out.enc == nil { // refused before anything started
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
				send(WireEvent{Err: releases.ErrorMessage(res.err), Code: releases.ErrorCode(res.err), Hint: releases.ErrorHint(res.err)})
				return
			}
			send(WireEvent{Result: res.out})
			return
		}
	}
}

// ndjson writes a deploy's answer a line at a time, each flushed at once;
// the status and header go with the first line.
type ndjson struct {
	w       http.ResponseWriter
	enc     *json.Encoder
	flusher http.Flusher
}

func (n *ndjson) send(v WireEvent) {
	if n.enc == nil {
		n.w.Header().Set("Content-Type", "application/x-ndjson")
		n.w.WriteHeader(http.StatusOK)
		n.enc = json.NewEncoder(n.w)
	}
	_ = n.enc.Encode(v)
	if n.flusher != nil {
		n.flusher.Flush()
	}
}

// wireEvent is a deploy's event as its answer's line says it.
func wireEvent(e releases.Event) WireEvent {
	d := e.Deploy
	we := WireEvent{Type: e.Type, Phase: e.Phase, Title: e.Title, Seconds: e.Elapsed.Seconds(), Deploy: &d}
	if e.Err != nil {
		we.Err, we.Code, we.Hint = releases.ErrorMessage(e.Err), releases.ErrorCode(e.Err), releases.ErrorHint(e.Err)
	}
	return we
}

// handleBackup streams a consistent snapshot of the store (a bbolt read
// transaction: deploys keep running while it is written).
func (s *Server) handleBackup(w http.ResponseWriter, r *http.Request) {
	// A large store takes longer to send than one answer may.
	liftDeadlines(w)
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
