package localaws

import (
	"bytes"
	"errors"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
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

// PopHeader picks the point of presence a request goes to ("0".."N-1");
// without it the client address picks one, so a browser sticks to a PoP.
const PopHeader = "X-Edge-Pop"

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

// Edge serves sites as CloudFront would from an S3 origin, for the
// distribution picked by the Host header: a distribution's alias, its
// dXXXX.cloudfront.net domain name, "<distribution id>.localhost", or,
// when there is only one distribution, any host. Each request goes through
// the cache behaviour its path matches (its function, its origin); "/"
// gets the default root object, and nothing else gets an index document
// from a REST origin (see fetch); origin errors with a custom error
// response are answered with its page (see customError).
//
// It models what makes naive deploys show broken pages: several points of
// presence (Options.Pops), each picking up an origin path change at its own
// random moment inside the propagation window and keeping its own cache
// (per Options.Cache, by viewer path); errors are cached too; an
// invalidation purges each PoP at its own moment before it reports
// Completed. Answers carry X-Cache (Hit/Miss/Error from cloudfront), Age
// and X-Amz-Cf-Pop.
func (s *Server) Edge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		pop, err := s.pickPop(r)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		view, ok := s.cf.serving(r.Host, pop)
		if !ok {
			http.Error(w, "no distribution serves host "+r.Host, http.StatusNotFound)
			return
		}
		w.Header().Set("X-Amz-Cf-Pop", fmt.Sprintf("LOCAL%d", pop))
		w.Header().Set("X-Amz-Cf-Id", view.id)
		behavior := view.cfg.behaviorFor(r.URL.Path)
		viewerPath := r.URL.Path
		if arn := behavior.viewerRequestFunction(); arn != "" {
			// The function runs before the cache: what it makes of the
			// URI is the cache key (a kvs site's version is part of it).
			fn, err := s.fns.liveByARN(arn)
			if err != nil {
				http.Error(w, "the distribution's function cannot run: "+err.Error(), http.StatusServiceUnavailable)
				return
			}
			host, _, _ := net.SplitHostPort(r.RemoteAddr)
			res, err := fn.run(fnRequestOf(r), host, s.kvs.edgeGet(pop))
			if err != nil {
				w.Header().Set("X-Cache", "FunctionExecutionError from cloudfront")
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			if res.StatusCode != 0 {
				writeFunctionResponse(w, res)
				return
			}
			viewerPath = res.URI
		}
		now := s.cf.now()
		e, f, err := s.cachedFetch(view, pop, behavior, viewerPath, now)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		if f != nil {
			// Too large to keep: straight from the origin, not cached.
			defer f.Close()
			if e, err = s.viewerResponse(behavior, r, viewerPath, pop, e); err != nil {
				w.Header().Set("X-Cache", "FunctionExecutionError from cloudfront")
				http.Error(w, err.Error(), http.StatusServiceUnavailable)
				return
			}
			for k, v := range e.header {
				w.Header()[k] = v
			}
			w.Header().Set("X-Cache", "Miss from cloudfront")
			http.ServeContent(w, r, "", e.modTime, f)
			return
		}
		if e.status >= 400 {
			if er, ok := view.cfg.errorResponse(e.status); ok && er.ResponsePagePath != "" {
				e = s.customError(view, pop, er, e, now)
			}
		}
		if e, err = s.viewerResponse(behavior, r, viewerPath, pop, e); err != nil {
			w.Header().Set("X-Cache", "FunctionExecutionError from cloudfront")
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		s.writeCached(w, r, e, now, e.hit)
	})
}

