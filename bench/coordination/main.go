// Command coordination measures what sharing a site's lock, freeze, pins
// and approvals through its bucket costs: the requests to the state
// objects and the time spent in them during a promote, next to the same
// promote over the local store alone, and the requests serve's loop makes
// per idle hour per site. It runs on the local stand-in over loopback, so
// its milliseconds are this machine's, not S3's (add S3's 10-30 ms per
// request from the bucket's region).
//
//	go run ./bench/coordination [-rounds 20]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"
	"sync/atomic"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
	"github.com/deploybot/deploybot/store"
)

func main() {
	rounds := flag.Int("rounds", 20, "promotes of each kind (medians are printed)")
	flag.Parse()
	if err := run(*rounds); err != nil {
		fmt.Fprintln(os.Stderr, "coordination:", err)
		os.Exit(1)
	}
}

// counting is a Coordinator that counts and times what passes through.
type counting struct {
	releases.Coordinator
	gets, puts atomic.Int64
	nanos      atomic.Int64
}

func (c *counting) GetState(ctx context.Context, site releases.Site, key string) ([]byte, string, error) {
	start := time.Now()
	defer func() { c.gets.Add(1); c.nanos.Add(int64(time.Since(start))) }()
	return c.Coordinator.GetState(ctx, site, key)
}

func (c *counting) PutState(ctx context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	start := time.Now()
	defer func() { c.puts.Add(1); c.nanos.Add(int64(time.Since(start))) }()
	return c.Coordinator.PutState(ctx, site, key, body, etag)
}

func run(rounds int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "deploybot-coordination-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	srv, err := localaws.New(localaws.Options{DataDir: dir})
	if err != nil {
		return err
	}
	if err := srv.EnsureSite("ECOORD", "coord-site"); err != nil {
		return err
	}
	api, stop, err := testaws.Serve(srv.Handler())
	if err != nil {
		return err
	}
	defer stop()
	s3c, cfc, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: api, Credentials: cloud.StaticCredentials("bench", "bench")})
	if err != nil {
		return err
	}
	b := &bench{dir: dir, site: releases.Site{Name: "www", Bucket: "coord-site", Prefix: "www/", DistributionID: "ECOORD"},
		bucket: &cloud.S3Bucket{Client: s3c}, cdn: &cloud.OriginPath{Client: cfc, PollInterval: 10 * time.Millisecond, FastPoll: 10 * time.Millisecond}}
	if err := b.seed(ctx); err != nil {
		return err
	}
	local, _, err := b.promotes(ctx, "local", false, rounds)
	if err != nil {
		return err
	}
	shared, c, err := b.promotes(ctx, "shared", true, rounds)
	if err != nil {
		return err
	}
	n := int64(rounds)
	fmt.Printf("promote, median of %d (stand-in, loopback, CloudFront instant):\n", rounds)
	fmt.Printf("  local store only:        %6.1f ms\n", ms(local))
	fmt.Printf("  shared through bucket:   %6.1f ms (+%.1f ms)\n", ms(shared), ms(shared-local))
	fmt.Printf("  state requests per promote: %.1f reads, %.1f writes, %.1f ms in them\n",
		float64(c.gets.Load())/float64(n), float64(c.puts.Load())/float64(n), float64(c.nanos.Load())/float64(n)/1e6)
	return b.idle(ctx)
}

// bench is the site the measurements deploy, in the stand-in's bucket
// behind its CloudFront.
type bench struct {
	dir    string
	site   releases.Site
	bucket *cloud.S3Bucket
	cdn    *cloud.OriginPath
}

// seed publishes v1 and v2.
func (b *bench) seed(ctx context.Context) error {
	for _, v := range []string{"v1", "v2"} {
		body := "<h1>" + v + "</h1>"
		if err := b.bucket.PutFile(ctx, b.site, v, releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
			return err
		}
		if err := b.bucket.WriteManifest(ctx, b.site, &releases.Manifest{Version: v, PublishedAt: time.Now(),
			Files: []releases.ManifestFile{{Path: "index.html", Size: int64(len(body))}}}); err != nil {
			return err
		}
	}
	return nil
}

