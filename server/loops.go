package server

import (
	"context"
	"time"

	"github.com/deploybot/deploybot/internal/ticker"
	"github.com/deploybot/deploybot/releases"
)

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
	chat, end := s.resumedInChat(ctx)
	recovered, err := s.Service.Recover(ctx, s.progress(chat))
	end()
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
		if r, ok := s.Notifier.(NoticeRetrier); ok && leader {
			r.RetryNotices(ctx, site)
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