// viewerResponse runs behaviour b's viewer-response function, if it has
// one, on answer e, and returns the answer it makes (e itself is what
// the cache holds, and is left as it is). CloudFront runs it on hits and
// misses alike, but not when the origin answered 400 or more, custom
// error pages included
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-functions-restrictions.html#edge-function-restrictions-all);
// the function sees the headers and the status, never the body.
func (s *Server) viewerResponse(b cfBehavior, r *http.Request, viewerPath string, pop int, e *cached) (*cached, error) {
	arn := b.viewerResponseFunction()
	if arn == "" || e.status >= 400 || e.custom {
		return e, nil
	}
	fn, err := s.fns.liveByARN(arn)
	if err != nil {
		return nil, fmt.Errorf("the distribution's viewer-response function cannot run: %w", err)
	}
	in := fnResponse{StatusCode: e.status, StatusDescription: http.StatusText(e.status), Headers: map[string]fnValue{}}
	for k, v := range e.header {
		in.Headers[strings.ToLower(k)] = fnValue{Value: v[0]}
	}
	req := fnRequestOf(r)
	req.URI = viewerPath
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	res, err := fn.runResponse(req, in, host, s.kvs.edgeGet(pop))
	if err != nil {
		return nil, err
	}
	out := *e
	out.status = res.StatusCode
	out.header = http.Header{}
	for k, v := range res.Headers {
		out.header.Set(k, v.Value)
	}
	return &out, nil
}

// cachedFetch answers a viewer path through behavior b from PoP pop's
// cache or, on a miss, from b's origin, caching what may be cached. The
// cache key is the path (after the function), as CloudFront's is.
func (s *Server) cachedFetch(view edgeView, pop int, b cfBehavior, viewerPath string, now time.Time) (*cached, *os.File, error) {
	key := view.id + "\x00" + viewerPath
	if e := s.edge.get(pop, key); e != nil {
		if now.Before(e.expires) && !view.purged(pop, viewerPath, e.stored, now) {
			hit := *e
			hit.hit = true
			return &hit, nil, nil
		}
		s.edge.drop(pop, key)
	}
	origin, ok := view.cfg.origin(b.TargetOriginID)
	if !ok {
		return nil, nil, fmt.Errorf("the cache behavior's origin %q does not exist", b.TargetOriginID)
	}
	e, f, err := s.fetch(view.id, view.cfg, origin, viewerPath, now)
	if err != nil || f != nil {
		return e, f, err
	}
	if e.status >= 400 {
		if er, ok := view.cfg.errorResponse(e.status); ok {
			e.expires = e.stored.Add(er.errorTTL(s.cache.ErrorTTL))
		}
	}
	if e.expires.After(now) {
		s.edge.put(pop, key, e)
	}
	return e, nil, nil
}

// customError replaces an origin error with the custom error response's
// page, answered with its response code. CloudFront gets the page through
// the cache behaviour its path matches, from that behaviour's origin (with
// the origin path), and without running viewer-request functions; when
// the page cannot be had, the viewer gets the status of that fetch
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/GeneratingCustomErrorResponses.html,
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-cloudfront-trigger-events.html).
func (s *Server) customError(view edgeView, pop int, er cfErrorResponse, orig *cached, now time.Time) *cached {
	page, f, err := s.cachedFetch(view, pop, view.cfg.behaviorFor(er.ResponsePagePath), er.ResponsePagePath, now)
	if f != nil {
		f.Close()
		return orig // a page too large to keep in memory: the stand-in gives up
	}
	if err != nil || page.status >= 400 {
		if page != nil {
			return page
		}
		return orig
	}
	code, _ := strconv.Atoi(er.ResponseCode)
	out := *page
	out.status, out.hit, out.custom = code, orig.hit, true
	out.stored = orig.stored
	return &out
}

// pickPop is the PoP a request goes to.
func (s *Server) pickPop(r *http.Request) (int, error) {
	n := len(s.edge.pops)
	if v := r.Header.Get(PopHeader); v != "" {
		i, err := strconv.Atoi(v)
		if err != nil || i < 0 || i >= n {
			return 0, fmt.Errorf("%s: %q is not a PoP (0..%d)", PopHeader, v, n-1)
		}
		return i, nil
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	h := fnv.New32a()
	_, _ = io.WriteString(h, host)
	return int(h.Sum32() % uint32(n)), nil
}

// fetch asks an origin for a viewer path under config cfg. A small
// answer comes back whole, to be cached; a large one as an open file.
//
// The default root object answers "/" only
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/DefaultRootObject.html).
// A REST endpoint origin takes every other path as the key it names: no
// index document for "/docs/", and with origin access control (which
// grants s3:GetObject, not s3:ListBucket) a missing key answers 403
// AccessDenied, not 404
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
// A website endpoint origin serves index.html for a path ending in "/"
// and redirects a folder's path without its slash (see website). What
// the bucket lets the edge read is originAccess's to say.
func (s *Server) fetch(distID string, cfg distConfig, origin cfOrigin, viewerPath string, now time.Time) (*cached, *os.File, error) {
	p := viewerPath
	if p == "/" || p == "" {
		if cfg.DefaultRootObject != "" {
			p = "/" + cfg.DefaultRootObject
		} else {
			p = "/"
		}
	}
	website := websiteEndpoint(origin)
	if website && strings.HasSuffix(p, "/") {
		p += "index.html"
	}
	// The key as the path reads, not cleaned: S3 takes keys as written, and
	// CloudFront passes the path on as the viewer sent it.
	key := strings.TrimPrefix(origin.OriginPath+p, "/")
	bucket := bucketOfDomain(origin.DomainName)
	refused, listable := s.originAccess(distID, origin, bucket, key, website, now)
	if refused != nil {
		return refused, nil, nil
	}
	o, f, err := s.s3.readObject(bucket, key)
	if errors.Is(err, os.ErrNotExist) || errors.Is(err, errNoBucket) {
		if website {
			// A website endpoint too answers a missing key 403 unless the
			// reader may list the bucket
			// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/CustomErrorDocSupport.html).
			if miss := s.websiteMiss(bucket, key, now); miss.status != http.StatusNotFound || listable {
				return miss, nil, nil
			}
			return s.websiteForbidden(now), nil, nil
		}
		if listable {
			// With s3:ListBucket, a missing key is 404 NoSuchKey
			// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
			return s.originError(http.StatusNotFound, "NoSuchKey", "The specified key does not exist.", "", now), nil, nil
		}
		return s.originError(http.StatusForbidden, "AccessDenied", "Access Denied", "", now), nil, nil
	}
	if err != nil {
		return nil, nil, err
	}
	h := http.Header{}
	h.Set("Content-Type", o.ContentType)
	h.Set("ETag", o.ETag)
	if o.CacheControl != "" {
		h.Set("Cache-Control", o.CacheControl)
	}
	if o.ContentEncoding != "" {
		h.Set("Content-Encoding", o.ContentEncoding)
	}
	// An S3 origin's user metadata reaches viewers as it is: CloudFront
	// removes only the headers listed in
	// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/RequestAndResponseBehaviorS3Origin.html#response-s3-removed-headers
	// (deploybot's release stamp travels this way).
	for k, v := range o.Meta {
		h.Set("X-Amz-Meta-"+k, v)
	}
	e := &cached{status: http.StatusOK, header: h, stored: now, modTime: o.LastModified,
		expires: now.Add(s.cache.TTL(http.StatusOK, o.CacheControl))}
	if o.Size > maxCachedObject {
		return e, f, nil
	}
	defer f.Close()
	if e.body, err = io.ReadAll(f); err != nil {
		return nil, nil, err
	}
	return e, nil, nil
}

