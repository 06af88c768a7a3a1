package releases

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/url"
	"strconv"
	"strings"
	"time"
)

// PreviewParam is the query parameter (and cookie) that carries a preview
// token to the edge.
const PreviewParam = "deploybot-preview"

// Preview link lifetimes: an hour by default, a day at most, so a leaked
// link stops working soon.
const (
	DefaultPreviewTTL = time.Hour
	MaxPreviewTTL     = 24 * time.Hour
)

// PreviewKeyer is a CDN strategy that can serve previews: its edge code
// checks tokens signed with this key.
type PreviewKeyer interface {
	PreviewKey(ctx context.Context, site Site) ([]byte, error)
}

// Preview is a link that shows one release to whoever opens it, without
// changing what anyone else sees.
type Preview struct {
	Site    string    `json:"site"`
	Version string    `json:"version"`
	URL     string    `json:"url"`
	Expires time.Time `json:"expires"`
}

// PreviewToken signs version of site until expires (Unix seconds):
// "<version>.<expires>.<hex HMAC-SHA256(key, site:version:expires)>", what
// the site's viewer-request function checks.
func PreviewToken(key []byte, site, version string, expires int64) string {
	e := strconv.FormatInt(expires, 10)
	m := hmac.New(sha256.New, key)
	m.Write([]byte(site + ":" + version + ":" + e))
	return version + "." + e + "." + hex.EncodeToString(m.Sum(nil))
}

// Preview makes a preview link for a published, unpruned release, for
// actor; the audit log records who was given a look at what.
func (s *Service) Preview(ctx context.Context, siteName, version, actor string, ttl time.Duration) (_ *Preview, err error) {
	defer func() { s.audit(ctx, siteName, actor, "preview", version, err) }()
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if actor, err = s.authorizeActor(ctx, site, "preview", actor); err != nil {
		return nil, err
	}
	if err := ValidateVersion(version); err != nil {
		return nil, err
	}
	if ttl <= 0 {
		ttl = DefaultPreviewTTL
	}
	if ttl > MaxPreviewTTL {
		return nil, Errorf(EINVALID, "a preview link lives at most %s", MaxPreviewTTL)
	}
	cdn, err := s.cdn(site)
	if err != nil {
		return nil, err
	}
	pk, ok := cdn.(PreviewKeyer)
	if !ok {
		return nil, Errorf(EINVALID, "previews need strategy kvs (site %s uses %s): the edge must be able to pick a release per request", site.Name, cdn.Strategy())
	}
	if site.URL == "" {
		return nil, Errorf(EINVALID, "site %s has no url in the configuration, so there is no address to link to", site.Name)
	}
	if r, err := s.Store.Release(ctx, site.Name, version); err == nil && r.Pruned {
		return nil, Errorf(ENOTFOUND, "site %s: release %s was pruned; there is nothing to preview", site.Name, version)
	}
	if _, _, _, err := s.record(ctx, site.Name, version); err != nil {
		if ErrorCode(err) == ENOTFOUND {
			return nil, Errorf(ENOTFOUND, "site %s has no release %s: no manifest in the bucket (never published, upload unfinished, or pruned)", site.Name, version)
		}
		return nil, err
	}
	key, err := pk.PreviewKey(ctx, site)
	if err != nil {
		return nil, err
	}
	expires := s.now().Add(ttl).Truncate(time.Second)
	u := strings.TrimRight(site.URL, "/") + "/?" + url.Values{PreviewParam: {PreviewToken(key, site.Name, version, expires.Unix())}}.Encode()
	s.logger().InfoContext(ctx, "preview link made", "site", site.Name, "version", version, "expires", expires)
	return &Preview{Site: site.Name, Version: version, URL: u, Expires: expires}, nil
}

// String is the link with its expiry, for people.
func (p *Preview) String() string {
	return fmt.Sprintf("%s (release %s of %s, until %s)", p.URL, p.Version, p.Site, p.Expires.UTC().Format("2006-01-02 15:04Z"))
}
