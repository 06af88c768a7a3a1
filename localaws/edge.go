package localaws

import (
	"bytes"
	"fmt"
	"hash/fnv"
	"io"
	"net"
	"net/http"
	"os"
	"strconv"
	"time"
)

// PopHeader picks the point of presence a request goes to ("0".."N-1");
// without it the client address picks one, so a browser sticks to a PoP.
const PopHeader = "X-Edge-Pop"

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
				http.Error(w, err.Error(), functionErrorStatus(err))
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
			http.Error(w, err.Error(), functionErrorStatus(err))
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
	in := fnResponseOf(e.status, e.header)
	req := fnRequestOf(r)
	req.URI = viewerPath
	host, _, _ := net.SplitHostPort(r.RemoteAddr)
	res, err := fn.runResponse(req, in, host, s.kvs.edgeGet(pop))
	if err != nil {
		return nil, err
	}
	out := *e
	out.status = res.StatusCode
	if out.header, err = headerOfFnResponse(res, in); err != nil {
		return nil, err
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

// writeFunctionResponse sends a response a viewer-request function made.
func writeFunctionResponse(w http.ResponseWriter, res *fnResult) {
	for name, v := range res.RespHeaders {
		w.Header().Set(name, v.Value)
	}
	for _, line := range setCookieLines(res.Cookies) {
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