// websiteMiss is a website endpoint's answer for a key it lacks: a 302 to
// the folder ("/" + key + "/") when key/index.html exists, with the whole
// key, origin path included, in the Location, which is why such an origin
// cannot serve release folders; else 404
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/IndexDocumentSupport.html).
// The stand-in's index document is index.html.
func (s *Server) websiteMiss(bucket, key string, now time.Time) *cached {
	if o, f, err := s.s3.readObject(bucket, key+"/index.html"); err == nil && o != nil {
		f.Close()
		h := http.Header{"Location": {"/" + key + "/"}, "Content-Type": {"text/html; charset=utf-8"}}
		return &cached{status: http.StatusFound, header: h, body: nil, stored: now,
			expires: now.Add(s.cache.TTL(http.StatusFound, ""))}
	}
	body := []byte("404 Not Found: " + key + "\n")
	return &cached{status: http.StatusNotFound, header: http.Header{"Content-Type": {"text/html; charset=utf-8"}}, body: body, stored: now,
		expires: now.Add(s.cache.TTL(http.StatusNotFound, ""))}
}

func (s *Server) writeCached(w http.ResponseWriter, r *http.Request, e *cached, now time.Time, hit bool) {
	for k, v := range e.header {
		w.Header()[k] = v
	}
	switch {
	case e.status >= 400 || e.custom:
		w.Header().Set("X-Cache", "Error from cloudfront")
	case hit:
		w.Header().Set("X-Cache", "Hit from cloudfront")
	default:
		w.Header().Set("X-Cache", "Miss from cloudfront")
	}
	if hit {
		w.Header().Set("Age", strconv.Itoa(int(now.Sub(e.stored)/time.Second)))
	}
	if e.status != http.StatusOK {
		w.WriteHeader(e.status)
		if r.Method != http.MethodHead {
			_, _ = w.Write(e.body)
		}
		return
	}
	http.ServeContent(w, r, "", e.modTime, bytes.NewReader(e.body))
}

// originError is an S3 error answer from an origin, as the edge caches
// it and passes it on.
func (s *Server) originError(status int, code, msg, extra string, now time.Time) *cached {
	body := []byte("<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>" + code + "</Code><Message>" + xmlEscape(msg) + "</Message>" + extra + "</Error>")
	h := http.Header{"Content-Type": {"application/xml"}}
	return &cached{status: status, header: h, body: body, stored: now, expires: now.Add(s.cache.TTL(status, ""))}
}

