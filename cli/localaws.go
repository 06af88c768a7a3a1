//go:build !nostandin

package cli

import (
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
	"sync/atomic"
	"time"

	"github.com/deploybot/deploybot/localaws"
)

// The stand-in's commands, localaws and dev, are in every build but the
// production image's (built with -tags nostandin): they carry a
// JavaScript engine (for CloudFront Functions) and a fault-injecting fake
// AWS that serve never needs.
func standinCommands() []command {
	return []command{
		{"localaws", "run the local S3 + CloudFront stand-in and its edge", runLocalAWS},
		{"dev", "everything on this machine, no accounts: stand-in, edge, sample site, console", runDev},
	}
}

func runLocalAWS(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "localaws", "")
	listenAddr := fs.String("listen", "127.0.0.1:4566", "`ADDR` (host:port) of the S3 + CloudFront APIs")
	edgeAddr := fs.String("edge", "127.0.0.1:8080", "`ADDR` (host:port) of the edge that serves the sites")
	data := fs.String("data", "", "`DIR` for buckets and distributions (required)")
	standIn := standInFlags(fs, 5*time.Second, 3*time.Second, 2*time.Second)
	errRate := fs.Float64("error-rate", 0, "`FRACTION` (0 to 1) of API calls answered with a 5xx error")
	throttle := fs.Float64("throttle-rate", 0, "`FRACTION` (0 to 1) of API calls answered with a throttling error")
	latency := fs.Duration("latency", 0, "`DURATION` added to every API call")
	var sites, stores multiFlag
	fs.Var(&sites, "distribution", "`ID=BUCKET`: create (if missing) a bucket and a distribution with this id serving it; repeatable")
	fs.Var(&stores, "kvs", "`NAME`: create (if missing) a CloudFront KeyValueStore and print its ARN; repeatable")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("localaws takes no arguments")
	}
	if *data == "" {
		return usagef("--data is required")
	}
	opts, err := standIn()
	if err != nil {
		return err
	}
	opts.DataDir, opts.Logger = *data, logger(env)
	opts.Faults = localaws.Faults{ErrorRate: *errRate, ThrottleRate: *throttle, Latency: *latency}
	clock := &standInClock{}
	opts.Now = clock.Now
	srv, err := localaws.New(opts)
	if err != nil {
		return err
	}
	for _, d := range sites {
		id, bucket, ok := strings.Cut(d, "=")
		if !ok {
			return usagef("--distribution takes ID=BUCKET, got %q", d)
		}
		if err := srv.EnsureSite(id, bucket); err != nil {
			return err
		}
	}
	for _, name := range stores {
		arn, err := srv.EnsureKVS(name)
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "localaws: key value store %s: %s\n", name, arn)
	}
	apiLn, err := listen("--listen", *listenAddr)
	if err != nil {
		return err
	}
	edgeLn, err := listen("--edge", *edgeAddr)
	if err != nil {
		apiLn.Close()
		return err
	}
	api := &http.Server{Handler: clock.handler(srv.Handler()), ReadHeaderTimeout: 10 * time.Second}
	edge := &http.Server{Handler: srv.Edge(), ReadHeaderTimeout: 10 * time.Second}
	errc := make(chan error, 2)
	go func() { errc <- api.Serve(apiLn) }()
	go func() { errc <- edge.Serve(edgeLn) }()
	fmt.Fprintf(env.Stdout, "localaws: S3 + CloudFront API on http://%s\nlocalaws: edge on http://%s/\n", apiLn.Addr(), edgeLn.Addr())
	select {
	case <-ctx.Done():
	case err = <-errc:
	}
	shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	defer cancel()
	_ = api.Shutdown(shut)
	_ = edge.Shutdown(shut)
	if err == http.ErrServerClosed {
		err = nil
	}
	return err
}

// standInFlags are the stand-in's timing and edge flags, shared by
// localaws and dev (each with its own delays); the returned func checks
// them and fills the matching Options fields.
func standInFlags(fs *flag.FlagSet, propagation, invalidation, kvsPropagation time.Duration) func() (localaws.Options, error) {
	d := localaws.CachingOptimized
	prop := fs.Duration("propagation", propagation, "`DURATION` a distribution change stays InProgress")
	inval := fs.Duration("invalidation", invalidation, "`DURATION` an invalidation stays InProgress")
	kvsProp := fs.Duration("kvs-propagation", kvsPropagation, "`DURATION` a key value store write takes to reach every PoP")
	pops := fs.Int("pops", 1, "`N` points of presence at the edge, each with its own cache and moment of picking up a change")
	minTTL := fs.Duration("min-ttl", d.MinTTL, "edge cache: shortest `DURATION` an answer is kept (no-cache answers are kept this long)")
	defTTL := fs.Duration("default-ttl", d.DefaultTTL, "edge cache: `DURATION` an answer without max-age or s-maxage is kept")
	maxTTL := fs.Duration("max-ttl", d.MaxTTL, "edge cache: longest `DURATION` an answer is kept")
	errTTL := fs.Duration("error-ttl", d.ErrorTTL, "edge cache: `DURATION` a 4xx/5xx from the bucket is kept")
	return func() (localaws.Options, error) {
		if *pops < 1 {
			return localaws.Options{}, usagef("--pops must be at least 1")
		}
		return localaws.Options{Propagation: *prop, Invalidation: *inval, KVSPropagation: *kvsProp, Pops: *pops,
			Cache: &localaws.CachePolicy{MinTTL: *minTTL, DefaultTTL: *defTTL, MaxTTL: *maxTTL, ErrorTTL: *errTTL}}, nil
	}
}

// standInClock is the stand-in's clock: the wall clock, moved forward by
// PUT /_localaws/clock {"advance": "2s"}, so that a test sees what time
// does (a preview link expiring, a propagation window ending) without
// waiting for it. It only moves forward, as time does.
type standInClock struct {
	offset atomic.Int64 // nanoseconds ahead of the wall clock
}

func (c *standInClock) Now() time.Time { return time.Now().Add(time.Duration(c.offset.Load())) }

// handler serves the clock's admin endpoint and passes the rest to next.
func (c *standInClock) handler(next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path != "/_localaws/clock" {
			next.ServeHTTP(w, r)
			return
		}
		if r.Method != http.MethodPut {
			w.Header().Set("Allow", http.MethodPut)
			http.Error(w, "PUT {\"advance\": DURATION}", http.StatusMethodNotAllowed)
			return
		}
		var req struct {
			Advance string `json:"advance"`
		}
		d, err := time.Duration(0), json.NewDecoder(io.LimitReader(r.Body, 1<<10)).Decode(&req)
		if err == nil {
			d, err = time.ParseDuration(req.Advance)
		}
		if err != nil || d < 0 {
			http.Error(w, "want {\"advance\": DURATION}, such as \"2s\" (forward only)", http.StatusBadRequest)
			return
		}
		c.offset.Add(int64(d))
		w.WriteHeader(http.StatusNoContent)
	})
}
