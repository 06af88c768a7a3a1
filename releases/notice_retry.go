package releases

import (
	"context"
	"sort"
	"strings"
	"time"
)

// A release's notice is claimed before it is posted (ClaimReleaseLink),
// so that one replica posts it. A post that fails, or a poster that dies
// between its claim and its post, would leave the release unannounced
// for good: nothing announces a release twice. So a failed post gives its
// claim up at once (an expired claim), and the holder of the site's lease
// looks, at each reconcile, for claims that expired without a post, and
// announces those releases again. Only releases published within
// NoticeRetryWindow are retried: a notice a day late announces nothing.

// NoticeRetryWindow bounds how long after its publication a release's
// notice is still tried again.
const NoticeRetryWindow = 24 * time.Hour

// AbandonReleaseClaim gives up this process's claim (ClaimNotice's) to
// show version under name, its post refused: the claim is dated claimTTL
// back, so the next look for unposted notices (UnpostedNotices) finds it
// at once. Nothing changes when the link is no longer that claim (the
// notice was posted, or someone claimed it since).
func (s *Service) AbandonReleaseClaim(ctx context.Context, siteName, version, name, claim string) error {
	sh, ok := s.Store.(*SharedStore)
	if !ok {
		return nil
	}
	site, err := sh.site(siteName)
	if err != nil {
		return err
	}
	r := sh.knownRelease(ctx, siteName, version)
	expired := claimPrefix + s.now().Add(-claimTTL).UTC().Format(time.RFC3339)
	return sh.updateNotices(ctx, site, version, func(st *noticesState) bool {
		e, ok := st.Releases[version]
		if !ok || e.Links[name] != claim || !sameRelease(e.Manifest, r) {
			return false
		}
		e.Links[name] = expired
		st.Releases[version] = e
		return true
	})
}

// UnpostedNotices are the releases of the site whose notice under name
// was claimed and never posted, the claim expired (see claimTTL), and
// that were published within NoticeRetryWindow, oldest first: what the
// holder of the site's lease announces again. A store of one process has
// no claims, and none.
func (s *Service) UnpostedNotices(ctx context.Context, siteName, name string) ([]Release, error) {
	sh, ok := s.Store.(*SharedStore)
	if !ok {
		return nil, nil
	}
	site, err := sh.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := sh.readNotices(ctx, site)
	if err != nil {
		return nil, err
	}
	// A notice this process posted, whose link it could not share, is
	// not posted again: its link is here.
	local, err := sh.Store.ReleaseLinks(ctx, siteName)
	if err != nil {
		return nil, err
	}
	now := s.now()
	var out []Release
	for v, e := range st.Releases {
		if l := local[v][name]; l != "" && !strings.HasPrefix(l, claimPrefix) {
			continue
		}
		link, ok := e.Links[name]
		if !ok || !strings.HasPrefix(link, claimPrefix) {
			continue
		}
		at, err := time.Parse(time.RFC3339, strings.TrimPrefix(link, claimPrefix))
		if err != nil || now.Sub(at) < claimTTL {
			continue // a claim still held (or none deploybot wrote)
		}
		r, err := s.Store.Release(ctx, siteName, v)
		if err != nil || !sameRelease(e.Manifest, r) || r.Pruned || now.Sub(r.PublishedAt) > NoticeRetryWindow {
			continue
		}
		out = append(out, r)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].PublishedAt.Before(out[j].PublishedAt) })
	return out, nil
}
