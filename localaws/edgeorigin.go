// The edge's origin fetch: reading an S3 origin (REST or website
// endpoint), origin access (OAC, public buckets) and the errors an origin
// answers.

package localaws

import (
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"strings"
	"time"
)

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