// promotes promotes v1 and v2 in turn, rounds times, with a store of its
// own (name) shared through the bucket or not; the median time, and the
// state requests counted.
func (b *bench) promotes(ctx context.Context, name string, shared bool, rounds int) (time.Duration, *counting, error) {
	db, err := store.Open(filepath.Join(b.dir, name+".db"), store.Options{})
	if err != nil {
		return 0, nil, err
	}
	defer db.Close()
	c := &counting{Coordinator: b.bucket}
	svc := wiring.Service(wiring.Config{Sites: []releases.Site{b.site}, Store: db, Bucket: b.bucket, CDN: b.cdn, State: c,
		Unshared: !shared, NoProbes: true, NoPIDCheck: true})
	var took []time.Duration
	c.gets.Store(0)
	c.puts.Store(0)
	c.nanos.Store(0)
	for i := range rounds {
		v := []string{"v1", "v2"}[i%2]
		start := time.Now()
		if _, err := svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "bench", NoVerify: true, Back: true}, nil); err != nil {
			return 0, nil, err
		}
		took = append(took, time.Since(start))
	}
	sort.Slice(took, func(i, j int) bool { return took[i] < took[j] })
	return took[len(took)/2], c, nil
}

// idle prints what an idle site costs: one round of serve's loop
// (recovery and the reads it makes) times the rounds of an hour at the
// default five-minute interval, the watch every replica runs every 5 s,
// and the lease: a renewal by its holder, a look by each other replica.
func (b *bench) idle(ctx context.Context) error {
	db, err := store.Open(filepath.Join(b.dir, "idle.db"), store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	site := b.site
	idle := &counting{Coordinator: b.bucket}
	svc := wiring.Service(wiring.Config{Sites: []releases.Site{site}, Store: db, Bucket: b.bucket, CDN: b.cdn, State: idle, NoProbes: true, NoPIDCheck: true})
	if _, err := svc.Recover(ctx, nil); err != nil {
		return err
	}
	perRound := idle.gets.Load() + idle.puts.Load()
	fmt.Printf("idle site: %d state requests per loop round, %d per hour at reconcile.interval 5m (%d reads, %d writes a round)\n",
		perRound, perRound*12, idle.gets.Load(), idle.puts.Load())
	count := func(f func() error) (gets, puts int64, err error) {
		g0, p0 := idle.gets.Load(), idle.puts.Load()
		err = f()
		return idle.gets.Load() - g0, idle.puts.Load() - p0, err
	}
	wg, wp, err := count(func() error { _, err := svc.Watch(ctx, site.Name, nil); return err })
	if err != nil {
		return err
	}
	holder := svc.Store.(*releases.SharedStore)
	holder.Process = "holder"
	now := time.Now()
	if _, err := holder.HoldLease(ctx, site.Name, now, 0); err != nil {
		return err
	}
	rg, rp, err := count(func() error { _, err := holder.HoldLease(ctx, site.Name, now.Add(time.Minute), 0); return err })
	if err != nil {
		return err
	}
	other := releases.NewSharedStore(db, idle, []releases.Site{site})
	other.Process = "other"
	og, op, err := count(func() error { _, err := other.HoldLease(ctx, site.Name, now.Add(time.Minute), 0); return err })
	if err != nil {
		return err
	}
	watches := int64(time.Hour / server.DefaultWatchInterval)
	renewals := int64(time.Hour / (releases.DefaultLease / 3))
	fmt.Printf("  watch: %d reads, %d writes a round, %d rounds an hour per replica\n", wg, wp, watches)
	fmt.Printf("  lease: holder %d reads, %d writes a renewal; each other replica %d reads, %d writes a look; %d an hour\n", rg, rp, og, op, renewals)
	gets := 2*(watches*wg+12*perRound) + renewals*(rg+og)
	puts := 2*watches*wp + renewals*(rp+op)
	fmt.Printf("  two replicas, one idle site: %d reads and %d writes an hour, $%.2f a year at $0.0004 per 1,000 reads and $0.005 per 1,000 writes\n",
		gets, puts, (float64(gets)*0.0004+float64(puts)*0.005)/1000*24*365)
	return nil
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }
