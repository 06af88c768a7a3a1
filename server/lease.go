package server

import (
	"context"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// Replicas share each site through its bucket (releases.SharedStore).
// Two loops here keep that sharing moving:
//   - leases: each site's lease is taken or renewed every third of its
//     length; the holder alone posts the release notices reconcile finds,
//     tells the chat of drift, and records approval expiry (the scheduled
//     prune is claimed per run instead, see schedule).
//   - watch: every replica reads each site's lock every WatchInterval and
//     finishes a deploy whose runner is gone (a replica killed mid-deploy,
//     or one that stopped and handed it over). Of replicas finishing it at
//     once, the one whose claim in the lock wins runs it.

// DefaultWatchInterval is how often each replica reads each site's lock
// for a deploy to finish: one GET per site every 5 s (720 an hour).
const DefaultWatchInterval = 5 * time.Second

// holdLeases takes or renews the lease of every site once.
func (s *Server) holdLeases(ctx context.Context) {
	for _, site := range s.Service.Sites {
		if ctx.Err() != nil {
			return
		}
		had := s.Service.HoldsLease(site.Name)
		l, err := s.Service.HoldLease(ctx, site.Name)
		if err != nil {
			if ctx.Err() == nil {
				s.Logger.Warn("renewing the site lease; the jobs it covers wait", "site", site.Name, "err", err)
			}
			continue
		}
		held := 0.0
		if l.Mine {
			held = 1
		}
		s.Metrics.SiteLease.WithLabelValues(site.Name).Set(held)
		switch {
		case l.Mine && !had && l.Holder != "":
			s.Logger.Info("site lease taken: this replica runs the site's notices, drift reports and approval expiry", "site", site.Name, "epoch", l.Epoch)
		case !l.Mine && had:
			s.Logger.Warn("site lease lost to another replica", "site", site.Name, "holder_host", l.Host, "holder_pid", l.PID)
		}
	}
}

// watch finishes, on any replica, deploys whose runner is gone, and
// catches up with deploys other replicas ended (see releases.Watch).
func (s *Server) watch(ctx context.Context) {
	chat, end := s.resumedInChat(ctx)
	defer end()
	for _, site := range s.Service.Sites {
		if ctx.Err() != nil {
			return
		}
		recovered, err := s.Service.Watch(ctx, site.Name, s.progress(chat))
		s.recovered(recovered)
		if len(recovered) > 0 && s.Notifier != nil {
			s.Notifier.LiveChanged(ctx, site) // the notices say what is live now
		}
		if err != nil && ctx.Err() == nil && releases.ErrorCode(err) != releases.ECONFLICT {
			s.Logger.Warn("watching the site's shared state", "site", site.Name, "err", err)
		}
	}
}

// resumedInChat is the chat's progress for the deploys a recovery round
// resumes (nil without a chat that shows them), and what ends the round.
func (s *Server) resumedInChat(ctx context.Context) (releases.Progress, func()) {
	if r, ok := s.Notifier.(Resumer); ok {
		return r.Resumed(ctx)
	}
	return nil, func() {}
}

// recovered reports deploys recovery finished.
func (s *Server) recovered(ds []releases.Deploy) {
	for _, d := range ds {
		s.Metrics.Recovered.WithLabelValues(d.Site, string(d.Phase)).Inc()
		s.Logger.Warn("interrupted deploy recovered", "deploy_id", d.ID, "site", d.Site, "result", d.Phase, "error", d.Error)
	}
}
