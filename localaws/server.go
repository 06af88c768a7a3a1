// Package localaws is a stand-in for the parts of AWS deploybot uses: an S3
// API (path-style), a CloudFront API (distributions and invalidations) on
// the same listener, and an edge that serves each distribution's current
// origin path over plain HTTP. It behaves as AWS documents where deploybot
// depends on it: ETags change on every update, a stale If-Match gets 412,
// distributions are InProgress for a propagation delay before Deployed,
// invalidations InProgress before Completed, and the XML is the shape the
// SDK parses. Fault injection (errors, throttling, latency) exercises the
// callers' retry paths.
//
// It is for tests and `deploybot dev`; it checks no signatures and keeps
// everything under one data directory.
package localaws

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	mrand "math/rand/v2"
	"net/http"
	"strings"
	"sync"
	"time"
)

// Options configure a Server.
type Options struct {
	// DataDir holds buckets and distributions; it survives restarts.
	DataDir string
	// Propagation is how long a distribution stays InProgress after a
	// change (CloudFront: minutes; tests: milliseconds).
	Propagation time.Duration
	// Invalidation is how long an invalidation stays InProgress.
	Invalidation time.Duration
	// Now is the clock; nil means time.Now.
	Now    func() time.Time
	Logger *slog.Logger
	Faults Faults
	// Pops is how many points of presence the edge has, each with its own
	// cache and its own moment of picking up a change; zero means one.
	Pops int
	// Cache is the edge's cache policy; nil means CachingOptimized.
	Cache *CachePolicy
	// Seed makes the PoPs' random moments repeatable; zero: a random seed.
	Seed uint64
	// KVSPropagation is how long a KeyValueStore write takes to reach
	// every PoP (each at its own moment inside it).
	KVSPropagation time.Duration
	// MaxCopySize is the largest object CopyObject copies; zero: S3's
	// 5 GiB. Tests lower it rather than write gigabytes.
	MaxCopySize int64
	// Identities are what STS GetCallerIdentity answers, ARN by access
	// key id; a key not listed is a user of that name (see sts.go).
	Identities map[string]string
}

// Faults make API calls fail or slow down at random, to exercise retries.
// The edge is never faulted.
type Faults struct {
	ErrorRate    float64       `json:"error_rate"`    // share of calls answered 500/503
	ThrottleRate float64       `json:"throttle_rate"` // share of calls answered SlowDown/Throttling
	Latency      time.Duration `json:"latency"`       // added to every faulted-or-not call
	// Only limits faults to requests whose "service op" ("s3 PutObject",
	// "cloudfront UpdateDistribution") contains this text; empty: all.
	Only string `json:"only,omitempty"`
	// Path limits faults to requests whose URL path contains this text
	// (one object, one distribution); empty: all.
	Path string `json:"path,omitempty"`
	// Skip lets the first Skip matching calls through before faults start
	// ("fail in the middle of a prune").
	Skip int `json:"skip,omitempty"`
	// MaxStreak bounds the faults in a row one request (method and path)
	// meets; zero: no bound. Transient faults are what a retry budget is
	// for: a bound below it makes "the retries carry through" a claim a
	// test can check every run, not most runs.
	MaxStreak int `json:"max_streak,omitempty"`
}

// Server is the stand-in. Handler serves the APIs, Edge the sites.
type Server struct {
	opts   Options
	s3     *s3Service
	cf     *cfService
	mu     sync.Mutex
	faults Faults
	rng    *mrand.Rand
	// streaks counts the faults in a row per request (method and path).
	streaks map[string]int
	calls   map[string]int
	cache   CachePolicy
	edge    *edgeCaches
	kvs     *kvStores
	fns     *functions
	// matched counts calls that matched the faults' filters since they
	// were set, for Skip.
	matched int
	// iam holds the callers' identity-based policies (identity.go).
	iam identityPolicies
}

