package server

import (
	"context"
	"sync"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/deploybot/deploybot/releases"
)

// Schedule is when a site is pruned: a cron schedule read in a time zone.
type Schedule struct {
	Site     string
	Cron     cron.Schedule
	Location *time.Location
}

// pruneLocks keeps prune runs of one site from overlapping.
type pruneLocks struct {
	mu    sync.Mutex
	sites map[string]*sync.Mutex
}

func (p *pruneLocks) of(site string) *sync.Mutex {
	p.mu.Lock()
	defer p.mu.Unlock()
	if p.sites == nil {
		p.sites = map[string]*sync.Mutex{}
	}
	if p.sites[site] == nil {
		p.sites[site] = &sync.Mutex{}
	}
	return p.sites[site]
}

// Prune runs retention for one site, one run at a time per site, and
// reports it: metrics, the audit log, and the notifier (the site's
// channel). Every door (API, Slack, schedule) comes through here.
func (s *Server) Prune(ctx context.Context, req releases.PruneRequest) (*releases.PruneReport, error) {
	s.init()
	site, err := s.Service.Site(req.Site)
	if err != nil {
		return nil, err
	}
	mu := s.prunes.of(site.Name)
	req.Site = site.Name
	if !mu.TryLock() {
		return s.Service.PruneSkipped(ctx, req, "another prune of this site is running")
	}
	defer mu.Unlock()
	if !s.begin() {
		return s.Service.PruneSkipped(ctx, req, "deploybot is shutting down")
	}
	defer s.deploys.Done()
	rep, err := s.Service.Prune(ctx, req)
	result := "ok"
	switch {
	case err != nil:
		result = "failed"
	case rep != nil && rep.Skipped != "":
		result = "skipped"
	case req.DryRun:
		result = "dry_run"
	}
	s.Metrics.PruneRuns.WithLabelValues(site.Name, result).Inc()
	if rep != nil {
		s.Metrics.PruneSeconds.WithLabelValues(site.Name).Observe(rep.Seconds)
		if !req.DryRun {
			released := 0
			for _, d := range rep.Deleted {
				if d.Error == "" {
					released++
				}
			}
			s.Metrics.ReleasesPruned.WithLabelValues(site.Name).Add(float64(released))
			s.Metrics.ObjectsPruned.WithLabelValues(site.Name).Add(float64(rep.Objects))
			s.Metrics.BytesFreed.WithLabelValues(site.Name).Add(float64(rep.Bytes))
		}
		if s.Notifier != nil {
			s.Notifier.PruneFinished(ctx, site, rep, err)
		}
	}
	return rep, err
}

// schedule prunes each site on its cron schedule until ctx is done. Time
// comes from s.Now and s.After, so tests drive it without sleeping.
func (s *Server) schedule(ctx context.Context, sch Schedule) {
	after := s.After
	if after == nil {
		after = time.After
	}
	for {
		now := s.now()
		next := sch.Cron.Next(now.In(sch.Location))
		select {
		case <-ctx.Done():
			return
		case <-after(next.Sub(now)):
		}
		// Every replica's timer fires; one runs the prune.
		if claimer, ok := s.Service.Store.(interface {
			ClaimRun(ctx context.Context, site, job string, at time.Time) (bool, error)
		}); ok {
			mine, err := claimer.ClaimRun(ctx, sch.Site, "prune", next)
			if err != nil {
				// The bucket does not answer: neither would the prune.
				s.Logger.Error("scheduled prune: claiming the run failed; skipped until the next", "site", sch.Site, "err", err)
				continue
			}
			if !mine {
				s.Logger.Info("scheduled prune runs in another process", "site", sch.Site, "planned", next)
				continue
			}
		}
		s.Logger.Info("scheduled prune", "site", sch.Site)
		rep, err := s.Prune(releases.WithPrincipal(releases.WithDoor(ctx, releases.DoorSchedule), releases.Principal{Kind: releases.PrincipalSystem, ID: "schedule"}), releases.PruneRequest{Site: sch.Site, Actor: "schedule"})
		switch {
		case err != nil:
			s.Logger.Error("scheduled prune failed", "site", sch.Site, "err", err)
		case rep.Skipped != "":
			s.Logger.Info("scheduled prune skipped", "site", sch.Site, "reason", rep.Skipped)
		}
	}
}
