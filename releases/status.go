package releases

import (
	"context"
	"time"
)

// Status is what a site serves and what is happening to it.
type Status struct {
	Site      string     `json:"site"`
	Live      *string    `json:"live"`
	LiveSince *time.Time `json:"live_since"`
	// OriginPath is what the CDN says now: the distribution's origin path,
	// or with strategy kvs the site's key.
	OriginPath string  `json:"origin_path"`
	Strategy   string  `json:"strategy"`
	Deploy     *Deploy `json:"deploy"`
	Lock       *Lock   `json:"lock"`
	// Recorded is the store's live pointer, which may disagree with the
	// CDN after a hand-made change; Drift says so.
	Recorded string `json:"recorded_live"`
	Drift    bool   `json:"drift"`
	// RunnerGone says the process running Deploy is gone: it will not
	// finish by itself (deploybot recover finishes it).
	RunnerGone bool `json:"runner_gone"`
	// LastDeploy is the newest deploy, running or not.
	LastDeploy *Deploy `json:"last_deploy"`
	// Links are where the running deploy is shown (its Slack thread).
	Links map[string]string `json:"links,omitempty"`
	// Freeze holds promotes now (nil: none); Window says whether the
	// site's deploy windows allow them, and until or from when (nil: the
	// site has no windows).
	Freeze *Freeze      `json:"freeze"`
	Window *WindowState `json:"window"`
}

// Status reads the live release from the CDN and the deploy and lock from
// the store.
func (s *Service) Status(ctx context.Context, siteName string) (*Status, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(ctx, site, "status"); err != nil {
		return nil, err
	}
	cdn, cur, err := s.current(ctx, site)
	if err != nil {
		return nil, err
	}
	st := &Status{Site: site.Name, OriginPath: cur.Path, Strategy: cdn.Strategy()}
	if cur.Version != "" {
		v := cur.Version
		st.Live = &v
	}
	live, ok, err := s.Store.Live(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	if ok {
		st.Recorded = live.Version
		if live.Version == cur.Version {
			since := live.Since
			st.LiveSince = &since
		}
	}
	if st.Lock, err = s.Store.Lock(ctx, site.Name); err != nil {
		return nil, err
	}
	deploys, err := s.lastDeploys(ctx, site, st.Lock)
	if err != nil {
		return nil, err
	}
	if len(deploys) > 0 {
		d := deploys[0]
		st.LastDeploy = &d
		_, shared := s.Store.(*SharedStore)
		// Under shared state, a deploy runs while it holds the lock; one
		// recorded here as running that no longer does was ended by
		// another process, whose record has not reached the history yet.
		if !d.Phase.Final() && (!shared || st.Lock != nil && st.Lock.DeployID == d.ID) {
			st.Deploy = &d
			if st.Links, err = s.Store.DeployLinks(ctx, site.Name, d.ID); err != nil {
				return nil, err
			}
		}
	}
	if st.Lock != nil {
		st.RunnerGone = s.RunnerGone(*st.Lock)
	}
	now := s.now()
	if st.Freeze, err = s.FreezeAt(ctx, site, now); err != nil {
		return nil, err
	}
	st.Window = site.WindowAt(now)
	// The store and the CDN disagree while a deploy flips (the store
	// moves when the deploy ends): that is the deploy in progress, not a
	// change made outside deploybot.
	st.Drift = st.Recorded != cur.Version && (st.Deploy == nil || cur.Version != st.Deploy.To && cur.Version != st.Deploy.From)
	return st, nil
}

// lastDeploys is the site's newest deploy as every process sees it:
// under shared state, the history is caught up first (deploys other
// processes ran and ended), and the deploy holding the lock, when
// another process runs it, is read from the lock's record.
func (s *Service) lastDeploys(ctx context.Context, site Site, lock *Lock) ([]Deploy, error) {
	if sh, shared := s.Store.(*SharedStore); shared {
		s.catchUp(ctx, site.Name)
		if lock != nil && lock.DeployID != "" {
			if err := sh.ImportRunning(ctx, site.Name); err != nil {
				s.logger().WarnContext(ctx, "reading the running deploy's record from the lock", "site", site.Name, "err", err)
			}
		}
	}
	return s.Store.Deploys(ctx, site.Name, 1)
}