// originAccess is what S3 makes of the edge's read of bucket/key through
// origin: nil when it may read, else the answer S3 gives, which CloudFront
// passes to the viewer; listable when a missing key would be 404, not 403
// (s3:ListBucket allowed).
//
// An S3 REST origin with an origin access control that signs reads as
// CloudFront's service principal, cloudfront.amazonaws.com, with
// aws:SourceArn the distribution's ARN and aws:SourceAccount its account,
// which the bucket policy must allow
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html);
// an origin without one (and a website endpoint, which takes no signed
// requests: same page) reads anonymously, which only a public policy
// allows, and only with RestrictPublicBuckets off
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html).
// A Deny in the policy wins. A signed read through a regional domain name
// of another region than the bucket's is S3's 400
// AuthorizationHeaderMalformed
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/http-400-bad-request.html).
// A domain name naming no bucket is S3's 404 NoSuchBucket, passed on
// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList).
// Origin access identities (legacy) are evaluated as their AWS principal.
func (s *Server) originAccess(distID string, origin cfOrigin, bucket, key string, website bool, now time.Time) (refused *cached, listable bool) {
	s.s3.mu.RLock()
	b := s.s3.buckets[bucket]
	var cfg bucketConfig
	if b != nil {
		cfg = b.cfg
	}
	s.s3.mu.RUnlock()
	if b == nil {
		if website {
			return nil, false // the website endpoint's own 404 (websiteMiss)
		}
		return s.originError(http.StatusNotFound, "NoSuchBucket", "The specified bucket does not exist", "<BucketName>"+xmlEscape(bucket)+"</BucketName>", now), false
	}
	req := accessRequest{context: map[string]string{}}
	switch {
	case !website && s.cf.originSigns(origin):
		if r := regionOfDomain(origin.DomainName); r != "" && r != cfg.Region {
			return s.originError(http.StatusBadRequest, "AuthorizationHeaderMalformed",
				fmt.Sprintf("The authorization header is malformed; the region '%s' is wrong; expecting '%s'", r, cfg.Region),
				"<Region>"+cfg.Region+"</Region>", now), false
		}
		req.principalType, req.principal = "Service", "cloudfront.amazonaws.com"
		req.context["aws:sourcearn"] = distributionARN(distID)
		req.context["aws:sourceaccount"] = StandInAccount
	case !website && origin.S3OriginConfig != nil && origin.S3OriginConfig.OriginAccessIdentity != "":
		oai := strings.TrimPrefix(origin.S3OriginConfig.OriginAccessIdentity, "origin-access-identity/cloudfront/")
		req.principalType, req.principal = "AWS", "arn:aws:iam::cloudfront:user/CloudFront Origin Access Identity "+oai
	}
	var doc *bucketPolicy
	if cfg.Policy != "" {
		doc, _ = parseBucketPolicy([]byte(cfg.Policy), bucket)
	}
	restricted := req.principalType == "" && cfg.PublicAccessBlock != nil && cfg.PublicAccessBlock.RestrictPublicBuckets && doc != nil && doc.public()
	allow := func(action, resource string) bool {
		r := req
		r.action, r.resource = action, resource
		return !restricted && doc.decide(r)
	}
	if !allow("s3:GetObject", "arn:aws:s3:::"+bucket+"/"+key) {
		if website {
			return s.websiteForbidden(now), false
		}
		return s.originError(http.StatusForbidden, "AccessDenied", "Access Denied", "", now), false
	}
	return nil, allow("s3:ListBucket", "arn:aws:s3:::"+bucket)
}

// websiteForbidden is a website endpoint's 403.
func (s *Server) websiteForbidden(now time.Time) *cached {
	h := http.Header{"Content-Type": {"text/html; charset=utf-8"}}
	return &cached{status: http.StatusForbidden, header: h, body: []byte("403 Forbidden\nCode: AccessDenied\n"), stored: now,
		expires: now.Add(s.cache.TTL(http.StatusForbidden, ""))}
}

// regionOfDomain is the region of a regional S3 domain name
// ("bucket.s3.eu-west-1.amazonaws.com"), "" for the global one
// ("bucket.s3.amazonaws.com").
func regionOfDomain(domain string) string {
	i := strings.Index(domain, ".s3.")
	if i < 0 {
		return ""
	}
	rest := strings.TrimSuffix(domain[i+len(".s3."):], ".amazonaws.com")
	if rest == domain[i+len(".s3."):] || strings.Contains(rest, ".") {
		return ""
	}
	return rest
}

// bucketOfDomain turns "bucket.s3.us-east-1.amazonaws.com" into "bucket".
func bucketOfDomain(domain string) string {
	if i := strings.Index(domain, ".s3"); i > 0 {
		return domain[:i]
	}
	return domain
}

// writeFunctionResponse sends a response a viewer-request function made.
func writeFunctionResponse(w http.ResponseWriter, res *fnResult) {
	for name, v := range res.RespHeaders {
		w.Header().Set(name, v.Value)
	}
	for name, c := range res.Cookies {
		line := name + "=" + c.Value
		if c.Attributes != "" {
			line += "; " + c.Attributes
		}
		w.Header().Add("Set-Cookie", line)
	}
	w.Header().Set("X-Cache", "FunctionGeneratedResponse from cloudfront")
	w.WriteHeader(res.StatusCode)
	switch b := res.Body.(type) {
	case string:
		_, _ = io.WriteString(w, b)
	case map[string]any:
		if d, ok := b["data"].(string); ok {
			_, _ = io.WriteString(w, d)
		}
	}
}
