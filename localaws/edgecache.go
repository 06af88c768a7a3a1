// The edge's caches: CloudFront's TTL rules and one cache a point of
// presence.

package localaws

import (
	"net/http"
	"strconv"
	"strings"
	"sync"
	"time"
)

// CachePolicy is how the edge caches, in CloudFront's terms.
type CachePolicy struct {
	// MinTTL, DefaultTTL and MaxTTL bound how long a 2xx answer stays
	// cached: s-maxage, else max-age, clamped to [MinTTL, MaxTTL];
	// no-cache, no-store or private give MinTTL; no directive DefaultTTL.
	MinTTL, DefaultTTL, MaxTTL time.Duration
	// ErrorTTL is the error caching minimum TTL: how long a 4xx/5xx from
	// the origin (such as the 404 for an asset a release lacks) is served
	// from the cache before the origin is asked again.
	ErrorTTL time.Duration
}

// CachingOptimized is the managed cache policy the stand-in's
// distributions name (658327ea-...), with CloudFront's default error
// caching minimum TTL (10 seconds in the current developer guide; older
// editions said five minutes).
var CachingOptimized = CachePolicy{MinTTL: time.Second, DefaultTTL: 24 * time.Hour, MaxTTL: 365 * 24 * time.Hour, ErrorTTL: 10 * time.Second}

// maxCachedObject bounds what one PoP keeps in memory per object; larger
// objects are served from the origin every time (CloudFront caches up to
// 50 GB, but the stand-in keeps its caches in memory).
const maxCachedObject = 8 << 20

// TTL is how long the edge keeps an origin answer of this status and
// Cache-Control under policy p; zero means not cached.
func (p CachePolicy) TTL(status int, cacheControl string) time.Duration {
	var maxAge, sMaxAge time.Duration = -1, -1
	noCache := false
	for _, d := range strings.Split(cacheControl, ",") {
		name, val, _ := strings.Cut(strings.TrimSpace(d), "=")
		switch strings.ToLower(name) {
		case "max-age":
			if n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64); err == nil && n >= 0 {
				maxAge = time.Duration(n) * time.Second
			}
		case "s-maxage":
			if n, err := strconv.ParseInt(strings.Trim(val, `"`), 10, 64); err == nil && n >= 0 {
				sMaxAge = time.Duration(n) * time.Second
			}
		case "no-cache", "no-store", "private":
			noCache = true
		}
	}
	age := sMaxAge
	if age < 0 {
		age = maxAge
	}
	if status >= 400 {
		// Errors: the header's age or the error TTL, whichever is longer;
		// no-cache/no-store/private keep 404, 410, 414 and 501 out of the
		// cache, and are ignored for the other codes.
		switch status {
		case 404, 410, 414, 501:
			if noCache {
				return 0
			}
		}
		return min(max(age, p.ErrorTTL), p.MaxTTL)
	}
	switch {
	case age >= 0:
		return min(max(age, p.MinTTL), p.MaxTTL)
	case noCache:
		return p.MinTTL
	}
	return min(max(p.DefaultTTL, p.MinTTL), p.MaxTTL)
}

// cached is one answer a PoP keeps.
type cached struct {
	status  int
	header  http.Header
	body    []byte
	stored  time.Time
	expires time.Time
	modTime time.Time
	// hit: served from the cache; custom: a custom error response's page.
	hit, custom bool
}

// edgeCaches are the PoPs' caches, keyed by distribution id and viewer
// path: CloudFront caches by the URL the viewer asked for, not by the
// origin key, which is why an origin path change needs an invalidation.
type edgeCaches struct {
	mu   sync.Mutex
	pops []map[string]*cached
}

func (c *edgeCaches) get(pop int, key string) *cached {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.pops[pop][key]
}

func (c *edgeCaches) put(pop int, key string, e *cached) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.pops[pop][key] = e
}

func (c *edgeCaches) drop(pop int, key string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.pops[pop], key)
}
