package releases

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sort"
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

// readNotices reads the site's notices object. One that does not decode
// as deploybot writes it, names a release or holds a link deploybot would
// not write, or is larger than a state object may be, is read as empty,
// its ETag kept (the next write replaces it, by compare-and-swap), rather
// than refused: it guards nothing a refusal would protect (each store
// keeps the links it set), and refused it would stop every notice's
// claim and refresh on every replica until someone removed it by hand.
func (s *SharedStore) readNotices(ctx context.Context, site Site) (noticesState, string, error) {
	empty := noticesState{Releases: map[string]noticeEntry{}}
	body, etag, err := s.State.GetState(ctx, site, StateNotices)
	switch {
	case errors.Is(err, ErrNoState):
		return empty, "", nil
	case err != nil && ErrorCode(err) == EINVALID && etag != "":
		return empty, etag, nil // too large to read
	case err != nil:
		return empty, "", err
	}
	var st noticesState
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&st) != nil || !deploybotNotices(st) {
		return empty, etag, nil
	}
	if st.Releases == nil {
		st.Releases = map[string]noticeEntry{}
	}
	// An entry written without links ({} or "links": null) reads as one
	// with none, so that a claim or a link can be put in it.
	for v, e := range st.Releases {
		if e.Links == nil {
			e.Links = map[string]string{}
			st.Releases[v] = e
		}
	}
	return st, etag, nil
}

// deploybotNotices reports whether st is what deploybot writes.
func deploybotNotices(st noticesState) bool {
	for v, e := range st.Releases {
		if ValidateVersion(v) != nil || len(e.Manifest) > 256 {
			return false
		}
		for name, link := range e.Links {
			if len(name) > 64 || len(link) > 512 {
				return false
			}
		}
	}
	return true
}

// updateNotices applies change to the site's notices object by
// compare-and-swap; change returns false to write nothing. version is the
// release change is about, which trimming keeps.
func (s *SharedStore) updateNotices(ctx context.Context, site Site, version string, change func(st *noticesState) bool) error {
	for try := 1; ; try++ {
		st, etag, err := s.readNotices(ctx, site)
		if err != nil {
			return err
		}
		if !change(&st) {
			return nil
		}
		s.trimNotices(ctx, site, &st, version)
		err = s.writeState(ctx, site, StateNotices, st, etag)
		if err == nil || !errors.Is(err, ErrStateChanged) || try == casTries {
			return err
		}
	}
}

// noticesBudget is the size notices.json is trimmed to: half of what a
// read accepts (MaxStateBytes), so that what one write adds never takes
// it past, and an object too large to read never blocks every notice.
const noticesBudget = MaxStateBytes / 2

// trimNotices drops the entries of releases retention deleted (their
// notices are final) once there are many, then, while the object is
// larger than noticesBudget, the entries of the oldest releases (those
// this store does not know first) but keep's, the one being changed.
func (s *SharedStore) trimNotices(ctx context.Context, site Site, st *noticesState, keep string) {
	if len(st.Releases) >= 256 {
		for v := range st.Releases {
			if r, err := s.Store.Release(ctx, site.Name, v); err == nil && r.Pruned {
				delete(st.Releases, v)
			}
		}
	}
	size := func(v string) int {
		b, _ := json.Marshal(st.Releases[v])
		return len(v) + len(b) + 4 // the name's quotes, its colon and a comma
	}
	total := 0
	for v := range st.Releases {
		total += size(v)
	}
	if total <= noticesBudget {
		return
	}
	oldest := make([]string, 0, len(st.Releases))
	published := map[string]time.Time{}
	for v := range st.Releases {
		oldest = append(oldest, v)
		if r, err := s.Store.Release(ctx, site.Name, v); err == nil {
			published[v] = r.PublishedAt
		}
	}
	sort.Slice(oldest, func(i, j int) bool {
		a, b := published[oldest[i]], published[oldest[j]]
		if !a.Equal(b) {
			return a.Before(b)
		}
		return oldest[i] < oldest[j]
	})
	for _, v := range oldest {
		if total <= noticesBudget {
			return
		}
		if v == keep {
			continue
		}
		total -= size(v)
		delete(st.Releases, v)
	}
}

// knownRelease is the release this store knows as version (zero, with
// no ManifestETag, when it does not know it).
func (s *SharedStore) knownRelease(ctx context.Context, site, version string) Release {
	r, err := s.Store.Release(ctx, site, version)
	if err != nil {
		return Release{Version: version}
	}
	return r
}

// sameRelease reports whether an entry recorded for manifest etag is
// about release r, as a deploy's record is (Release.is): either manifest
// unknown is taken as the same, unless r reuses a name an earlier release
// had (its notice is the earlier one's).
func sameRelease(etag string, r Release) bool {
	if etag == "" || r.ManifestETag == "" {
		return r.ManifestETag == "" || !r.Reused
	}
	return etag == r.ManifestETag
}

// SetReleaseLink implements Store: recorded locally, then shared.
func (s *SharedStore) SetReleaseLink(ctx context.Context, siteName, version, name, link string) error {
	if err := s.Store.SetReleaseLink(ctx, siteName, version, name, link); err != nil {
		return err
	}
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	r := s.knownRelease(ctx, siteName, version)
	return s.updateNotices(ctx, site, version, func(st *noticesState) bool {
		e, ok := st.Releases[version]
		if !ok || !sameRelease(e.Manifest, r) {
			e = noticeEntry{Manifest: r.ManifestETag, Links: map[string]string{}}
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
		if !sameRelease(e.Manifest, s.knownRelease(ctx, siteName, v)) {
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
	claim, err := s.claimReleaseLink(ctx, siteName, version, name, now)
	return claim != "", err
}

// claimReleaseLink is ClaimReleaseLink that returns the claim it wrote
// ("" when it is not this process's), so that only that claim is given
// up after a failed post (AbandonReleaseClaim).
func (s *SharedStore) claimReleaseLink(ctx context.Context, siteName, version, name string, now time.Time) (string, error) {
	site, err := s.site(siteName)
	if err != nil {
		return "", err
	}
	r := s.knownRelease(ctx, siteName, version)
	mine := false
	claim := claimPrefix + now.UTC().Format(time.RFC3339)
	err = s.updateNotices(ctx, site, version, func(st *noticesState) bool {
		mine = false
		e, ok := st.Releases[version]
		if !ok || !sameRelease(e.Manifest, r) {
			e = noticeEntry{Manifest: r.ManifestETag, Links: map[string]string{}}
		}
		if held, ok := e.Links[name]; ok {
			// A claim holds for claimTTL after its time; one dated
			// further ahead than that was not made by a clock that
			// agrees with this one (or by deploybot), and holds nothing.
			at, err := time.Parse(time.RFC3339, strings.TrimPrefix(held, claimPrefix))
			if age := now.Sub(at); !strings.HasPrefix(held, claimPrefix) || err != nil || age < claimTTL && age > -claimTTL {
				return false
			}
		}
		e.Links[name] = claim
		st.Releases[version] = e
		mine = true
		return true
	})
	if !mine || err != nil {
		return "", err
	}
	return claim, nil
}
