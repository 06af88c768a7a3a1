package releases

import (
	"context"
	"errors"
	"fmt"
)

// A rollback goes only back: to a release that was live before and was
// published before the live one. Rollbacks skip the rules that hold
// promotes (approval, freezes, deploy windows) because they are the way
// out of an incident; a "rollback" to anything else would ship, under that
// exemption, a build nobody approved. Going anywhere else is a promote and
// meets every promote rule.

// RollbackRequest asks to go back to the previous good release, or to
// Version when set.
type RollbackRequest struct {
	Site    string
	Version string
	Actor   string
	Reason  string
	// FromDeploy, when set, is the deploy whose result the caller saw
	// live when it chose to go back (a Rollback button posted under it):
	// the rollback is refused if any deploy has moved the site since, so
	// a stale button never acts on a site that has moved on, even to a
	// release of the same name published again.
	FromDeploy string
}

// Rollback makes the previous good release live again. Without a version
// it walks finished deploys back from the newest: versions that were rolled
// back away from are skipped, so repeated rollbacks keep going back rather
// than toggling between two releases. Failed deploys are never targets.
// With a version, that release must be one the site served before, older
// than the live one (see CanRollBack).
func (s *Service) Rollback(ctx context.Context, req RollbackRequest, progress Progress) (out *Outcome, err error) {
	target := req.Version
	defer func() {
		s.auditDeploy(ctx, req.Site, req.Actor, KindRollback, joinDetail(target, req.Reason), out, err)
	}()
	site, err := s.Site(req.Site)
	if err != nil {
		return nil, err
	}
	p, err := s.authorize(ctx, site, "rollback", req.Actor)
	if p.Kind != "" {
		req.Actor = p.String()
	}
	if err != nil {
		return nil, err
	}
	if err := checkReason("the reason", req.Reason); err != nil {
		return nil, err
	}
	if target != "" {
		// Recorded first, from its manifest, so a name published again
		// since it was live is judged as the new release it is.
		if _, _, err := s.Record(ctx, site.Name, target); err != nil {
			if errors.Is(err, ErrNoManifest) {
				return nil, Errorf(ENOTFOUND, "site %s has no release %s: no manifest in the bucket (never published, upload unfinished, or pruned)", site.Name, target)
			}
			return nil, err
		}
	}
	// The walk back goes through every process's deploys, not only the
	// ones this store ran.
	s.catchUp(ctx, site.Name)
	h, err := s.rollbackHistory(ctx, site)
	if err != nil {
		return nil, err
	}
	if req.FromDeploy != "" {
		if err := h.stillLiveFrom(req.FromDeploy); err != nil {
			return nil, err
		}
	}
	if target == "" {
		if target, err = s.rollbackTarget(ctx, site, h); err != nil {
			return nil, err
		}
	} else if err := h.check(target); err != nil {
		cdn, cerr := s.cdn(site)
		if cerr != nil {
			return nil, err
		}
		return nil, s.withLive(ctx, site, cdn, err)
	}
	return s.deploy(ctx, PromoteRequest{Site: site.Name, Version: target, Actor: req.Actor, Reason: req.Reason, Kind: KindRollback}, progress)
}

// RollbackTarget returns the version Rollback goes to without a version.
func (s *Service) RollbackTarget(ctx context.Context, siteName string) (string, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return "", err
	}
	h, err := s.rollbackHistory(ctx, site)
	if err != nil {
		return "", err
	}
	return s.rollbackTarget(ctx, site, h)
}

// CanRollBack says whether version is a release a rollback may go to now
// (nil), or why not: a release the site never served, or one newer than
// the live one, goes out by promote.
func (s *Service) CanRollBack(ctx context.Context, siteName, version string) error {
	site, err := s.Site(siteName)
	if err != nil {
		return err
	}
	h, err := s.rollbackHistory(ctx, site)
	if err != nil {
		return err
	}
	return h.check(version)
}

// rollbackHistory is what decides where a rollback may go: what the CDN
// serves now, the deploys, and the releases as recorded.
type rollbackHistory struct {
	site    Site
	live    string // what the CDN serves, "" when not a release of the site
	deploys []Deploy
	rels    map[string]Release // not pruned
}

