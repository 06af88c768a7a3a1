package localaws

import (
	"errors"
	"fmt"
	"net/http"
	"os"
	"path"
	"strings"
)

// Edge serves sites as CloudFront would from an S3 origin, for the
// distribution picked by the Host header: a distribution's alias, its
// dXXXX.cloudfront.net domain name, "<distribution id>.localhost", or,
// when there is only one distribution, any host. A request for "/" gets the
// default root object (index.html when none is set), and so does a path
// ending in "/". A change of origin path reaches the edge only once the
// distribution is Deployed. Nothing is cached yet.
func (s *Server) Edge() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method != http.MethodGet && r.Method != http.MethodHead {
			w.Header().Set("Allow", "GET, HEAD")
			http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
			return
		}
		d, cfg, ok := s.cf.serving(r.Host)
		if !ok {
			http.Error(w, "no distribution serves host "+r.Host, http.StatusNotFound)
			return
		}
		origin, ok := s3Origin(cfg)
		if !ok {
			http.Error(w, "distribution "+d.ID+" has no S3 origin", http.StatusBadGateway)
			return
		}
		bucket := bucketOfDomain(origin.DomainName)
		p := r.URL.Path
		if p == "/" || p == "" {
			root := cfg.DefaultRootObject
			if root == "" {
				root = "index.html"
			}
			p = "/" + root
		} else if strings.HasSuffix(p, "/") {
			p += "index.html"
		}
		key := strings.TrimPrefix(path.Clean(origin.OriginPath+p), "/")
		o, f, err := s.s3.readObject(bucket, key)
		if errors.Is(err, os.ErrNotExist) || errors.Is(err, errNoBucket) {
			// S3 answers 403 AccessDenied for a missing key when the
			// caller may not list; CloudFront passes it on.
			w.Header().Set("X-Cache", "Error from cloudfront")
			http.Error(w, fmt.Sprintf("not found: %s", key), http.StatusNotFound)
			return
		}
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer f.Close()
		h := w.Header()
		h.Set("Content-Type", o.ContentType)
		h.Set("ETag", o.ETag)
		if o.CacheControl != "" {
			h.Set("Cache-Control", o.CacheControl)
		}
		if o.ContentEncoding != "" {
			h.Set("Content-Encoding", o.ContentEncoding)
		}
		h.Set("X-Cache", "Miss from cloudfront")
		h.Set("X-Amz-Cf-Id", d.ID)
		http.ServeContent(w, r, "", o.LastModified, f)
	})
}

// s3Origin returns the origin the default cache behaviour uses: the only
// S3 origin (the stand-in does not model cache behaviours).
func s3Origin(c distConfig) (cfOrigin, bool) {
	for _, o := range c.Origins.Items {
		if strings.Contains(o.DomainName, ".s3") {
			return o, true
		}
	}
	if len(c.Origins.Items) == 1 {
		return c.Origins.Items[0], true
	}
	return cfOrigin{}, false
}

// bucketOfDomain turns "bucket.s3.us-east-1.amazonaws.com" into "bucket".
func bucketOfDomain(domain string) string {
	if i := strings.Index(domain, ".s3"); i > 0 {
		return domain[:i]
	}
	return domain
}