// New opens (or creates) the stand-in's state under opts.DataDir.
func New(opts Options) (*Server, error) {
	if opts.DataDir == "" {
		return nil, fmt.Errorf("localaws: a data directory is required")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	if opts.Logger == nil {
		opts.Logger = slog.New(slog.DiscardHandler)
	}
	if opts.Pops <= 0 {
		opts.Pops = 1
	}
	if opts.Seed == 0 {
		opts.Seed = uint64(time.Now().UnixNano())
	}
	cache := CachingOptimized
	if opts.Cache != nil {
		cache = *opts.Cache
	}
	s := &Server{opts: opts, cache: cache, edge: &edgeCaches{pops: make([]map[string]*cached, opts.Pops)}, faults: opts.Faults,
		// The fault rolls follow the seed too, so a seeded test meets
		// the same faults every run.
		rng: mrand.New(mrand.NewPCG(opts.Seed, 1)), calls: map[string]int{}, streaks: map[string]int{}}
	for i := range s.edge.pops {
		s.edge.pops[i] = map[string]*cached{}
	}
	var err error
	if s.s3, err = newS3(opts.DataDir, opts.Now); err != nil {
		return nil, err
	}
	s.s3.maxCopy = opts.MaxCopySize
	if s.s3.maxCopy <= 0 {
		s.s3.maxCopy = 5 << 30
	}
	if s.cf, err = newCloudFront(opts.DataDir, opts); err != nil {
		return nil, err
	}
	if s.kvs, err = newKVStores(opts.DataDir, opts); err != nil {
		return nil, err
	}
	if s.fns, err = newFunctions(opts.DataDir); err != nil {
		return nil, err
	}
	s.fns.now = opts.Now
	s.cf.published = s.fns.published
	s.fns.storeExists = s.kvs.exists
	return s, nil
}

// SetFaults replaces the fault settings.
func (s *Server) SetFaults(f Faults) {
	s.mu.Lock()
	s.faults = f
	s.matched = 0
	s.streaks = map[string]int{}
	s.mu.Unlock()
}

// EnforceConditionalWrites turns on (or off) the stand-in's model of a
// bucket policy that enforces conditional writes on every key of bucket,
// for every principal, as
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html
// describes it: PutObject, CopyObject and CompleteMultipartUpload without
// If-None-Match or If-Match are refused 403 AccessDenied; the multipart
// parts are exempt (s3:ObjectCreationOperation false); and CopyObject
// with the headers is refused 501 Not Implemented (the page's note). The
// stand-in evaluates no bucket policies otherwise; identity-based
// policies only as SetIdentityPolicy sets them (identity.go).
func (s *Server) EnforceConditionalWrites(bucket string, on bool) {
	if on {
		s.s3.enforced.Store(bucket, true)
	} else {
		s.s3.enforced.Delete(bucket)
	}
}

// Calls returns how many API calls of each "service op" were received,
// faulted or not (for tests that check retries happened).
func (s *Server) Calls() map[string]int {
	s.mu.Lock()
	defer s.mu.Unlock()
	out := make(map[string]int, len(s.calls))
	for k, v := range s.calls {
		out[k] = v
	}
	return out
}

// Handler serves the S3 and CloudFront APIs and the admin endpoints under
// /_localaws/. Requests signed for the "cloudfront" service, or unsigned
// requests under /2020-05-31/, go to CloudFront; the rest to S3.
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.iam.remember(callerKey(r))
		if strings.HasPrefix(r.URL.Path, "/_localaws/") {
			s.admin(w, r)
			return
		}
		if strings.HasPrefix(r.URL.Path, "/key-value-stores/") {
			if s.fault(w, r, "cloudfront-keyvaluestore "+r.Method, kvsFaultWriter) {
				return
			}
			s.kvs.ServeHTTP(w, r)
			return
		}
		if isIAM(r) {
			if s.fault(w, r, "iam SimulatePrincipalPolicy", iamFaultWriter) {
				return
			}
			s.serveIAM(w, r)
			return
		}
		if isSTS(r) {
			if s.fault(w, r, "sts GetCallerIdentity", stsFaultWriter) {
				return
			}
			s.serveSTS(w, r)
			return
		}
		if isCloudFront(r) {
			op := s.cf.opName(r)
			if s.fault(w, r, "cloudfront "+op, cfFaultWriter) {
				return
			}
			if strings.Contains(op, "KeyValueStore") {
				s.serveKVSControl(w, r, op)
				return
			}
			if s.fns.serve(w, r, s.cf.now().UTC()) {
				return
			}
			s.cf.ServeHTTP(w, r)
			return
		}
		op := s3OpName(r)
		if s.fault(w, r, "s3 "+op, s3FaultWriter) {
			return
		}
		if s.refusedByIdentity(w, r, op) {
			return
		}
		s.s3.ServeHTTP(w, r)
	})
}

