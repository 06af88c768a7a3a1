package releases

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"golang.org/x/sync/errgroup"
)

// Record records a published release from its manifest in the bucket. It is
// idempotent: created is false when the release was already recorded.
func (s *Service) Record(ctx context.Context, siteName, version string) (rel Release, created bool, err error) {
	rel, created, _, err = s.record(ctx, siteName, version)
	return rel, created, err
}

// RecordNotice records a release CI announced (the hook), with the commit
// and message the notice carries. The manifest is what publish wrote and
// stays the truth: the notice fills a commit or message the manifest
// lacks (a publish run without --commit, notified by a CI step that knows
// it), and a notice whose commit contradicts the manifest's is refused
// (ECONFLICT), since one of the two names the wrong build.
func (s *Service) RecordNotice(ctx context.Context, siteName, version, commit, message string) (rel Release, created bool, err error) {
	rel, created, _, err = s.recordNoted(ctx, siteName, version, commit, message)
	return rel, created, err
}

// record is Record that also hands back the manifest it read, so a
// promote verifies against it without a second GET.
func (s *Service) record(ctx context.Context, siteName, version string) (Release, bool, *Manifest, error) {
	return s.recordNoted(ctx, siteName, version, "", "")
}

// recordNoted is record with the commit and message of a CI notice, if
// any (see RecordNotice).
func (s *Service) recordNoted(ctx context.Context, siteName, version, commit, message string) (Release, bool, *Manifest, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return Release{}, false, nil, err
	}
	if err := ValidateVersion(version); err != nil {
		return Release{}, false, nil, err
	}
	rel, m, err := s.readRelease(ctx, site, version, commit)
	if err != nil {
		return Release{}, false, nil, err
	}
	if rel.Commit == "" {
		rel.Commit = commit
	}
	if rel.Message == "" {
		rel.Message = message
	}
	created, err := s.Store.PutRelease(ctx, rel)
	if err != nil {
		return Release{}, false, nil, err
	}
	if !created && (commit != "" || message != "") {
		// Recorded before (found in the bucket); the notice may still
		// fill in what the manifest lacks.
		if rel, err = s.Store.AnnotateRelease(ctx, site.Name, version, commit, message); err != nil {
			return Release{}, false, nil, err
		}
	}
	if created {
		s.logger().InfoContext(ctx, "release recorded", "site", site.Name, "version", version,
			"files", rel.Files, "bytes", rel.Bytes, "commit", rel.Commit)
	}
	return rel, created, m, nil
}

