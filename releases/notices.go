package releases

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Where each release is shown (its chat notice) is shared like the lock:
// any replica that changes what is live updates the notices another
// replica posted, and a release's notice is posted once, by the replica
// whose claim on it won, however many take the hook or find the release
// in the bucket. One object per site, StatePrefix/notices.json: for each
// version, the manifest ETag of the release it is about (a re-published
// name is a new release with a notice of its own) and its links. A
// replica reads it once per refresh and writes it once per notice it
// posts or changes.

// StateNotices is the object of a site's release links.
const StateNotices = "notices.json"

// claimPrefix starts a link that claims the right to post it, before
// the post: "claimed <RFC 3339 time>". A claim older than claimTTL (its
// poster died before it recorded the post) may be claimed again.
const (
	claimPrefix = "claimed "
	claimTTL    = 10 * time.Minute
)

type noticesState struct {
	Releases map[string]noticeEntry `json:"releases"`
	Write    string                 `json:"write,omitempty"`
}

type noticeEntry struct {
	Manifest string            `json:"manifest,omitempty"`
	Links    map[string]string `json:"links"`
}

func (s *SharedStore) readNotices(ctx context.Context, site Site) (noticesState, string, error) {
	var st noticesState
	etag, err := s.readState(ctx, site, StateNotices, &st, func() string {
		for v, e := range st.Releases {
			if ValidateVersion(v) != nil || len(e.Manifest) > 256 {
				return fmt.Sprintf("names a release %q deploybot would not write", bounded(v))
			}
			for name, link := range e.Links {
				if len(name) > 64 || len(link) > 512 {
					return "holds a link longer than deploybot writes"
				}
			}
		}
		return ""
	})
	if st.Releases == nil {
		st.Releases = map[string]noticeEntry{}
	}
	return st, etag, err
}

// bounded cuts outside text to a length fit for a message.
func bounded(s string) string {
	if len(s) > 64 {
		return s[:64] + "..."
	}
	return s
}

// updateNotices applies change to the site's notices object by
// compare-and-swap; change returns false to write nothing.
func (s *SharedStore) updateNotices(ctx context.Context, site Site, change func(st *noticesState) bool) error {
	for try := 1; ; try++ {
		st, etag, err := s.readNotices(ctx, site)
		if err != nil {
			return err
		}
		if !change(&st) {
			return nil
		}
		s.trimNotices(ctx, site, &st)
		err = s.writeState(ctx, site, StateNotices, st, etag)
		if err == nil || !errors.Is(err, ErrStateChanged) || try == casTries {
			return err
		}
	}
}

// trimNotices drops the entries of releases retention deleted (their
// notices are final) while the object is larger than a state object may
// be.
func (s *SharedStore) trimNotices(ctx context.Context, site Site, st *noticesState) {
	if len(st.Releases) < 256 {
		return
	}
	for v := range st.Releases {
		if r, err := s.Store.Release(ctx, site.Name, v); err == nil && r.Pruned {
			delete(st.Releases, v)
		}
	}
}

// manifestOf is the manifest ETag of the release this store knows as
// version ("" when it does not know it).
func (s *SharedStore) manifestOf(ctx context.Context, site, version string) string {
	r, err := s.Store.Release(ctx, site, version)
	if err != nil {
		return ""
	}
	return r.ManifestETag
}

// sameRelease reports whether an entry recorded for manifest a is about
// the release of manifest b (either unknown: taken as the same).
func sameRelease(a, b string) bool { return a == "" || b == "" || a == b }

// SetReleaseLink implements Store: recorded locally, then shared.
func (s *SharedStore) SetReleaseLink(ctx context.Context, siteName, version, name, link string) error {
	if err := s.Store.SetReleaseLink(ctx, siteName, version, name, link); err != nil {
		return err
	}
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	manifest := s.manifestOf(ctx, siteName, version)
	return s.updateNotices(ctx, site, func(st *noticesState) bool {
		e, ok := st.Releases[version]
		if !ok || !sameRelease(e.Manifest, manifest) {
			e = noticeEntry{Manifest: manifest, Links: map[string]string{}}
		}
		if e.Links[name] == link {
			return false
		}
		if link == "" {
			delete(e.Links, name)
		} else {
			e.Links[name] = link
		}
		st.Releases[version] = e
		return true
	})
}

// ReleaseLinks implements Store: the shared links over the local ones,
// without the claims of posts still under way.
func (s *SharedStore) ReleaseLinks(ctx context.Context, siteName string) (map[string]map[string]string, error) {
	out, err := s.Store.ReleaseLinks(ctx, siteName)
	if err != nil {
		return nil, err
	}
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readNotices(ctx, site)
	if err != nil {
		return nil, err
	}
	for v, e := range st.Releases {
		if !sameRelease(e.Manifest, s.manifestOf(ctx, siteName, v)) {
			continue
		}
		for name, link := range e.Links {
			if strings.HasPrefix(link, claimPrefix) {
				continue
			}
			if out[v] == nil {
				out[v] = map[string]string{}
			}
			out[v][name] = link
		}
	}
	return out, nil
}

// ClaimReleaseLink claims the right to show version under name (to post
// its notice): true for exactly one of the processes asking, false when
// the release is shown already or another process is posting it.
func (s *SharedStore) ClaimReleaseLink(ctx context.Context, siteName, version, name string, now time.Time) (bool, error) {
	site, err := s.site(siteName)
	if err != nil {
		return false, err
	}
	manifest := s.manifestOf(ctx, siteName, version)
	mine := false
	err = s.updateNotices(ctx, site, func(st *noticesState) bool {
		mine = false
		e, ok := st.Releases[version]
		if !ok || !sameRelease(e.Manifest, manifest) {
			e = noticeEntry{Manifest: manifest, Links: map[string]string{}}
		}
		if held, ok := e.Links[name]; ok {
			at, err := time.Parse(time.RFC3339, strings.TrimPrefix(held, claimPrefix))
			if !strings.HasPrefix(held, claimPrefix) || err != nil || now.Sub(at) < claimTTL {
				return false
			}
		}
		e.Links[name] = claimPrefix + now.UTC().Format(time.RFC3339)
		st.Releases[version] = e
		mine = true
		return true
	})
	return mine && err == nil, err
}
