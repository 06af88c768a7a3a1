package server

import (
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"

	"github.com/deploybot/deploybot/hook"
	"github.com/deploybot/deploybot/releases"
)

type errorBody struct {
	Error string `json:"error"`
	Code  string `json:"code,omitempty"`
	// Hint names what the caller may do about it (releases' Hint codes,
	// such as "no-verify": send "no_verify": true).
	Hint string `json:"hint,omitempty"`
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	_ = enc.Encode(v)
}

type hookAnswer struct {
	Status  string            `json:"status"`
	Release *releases.Release `json:"release,omitempty"`
}

// handleHook is POST /hooks/release, as the contract lays it out: 202
// recorded (or already), 400 bad JSON or version, 401 signature or
// timestamp (or a replay), 404 unknown site, 413 too large, 422 no manifest.
func (s *Server) handleHook(w http.ResponseWriter, r *http.Request) {
	status, body := s.hook(r)
	s.Metrics.HookRequests.WithLabelValues(strconv.Itoa(status)).Inc()
	writeJSON(w, status, body)
}

func (s *Server) hook(r *http.Request) (int, any) {
	log := s.Logger.With("route", "hook", "remote", r.RemoteAddr)
	if len(s.HookSecret) == 0 {
		log.Warn("hook refused: hook.secret is not set")
		return http.StatusUnauthorized, errorBody{Error: "this deploybot has no hook.secret configured; the hook is disabled"}
	}
	if s.draining.Load() {
		return http.StatusServiceUnavailable, errorBody{Error: "deploybot is shutting down; retry shortly"}
	}
	if r.ContentLength > hook.MaxBody {
		return http.StatusRequestEntityTooLarge, errorBody{Error: "body larger than 64 KiB"}
	}
	raw, err := io.ReadAll(io.LimitReader(r.Body, hook.MaxBody+1))
	if err != nil {
		return http.StatusBadRequest, errorBody{Error: "reading body: " + err.Error()}
	}
	if len(raw) > hook.MaxBody {
		return http.StatusRequestEntityTooLarge, errorBody{Error: "body larger than 64 KiB"}
	}
	now := s.now()
	signed, err := hook.Verify(s.HookSecret, r.Header.Get(hook.HeaderTimestamp), r.Header.Get(hook.HeaderSignature), raw, now)
	if err != nil {
		log.Warn("hook refused", "reason", err.Error())
		return http.StatusUnauthorized, errorBody{Error: err.Error()}
	}
	switch s.replay.add(signed, now) {
	case replaySeen:
		log.Warn("hook refused: replayed signature")
		return http.StatusUnauthorized, errorBody{Error: "replayed notice: this signature was already used"}
	case replayFull:
		s.Metrics.HookReplayFull.Inc()
		log.Error("hook refused: the replay cache is full", "entries", s.replay.size())
		return http.StatusServiceUnavailable, errorBody{Error: "too many notices in the last minutes; retry later"}
	}
	s.Metrics.HookReplayEntries.Set(float64(s.replay.size()))
	n, err := hook.ParseNotice(raw)
	if err != nil {
		return http.StatusBadRequest, errorBody{Error: err.Error()}
	}
	if err := releases.ValidateVersion(n.Version); err != nil {
		return http.StatusBadRequest, errorBody{Error: releases.ErrorMessage(err)}
	}
	site, err := s.Service.Site(n.Site)
	if err != nil {
		return http.StatusNotFound, errorBody{Error: releases.ErrorMessage(err)}
	}
	rel, created, err := s.Service.RecordNotice(r.Context(), site.Name, n.Version, n.Commit, n.Message)
	switch {
	case releases.ErrorCode(err) == releases.ECONFLICT:
		return http.StatusConflict, errorBody{Error: releases.ErrorMessage(err), Code: releases.ECONFLICT}
	case releases.ErrorCode(err) == releases.EINVALID:
		// The manifest in the bucket is malformed: the sender's build is
		// at fault, not this server.
		log.Warn("hook: the release's manifest is not valid", "site", site.Name, "version", n.Version, "err", err)
		return http.StatusUnprocessableEntity, errorBody{Error: releases.ErrorMessage(err), Code: releases.EINVALID}
	case errors.Is(err, releases.ErrNoManifest):
		return http.StatusUnprocessableEntity, errorBody{Error: "no manifest for " + n.Version + " in the bucket yet: publish writes it last, after every file"}
	case err != nil:
		log.Error("hook: recording release", "site", site.Name, "version", n.Version, "err", err)
		return http.StatusInternalServerError, errorBody{Error: releases.ErrorMessage(err)}
	}
	if !created {
		return http.StatusAccepted, hookAnswer{Status: "already recorded", Release: &rel}
	}
	log.Info("release recorded from hook", "site", site.Name, "version", rel.Version, "commit", rel.Commit)
	s.Metrics.Releases.WithLabelValues(site.Name, "hook").Inc()
	if s.Notifier != nil {
		s.Notifier.ReleaseRecorded(r.Context(), site, rel, "hook")
	}
	return http.StatusAccepted, hookAnswer{Status: "recorded", Release: &rel}
}
