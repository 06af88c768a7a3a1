// Command flipspeed measures, with the stand-in's realistic edge, how long
// a rollback takes to reach every point of presence with strategy kvs and
// with strategy origin-path, in one run; and, phase by phase, how much
// time deploybot adds to the stand-in's own waits, and the API calls a
// flip makes.
//
// The stand-in is set to CloudFront's typical delays, scaled down by
// -scale so a run takes seconds: a distribution change deploying in 90 s,
// an invalidation completing in 30 s, a KeyValueStore write reaching the
// edge in 5 s, the CachingOptimized policy's 1 s minimum TTL. The figures
// are printed both as measured and scaled back up.
//
//	go run ./bench/flipspeed [-rounds 3] [-scale 20] [-pops 8]
package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/standin"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

func main() {
	rounds := flag.Int("rounds", 3, "rollbacks per strategy (medians are printed)")
	scale := flag.Float64("scale", 20, "how many times faster than CloudFront the stand-in runs")
	pops := flag.Int("pops", 8, "points of presence")
	flag.Parse()
	if err := run(*rounds, *scale, *pops); err != nil {
		fmt.Fprintln(os.Stderr, "flipspeed:", err)
		os.Exit(1)
	}
}

type result struct {
	allPops, deploy time.Duration
	phases          []phaseTime
	calls           map[string]int // API calls of the rollback, by operation
}

// phaseTime is one phase of the rollback: how long it took, and how long
// of that the stand-in itself made it wait (what CloudFront would).
type phaseTime struct {
	phase     releases.Phase
	took, own time.Duration
}

func run(rounds int, scale float64, pops int) error {
	d := func(real time.Duration) time.Duration { return time.Duration(float64(real) / scale) }
	fmt.Printf("stand-in: %d PoPs; distribution deploy %s, invalidation %s, key value store %s, min TTL %s (CloudFront's typical 90s, 30s, 5s, 1s scaled 1:%g)\n",
		pops, d(90*time.Second), d(30*time.Second), d(5*time.Second), d(time.Second), scale)
	out := map[string][]result{}
	for _, strategy := range []string{releases.DefaultStrategy, cloud.StrategyKVS} {
		for r := range rounds {
			res, err := once(strategy, pops, d)
			if err != nil {
				return fmt.Errorf("%s round %d: %w", strategy, r+1, err)
			}
			out[strategy] = append(out[strategy], res)
		}
	}
	fmt.Printf("%-12s %26s %26s %22s\n", "strategy", "rollback on every PoP", "deploy finished", "at CloudFront's pace")
	med := map[string]time.Duration{}
	for _, s := range []string{releases.DefaultStrategy, cloud.StrategyKVS} {
		all, dep := median(out[s], func(r result) time.Duration { return r.allPops }), median(out[s], func(r result) time.Duration { return r.deploy })
		med[s] = all
		fmt.Printf("%-12s %26s %26s %22s\n", s, all.Round(time.Millisecond), dep.Round(time.Millisecond), time.Duration(float64(all)*scale).Round(100*time.Millisecond))
	}
	fmt.Printf("kvs / origin-path: %.2f\n", float64(med[cloud.StrategyKVS])/float64(med[releases.DefaultStrategy]))

	// What deploybot adds: each phase's time less the stand-in's own wait
	// in it, scaled back to CloudFront's pace (deploybot's polling runs
	// scaled too, so the figure is what the default pacing adds).
	fmt.Printf("\n%-12s %-16s %12s %12s %12s %22s\n", "strategy", "phase", "took", "stand-in", "added", "added at CloudFront's")
	for _, s := range []string{releases.DefaultStrategy, cloud.StrategyKVS} {
		for i, p := range out[s][0].phases {
			took := median(out[s], func(r result) time.Duration { return r.phases[i].took })
			own := out[s][0].phases[i].own
			added := median(out[s], func(r result) time.Duration { return r.phases[i].took - r.phases[i].own })
			fmt.Printf("%-12s %-16s %12s %12s %12s %22s\n", s, p.phase, took.Round(time.Millisecond), own.Round(time.Millisecond),
				added.Round(time.Millisecond), time.Duration(float64(added)*scale).Round(10*time.Millisecond))
		}
	}
	fmt.Printf("\nAPI calls per rollback (first round):\n")
	for _, s := range []string{releases.DefaultStrategy, cloud.StrategyKVS} {
		calls := out[s][0].calls
		total := 0
		var ops []string
		for op, n := range calls {
			total += n
			ops = append(ops, fmt.Sprintf("%s %d", op, n))
		}
		sort.Strings(ops)
		fmt.Printf("%-12s %3d: %s\n", s, total, strings.Join(ops, ", "))
	}
	return nil
}

