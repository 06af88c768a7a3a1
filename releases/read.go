package releases

import "context"

// What the doors read and remember beyond the operations, through the
// service rather than the store: the doors stay thin, and one place knows
// what each read means.

// Release returns one recorded release (ENOTFOUND when unknown).
func (s *Service) Release(ctx context.Context, siteName, version string) (Release, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return Release{}, err
	}
	return s.Store.Release(ctx, site.Name, version)
}

// Live returns the store's live pointer; ok is false when none is
// recorded.
func (s *Service) Live(ctx context.Context, siteName string) (Live, bool, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return Live{}, false, err
	}
	return s.Store.Live(ctx, site.Name)
}

// Deploys returns up to limit deploys of the site, newest first.
func (s *Service) Deploys(ctx context.Context, siteName string, limit int) ([]Deploy, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	return s.Store.Deploys(ctx, site.Name, limit)
}

// Deploy returns one deploy of the site (ENOTFOUND when unknown); an
// approved promote's id is its request's.
func (s *Service) Deploy(ctx context.Context, siteName, id string) (Deploy, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return Deploy{}, err
	}
	return s.Store.Deploy(ctx, site.Name, id)
}

// GoesBack reports whether promoting version would go backwards: it was
// published before the live release (named in live). Unknown and pruned
// releases do not go back (promoting them is refused, saying why), nor
// does anything when nothing is live.
func (s *Service) GoesBack(ctx context.Context, siteName, version string) (live string, back bool) {
	l, ok, err := s.Live(ctx, siteName)
	if err != nil || !ok || l.Version == "" || l.Version == version {
		return l.Version, false
	}
	target, err := s.Store.Release(ctx, siteName, version)
	if err != nil {
		return l.Version, false
	}
	cur, err := s.Store.Release(ctx, siteName, l.Version)
	if err != nil {
		return l.Version, false
	}
	return l.Version, GoesBack(target, cur)
}

// GoesBack is the rule itself, for callers that hold both releases
// (the notices, refreshed many at once): target, not pruned and not the
// live release, was published before it (or at the same time with a
// name that sorts first: the order versions lists them in).
func GoesBack(target, live Release) bool {
	if target.Pruned || target.Version == live.Version {
		return false
	}
	if !target.PublishedAt.Equal(live.PublishedAt) {
		return target.PublishedAt.Before(live.PublishedAt)
	}
	return target.Version < live.Version
}

// SetDeployLink remembers where a deploy is shown (a chat thread) under a
// name such as "slack"; status shows it.
func (s *Service) SetDeployLink(ctx context.Context, siteName, deployID, name, link string) error {
	return s.Store.SetDeployLink(ctx, siteName, deployID, name, link)
}

// DeployLinks returns where a deploy (or the approval request of that id)
// is shown, by name.
func (s *Service) DeployLinks(ctx context.Context, siteName, deployID string) (map[string]string, error) {
	return s.Store.DeployLinks(ctx, siteName, deployID)
}

// SetReleaseLink remembers where a release is shown (its chat notice);
// ReleaseLinks returns them for the site: version -> name -> link.
func (s *Service) SetReleaseLink(ctx context.Context, siteName, version, name, link string) error {
	return s.Store.SetReleaseLink(ctx, siteName, version, name, link)
}

// ClaimReleaseLink claims the right to show a release under name (to
// post its chat notice): of every process and replica sharing the site,
// one is told true. A store of one process claims everything.
func (s *Service) ClaimReleaseLink(ctx context.Context, siteName, version, name string) (bool, error) {
	claim, err := s.ClaimNotice(ctx, siteName, version, name)
	return claim != "", err
}

// ClaimNotice is ClaimReleaseLink that returns this process's claim ("":
// not this process's), which AbandonReleaseClaim gives up after a post
// that failed.
func (s *Service) ClaimNotice(ctx context.Context, siteName, version, name string) (string, error) {
	if sh, ok := s.Store.(*SharedStore); ok {
		return sh.claimReleaseLink(ctx, siteName, version, name, s.now())
	}
	return "unshared", nil
}

// ReleaseLinks: see SetReleaseLink.
func (s *Service) ReleaseLinks(ctx context.Context, siteName string) (map[string]map[string]string, error) {
	return s.Store.ReleaseLinks(ctx, siteName)
}