// Sync records every release whose manifest is in the bucket but not in
// the store. Manifests are read only for unknown versions.
func (s *Service) Sync(ctx context.Context, siteName string) (added []Release, err error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	versions, err := s.Bucket.ListVersions(ctx, site)
	if err != nil {
		return nil, err
	}
	known, err := s.Store.Releases(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	// A pruned record whose manifest is back was published again under
	// the same name: it is read as a new release (see Store.PutRelease).
	have := make(map[string]bool, len(known))
	for _, r := range known {
		have[r.Version] = !r.Pruned
	}
	var todo []string
	for _, v := range versions {
		if !have[v] && ValidateVersion(v) == nil {
			todo = append(todo, v)
		}
	}
	// Manifests are read syncReaders at a time and, whatever that count,
	// within the manifest budget by their size (see ManifestBudget): the
	// first sync after many publishes (or a rebuild) reads each new one,
	// about 1 ms apiece on the stand-in and 10-30 ms on S3 when small,
	// under a second for one of 46 MB, which then takes the budget alone.
	// Only the counts are kept (Files, Bytes), not the files.
	// What they say is recorded in one store transaction, whose fsync
	// would otherwise be paid once per release.
	found := make([]*Release, len(todo))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(syncReaders)
	for i, v := range todo {
		g.Go(func() error {
			rel, ok, err := s.syncOne(gctx, site, v)
			if err == nil && ok {
				found[i] = &rel
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var rels []Release
	for _, r := range found {
		if r != nil {
			rels = append(rels, *r)
		}
	}
	created, err := s.Store.PutReleases(ctx, rels)
	if err != nil {
		return nil, err
	}
	for i, r := range rels {
		if created[i] {
			added = append(added, r)
			s.logger().InfoContext(ctx, "release recorded", "site", site.Name, "version", r.Version,
				"files", r.Files, "bytes", r.Bytes, "commit", r.Commit)
		}
	}
	return added, s.Store.SetSyncedAt(ctx, site.Name, s.now())
}

// SyncIfStale syncs the site with its bucket unless a sync ran less than
// maxAge ago (remembered in the store): the command line without serve
// lists the bucket at most that often, as serve's reconcile does.
func (s *Service) SyncIfStale(ctx context.Context, siteName string, maxAge time.Duration) (synced bool, err error) {
	site, err := s.Site(siteName)
	if err != nil {
		return false, err
	}
	last, err := s.Store.SyncedAt(ctx, site.Name)
	if err != nil {
		return false, err
	}
	if !last.IsZero() && s.now().Sub(last) < maxAge {
		return false, nil
	}
	_, err = s.Sync(ctx, site.Name)
	return err == nil, err
}

// syncReaders is how many manifests Sync reads at once at most: small
// ones overlap their round trips; large ones are bounded by the budget.
const syncReaders = 16

// syncOne reads the record of version v of site from its manifest, unless
// the manifest was refused before and has not changed; a manifest that is
// gone or not valid is skipped (logged, ok false), so one bad manifest
// never hides the other releases.
func (s *Service) syncOne(ctx context.Context, site Site, v string) (rel Release, ok bool, err error) {
	refusedKey := site.Name + "/" + v
	// One HEAD weighs the manifest and tells whether one refused before
	// has changed (rather than the whole object on every reconcile).
	st, err := s.manifests().stat(ctx, site, v)
	if errors.Is(err, ErrNoManifest) {
		return Release{}, false, nil // deleted between list and read
	}
	if err != nil {
		return Release{}, false, err
	}
	if etag, ok := s.refused.Load(refusedKey); ok && st.ETag != "" && st.ETag == etag {
		return Release{}, false, nil
	}
	rel, err = s.countRelease(ctx, site, v, &st)
	if errors.Is(err, ErrNoManifest) {
		return Release{}, false, nil // deleted between list and read
	}
	if ErrorCode(err) == EINVALID {
		s.logger().WarnContext(ctx, "manifest is not valid; release not recorded", "site", site.Name, "version", v, "err", err)
		var rm *RefusedManifest
		if errors.As(err, &rm) && rm.ETag != "" {
			s.refused.Store(refusedKey, rm.ETag)
		}
		return Release{}, false, nil
	}
	return rel, err == nil, err
}

// countRelease makes version's release record from its manifest as it
// streams by, counting the files rather than keeping them: what Sync
// needs, at some 40 bytes an entry instead of the whole file list.
func (s *Service) countRelease(ctx context.Context, site Site, version string, st *ManifestStat) (Release, error) {
	files, bytes := 0, int64(0)
	m, err := s.manifests().read(ctx, site, version, st, func(f ManifestFile, carried bool) error {
		if !carried {
			files++
			bytes += f.Size
		}
		return nil
	})
	if err != nil {
		return Release{}, err
	}
	if m.Version != version {
		return Release{}, Errorf(EINVALID, "manifest %s names version %q", site.ManifestKey(version), m.Version)
	}
	rel := m.Release(site.Name)
	rel.Files, rel.Bytes = files, bytes
	rel.RecordedAt = s.now()
	return rel, nil
}

// readRelease reads version's manifest and makes its release record; a
// commit from a CI notice that contradicts the manifest is refused. The
// manifest is handed back whole (a promote verifies and carries against
// it), read within the manifest budget.
func (s *Service) readRelease(ctx context.Context, site Site, version, commit string) (Release, *Manifest, error) {
	m, err := s.manifests().readWhole(ctx, site, version)
	if err != nil {
		return Release{}, nil, err
	}
	if m.Version != version {
		return Release{}, nil, Errorf(EINVALID, "manifest %s names version %q", site.ManifestKey(version), m.Version)
	}
	if commit != "" && m.Commit != "" && commit != m.Commit {
		return Release{}, nil, Errorf(ECONFLICT, "the notice says %s is commit %s, its manifest says %s; the manifest, written by publish, is kept", version, commit, m.Commit)
	}
	rel := m.Release(site.Name)
	rel.RecordedAt = s.now()
	return rel, m, nil
}

// VersionInfo is a release as listed to people.
type VersionInfo struct {
	Release
	Live bool `json:"live"`
	// Pin keeps the release from retention, with who pinned it and why;
	// nil when it is not pinned.
	Pin *Pin `json:"pin"`
}

// Versions returns the site's releases, newest first, from the store:
// what reconcile, the CI hook and Sync recorded (see SyncIfStale). Live
// is the store's live pointer. It costs store reads only, whatever the
// number of releases; the bucket is listed by Sync.
func (s *Service) Versions(ctx context.Context, siteName string) ([]VersionInfo, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(ctx, site, "versions"); err != nil {
		return nil, err
	}
	siteName = site.Name
	if _, shared := s.Store.(*SharedStore); shared {
		// A release another replica took the hook for is listed here
		// too, not only after this one's next reconcile.
		if _, err := s.Sync(ctx, siteName); err != nil && ctx.Err() == nil {
			s.logger().WarnContext(ctx, "listing the bucket's releases; answering from this store", "site", siteName, "err", err)
		}
	}
	rels, err := s.Store.Releases(ctx, siteName)
	if err != nil {
		return nil, err
	}
	live, err := s.liveForVersions(ctx, site)
	if err != nil {
		return nil, err
	}
	pins, err := s.Store.Pins(ctx, siteName)
	if err != nil {
		return nil, err
	}
	out := make([]VersionInfo, len(rels))
	for i, r := range rels {
		out[i] = VersionInfo{Release: r, Live: r.Version == live}
		if p, ok := pins[r.Version]; ok {
			out[i].Pin = &p
		}
	}
	return out, nil
}

// liveForVersions is the release Versions marks live: the store's live
// pointer, which moves when a deploy ends; while a deploy holds the site
// (running, or interrupted and waiting for recovery), what the CDN
// serves, as Status says: the pointer is behind a deploy that flipped.
// That costs one CDN read, and only then.
func (s *Service) liveForVersions(ctx context.Context, site Site) (string, error) {
	live, _, err := s.Store.Live(ctx, site.Name)
	if err != nil {
		return "", err
	}
	l, err := s.Store.Lock(ctx, site.Name)
	if err != nil {
		return "", err
	}
	if l == nil || l.DeployID == "" || strings.HasPrefix(l.DeployID, prunePrefix) {
		return live.Version, nil
	}
	_, cur, err := s.current(ctx, site)
	if err != nil {
		s.logger().WarnContext(ctx, "reading what is live during a deploy; answering the recorded live release", "site", site.Name, "err", err)
		return live.Version, nil
	}
	return cur.Version, nil
}

// SortReleases orders releases newest first: by publish time, then by
// version name so that equal times still sort stably.
func SortReleases(rs []Release) {
	sort.SliceStable(rs, func(i, j int) bool {
		if !rs[i].PublishedAt.Equal(rs[j].PublishedAt) {
			return rs[i].PublishedAt.After(rs[j].PublishedAt)
		}
		return rs[i].Version > rs[j].Version
	})
}