func median(rs []result, f func(result) time.Duration) time.Duration {
	var ds []time.Duration
	for _, r := range rs {
		ds = append(ds, f(r))
	}
	sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
	return ds[len(ds)/2]
}

// once publishes v1 and v2, makes v2 live, then rolls back and times how
// long until every PoP serves v1 again.
func once(strategy string, pops int, d func(time.Duration) time.Duration) (result, error) {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "deploybot-flipspeed-")
	if err != nil {
		return result{}, err
	}
	defer os.RemoveAll(dir)
	fr, cleanup, err := newFlipRig(ctx, dir, pops, d)
	defer cleanup()
	if err != nil {
		return result{}, err
	}
	if err := fr.seed(ctx); err != nil {
		return result{}, err
	}
	if strategy == cloud.StrategyKVS {
		if _, err := standin.SwitchToKVS(ctx, &cloud.KVSSetup{CF: fr.cfc, KVS: fr.kvsc, PollInterval: 100 * time.Millisecond}, fr.svc, fr.site.Name, d(5*time.Second)); err != nil {
			return result{}, err
		}
		time.Sleep(d(90*time.Second) + d(5*time.Second)) // the association and the key reach every PoP
	}
	for p := range pops {
		if b, _ := get(fr.edge, p); b != "<h1>v2</h1>" {
			return result{}, fmt.Errorf("before the rollback PoP %d serves %q", p, b)
		}
	}
	before := fr.srv.Calls()
	res, rb, err := fr.rollback(ctx, pops)
	if err != nil {
		return result{}, err
	}
	for op, n := range fr.srv.Calls() {
		if n -= before[op]; n > 0 {
			res.calls[op] = n
		}
	}
	// The stand-in's own waits: a distribution change is Deployed its
	// propagation after the update, an invalidation Completed its time
	// after it is made; a kvs key has no status, so its wait is the floor
	// deploybot keeps (the key's own reach is inside it). Other phases are
	// single calls, all deploybot's.
	own := map[releases.Phase]time.Duration{"propagate": d(90 * time.Second), "invalidate-wait": d(30 * time.Second)}
	if strategy == cloud.StrategyKVS {
		own[releases.PhaseVisible] = d(5 * time.Second)
	}
	for _, p := range rb.Deploy.Phases {
		res.phases = append(res.phases, phaseTime{phase: p.Phase, took: p.Ended.Sub(p.Started), own: own[p.Phase]})
	}
	return res, nil
}

// flipRig is one measurement's parts: the stand-in with its API and edge
// servers, the SDK's clients, and the release service deploying the site.
type flipRig struct {
	srv       *localaws.Server
	edge      string
	cfc       *cloudfront.Client
	kvsc      *cloudfrontkeyvaluestore.Client
	bucket    *cloud.S3Bucket
	site      releases.Site
	svc       *releases.Service
	closeDown []func()
}