func (s *Service) rollbackHistory(ctx context.Context, site Site) (*rollbackHistory, error) {
	_, cur, err := s.current(ctx, site)
	if err != nil {
		return nil, err
	}
	deploys, err := s.Store.Deploys(ctx, site.Name, 0)
	if err != nil {
		return nil, err
	}
	all, err := s.Store.Releases(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	h := &rollbackHistory{site: site, live: cur.Version, deploys: deploys, rels: make(map[string]Release, len(all))}
	for _, r := range all {
		if !r.Pruned {
			h.rels[r.Version] = r
		}
	}
	return h, nil
}

// stillLiveFrom refuses unless deploy id is the last that moved the site
// and what it made live still is.
func (h *rollbackHistory) stillLiveFrom(id string) error {
	for _, d := range h.deploys {
		if d.Phase != PhaseDone && d.FlippedAt.IsZero() {
			continue // moved nothing
		}
		if d.ID == id && d.To == h.live {
			return nil
		}
		what := fmt.Sprintf("deploy %s has made %s live since", d.ID, d.To)
		if d.ID == id {
			what = fmt.Sprintf("%s is live now, not %s as it was then", orNone(h.live), d.To)
		}
		return Errorf(ECONFLICT, "this rollback was asked under deploy %s of %s, and %s; nothing changed. Ask again from what is live now",
			id, h.site.Name, what)
	}
	return Errorf(ECONFLICT, "this rollback was asked under deploy %s of %s, which deploybot does not know; nothing changed. Ask again from what is live now", id, h.site.Name)
}

// wasLive reports whether the site served r before: a finished deploy
// moved to it, or a deploy moved away from it (it was live then).
func (h *rollbackHistory) wasLive(r Release) bool {
	for _, d := range h.deploys {
		if d.Phase == PhaseDone && r.Deployed(d) || r.Left(d) {
			return true
		}
	}
	return false
}

// older reports whether r was published before the live release (true
// when what is live is not a recorded release: anything known is back
// from a hand-made origin).
func (h *rollbackHistory) older(r Release) bool {
	live, ok := h.rels[h.live]
	return !ok || GoesBack(r, live)
}

// check refuses a rollback to version unless the site served it before
// and it is older than the live release.
func (h *rollbackHistory) check(version string) error {
	site := h.site.Name
	if version == h.live {
		return nil // already live: the deploy says so and does nothing
	}
	r, ok := h.rels[version]
	var why string
	switch {
	case !ok || !h.wasLive(r):
		why = "it was never live"
	case !h.older(r):
		why = "it is newer than the live " + h.live
	default:
		return nil
	}
	// ECONFLICT: the request is well formed; the site's history says no.
	return Errorf(ECONFLICT, "cannot roll %s back to %s: %s. A rollback goes only to a release that was live before and is older than the live one; to ship %s, promote it (every promote rule applies: approval, freezes, deploy windows)",
		site, version, why, version)
}

// rollbackTarget walks finished deploys back from the newest and returns
// the first release that was live, is older than the live one, was not
// rolled back away from, and still has its manifest.
func (s *Service) rollbackTarget(ctx context.Context, site Site, h *rollbackHistory) (string, error) {
	abandoned := map[string]bool{}
	for _, d := range h.deploys {
		if d.Phase != PhaseDone {
			continue
		}
		if d.Kind == KindRollback {
			abandoned[d.From] = true
		}
		for _, v := range []string{d.To, d.From} {
			r, ok := h.rels[v]
			if !ok || v == h.live || abandoned[v] || !(r.Deployed(d) || r.Left(d)) || !h.older(r) {
				continue
			}
			if _, err := s.Bucket.ManifestETag(ctx, site, v); errors.Is(err, ErrNoManifest) {
				continue // pruned since
			} else if err != nil {
				return "", err
			}
			return v, nil
		}
	}
	return "", Errorf(ENOTFOUND, "site %s has no earlier release to roll back to (live: %s)", site.Name, orNone(h.live))
}