func isCloudFront(r *http.Request) bool {
	if auth := r.Header.Get("Authorization"); auth != "" {
		return strings.Contains(auth, "/cloudfront/aws4_request")
	}
	return strings.HasPrefix(r.URL.Path, "/2020-05-31/")
}

// fault applies the fault settings to one call; true means it answered.
func (s *Server) fault(w http.ResponseWriter, r *http.Request, op string, write func(http.ResponseWriter, *http.Request, bool)) bool {
	s.mu.Lock()
	s.calls[op]++
	f := s.faults
	roll := s.rng.Float64()
	match := !(f.Only != "" && !strings.Contains(op, f.Only) || f.Path != "" && !strings.Contains(r.URL.Path, f.Path))
	if match {
		s.matched++
	}
	skipped := s.matched <= f.Skip
	key := r.Method + " " + r.URL.Path
	faulted := match && !skipped && roll < f.ErrorRate+f.ThrottleRate
	if faulted && f.MaxStreak > 0 && s.streaks[key] >= f.MaxStreak {
		faulted = false // the bound: this attempt goes through
	}
	if faulted {
		s.streaks[key]++
	} else {
		delete(s.streaks, key)
	}
	s.mu.Unlock()
	if !match || skipped {
		return false
	}
	if f.Latency > 0 {
		// The body is read first: net/http notices a client that went
		// away only once the request's body has been read, so a killed
		// client's PUT would otherwise still be applied when the latency
		// ends, at a time no test controls. Latency models a slow answer
		// to a request not yet acted on; a client that leaves meanwhile
		// leaves it unapplied. The cost is the body in memory, for
		// requests a latency fault matches.
		body, err := io.ReadAll(r.Body)
		if err != nil {
			return true
		}
		r.Body = io.NopCloser(bytes.NewReader(body))
		select {
		case <-time.After(f.Latency):
		case <-r.Context().Done():
			return true
		}
	}
	switch {
	case !faulted:
	case roll < f.ErrorRate:
		write(w, r, false)
		return true
	default:
		write(w, r, true)
		return true
	}
	return false
}

func (s *Server) admin(w http.ResponseWriter, r *http.Request) {
	switch {
	case r.URL.Path == "/_localaws/faults" && r.Method == http.MethodPut:
		var f Faults
		if err := json.NewDecoder(r.Body).Decode(&f); err != nil {
			http.Error(w, err.Error(), http.StatusBadRequest)
			return
		}
		s.SetFaults(f)
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/_localaws/faults" && r.Method == http.MethodGet:
		s.mu.Lock()
		f := s.faults
		s.mu.Unlock()
		_ = json.NewEncoder(w).Encode(f)
	case r.URL.Path == "/_localaws/conditional-writes" && r.Method == http.MethodPut:
		var req struct {
			Bucket  string `json:"bucket"`
			Enforce bool   `json:"enforce"`
		}
		if err := json.NewDecoder(r.Body).Decode(&req); err != nil || req.Bucket == "" {
			http.Error(w, "want {\"bucket\": NAME, \"enforce\": true|false}", http.StatusBadRequest)
			return
		}
		s.EnforceConditionalWrites(req.Bucket, req.Enforce)
		w.WriteHeader(http.StatusNoContent)
	case r.URL.Path == "/_localaws/calls" && r.Method == http.MethodGet:
		_ = json.NewEncoder(w).Encode(s.Calls())
	default:
		http.NotFound(w, r)
	}
}

func newRequestID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return strings.ToUpper(hex.EncodeToString(b[:]))
}

// newID returns an id in CloudFront's style: a letter and 13 upper-case
// letters and digits.
func newID(first byte) string {
	const alphabet = "ABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789"
	var b [13]byte
	_, _ = rand.Read(b[:])
	out := []byte{first}
	for _, c := range b {
		out = append(out, alphabet[int(c)%len(alphabet)])
	}
	return string(out)
}

// awsTime is the timestamp format of both XML APIs.
const awsTime = "2006-01-02T15:04:05.000Z"

func kvsFaultWriter(w http.ResponseWriter, _ *http.Request, throttle bool) {
	if throttle {
		writeKVSError(w, 429, "ThrottlingException", "Rate exceeded")
		return
	}
	writeKVSError(w, 500, "InternalServerException", "We encountered an internal error. Please try again.")
}

// EnsureKVS creates (if missing) a KeyValueStore called name and returns
// its ARN, for tests and `deploybot dev`.
func (s *Server) EnsureKVS(name string) (string, error) { return s.kvs.ensure(name) }