// newFlipRig starts the stand-in, its times scaled by d. cleanup is to be
// called even when it fails.
func newFlipRig(ctx context.Context, dir string, pops int, d func(time.Duration) time.Duration) (fr *flipRig, cleanup func(), err error) {
	fr = &flipRig{}
	cleanup = func() {
		for i := len(fr.closeDown) - 1; i >= 0; i-- {
			fr.closeDown[i]()
		}
	}
	policy := localaws.CachingOptimized
	policy.MinTTL, policy.ErrorTTL = d(time.Second), d(10*time.Second)
	if fr.srv, err = localaws.New(localaws.Options{DataDir: dir, Propagation: d(90 * time.Second), Invalidation: d(30 * time.Second),
		KVSPropagation: d(5 * time.Second), Pops: pops, Cache: &policy}); err != nil {
		return nil, cleanup, err
	}
	if err := fr.srv.EnsureSite("EFLIP", "flip-site"); err != nil {
		return nil, cleanup, err
	}
	arn, err := fr.srv.EnsureKVS("flip")
	if err != nil {
		return nil, cleanup, err
	}
	api, stop, err := testaws.Serve(fr.srv.Handler())
	if err != nil {
		return nil, cleanup, err
	}
	fr.closeDown = append(fr.closeDown, stop)
	if fr.edge, stop, err = testaws.Serve(fr.srv.Edge()); err != nil {
		return nil, cleanup, err
	}
	fr.closeDown = append(fr.closeDown, stop)
	st := cloud.Settings{Region: "us-east-1", Endpoint: api, Credentials: cloud.StaticCredentials("flip", "flip")}
	s3c, cfc, err := cloud.NewClients(ctx, st)
	if err != nil {
		return nil, cleanup, err
	}
	if fr.kvsc, err = cloud.NewKVSClient(ctx, st); err != nil {
		return nil, cleanup, err
	}
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{})
	if err != nil {
		return nil, cleanup, err
	}
	fr.closeDown = append(fr.closeDown, func() { db.Close() })
	fr.cfc = cfc
	fr.site = releases.Site{Name: "www", Bucket: "flip-site", Prefix: "www/", DistributionID: "EFLIP", KVSARN: arn, URL: fr.edge}
	fr.bucket = &cloud.S3Bucket{Client: s3c}
	// deploybot's default pacing, scaled as the stand-in is: status every
	// second for the first two minutes, then up to every 5 s; the visible
	// phase asks the site every second.
	fr.svc = wiring.Service(wiring.Config{Sites: []releases.Site{fr.site}, Store: db, Bucket: fr.bucket, CF: cfc,
		Deploy:   wiring.Deploy{PollInterval: d(cloud.MaxPollInterval), FastPoll: d(cloud.FastPoll), VisibleInterval: d(time.Second)},
		Unshared: true, NoPIDCheck: true})
	return fr, cleanup, nil
}

// seed publishes v1 and v2 and promotes both, on origin-path: the kvs
// round then moves the site over.
func (fr *flipRig) seed(ctx context.Context) error {
	for _, v := range []string{"v1", "v2"} {
		body := "<h1>" + v + "</h1>"
		if err := fr.bucket.PutFile(ctx, fr.site, v, releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body)),
			ContentType: "text/html", CacheControl: "no-cache"}); err != nil {
			return err
		}
		if err := fr.bucket.WriteManifest(ctx, fr.site, &releases.Manifest{Version: v, PublishedAt: time.Now(), Stamped: true,
			Files: []releases.ManifestFile{{Path: "index.html", Size: int64(len(body))}}}); err != nil {
			return err
		}
	}
	for _, v := range []string{"v1", "v2"} {
		if _, err := fr.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "bench", NoVerify: true}, nil); err != nil {
			return err
		}
	}
	return nil
}

// rollback rolls the site back to v1, timing the deploy and the moment
// every PoP serves v1.
func (fr *flipRig) rollback(ctx context.Context, pops int) (result, *releases.Outcome, error) {
	start := time.Now()
	done := make(chan error, 1)
	var deployTook time.Duration
	var rb *releases.Outcome
	go func() {
		var err error
		rb, err = fr.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "bench"}, nil)
		deployTook = time.Since(start)
		done <- err
	}()
	onV1 := make([]bool, pops)
	var allPops time.Duration
	for allPops == 0 {
		n := 0
		for p := range pops {
			if !onV1[p] {
				b, _ := get(fr.edge, p)
				onV1[p] = b == "<h1>v1</h1>"
			}
			if onV1[p] {
				n++
			}
		}
		if n == pops {
			allPops = time.Since(start)
		}
		time.Sleep(5 * time.Millisecond)
	}
	if err := <-done; err != nil {
		return result{}, nil, err
	}
	return result{allPops: allPops, deploy: deployTook, calls: map[string]int{}}, rb, nil
}

func get(edge string, pop int) (string, error) {
	req, _ := http.NewRequest(http.MethodGet, edge+"/", nil)
	req.Header.Set(localaws.PopHeader, strconv.Itoa(pop))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return "", err
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	return string(b), err
}
