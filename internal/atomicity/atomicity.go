// Package atomicity measures whether visitors see broken pages while a
// site is flipped: browser-like clients load "/" and then every asset the
// page names, through the local edge's points of presence, while the real
// promote and rollback flow (releases.Service through aws-sdk-go-v2 to the
// localaws stand-in) flips the site again and again.
//
// A page load is broken when an asset it names is not served with the
// content its fingerprinted name promises: a 404 (the new folder lacks the
// old release's asset, or a cached 404), or other bytes.
package atomicity

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"math/rand/v2"
	"net/http"
	"net/http/cookiejar"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/standin"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// Config is one run.
type Config struct {
	Dir string // work directory (bucket, distribution, store)
	// Flips is how many promotes and rollbacks run (every fourth flip is
	// a rollback); PageLoads the least number of page loads: the run goes
	// on, flipping again, until both are reached.
	Flips, PageLoads int
	Clients          int // browsers loading pages at once; zero: 8
	Pops             int // edge points of presence; zero: 4
	// SkewReleases is publish's skew protection (releases carried); the
	// default is 2, what `deploybot publish` does without a setting.
	SkewReleases int
	// Propagation and Invalidation are the stand-in's windows; zero:
	// 400 ms and 200 ms, long enough for many page loads inside each.
	Propagation, Invalidation time.Duration
	// Faults are injected into every S3 and CloudFront call.
	Faults localaws.Faults
	// Strategy is how the site flips: origin-path (default) or kvs, set
	// up with kvs-setup after the first release, as an operator would.
	Strategy string
	// Gradual makes every promote a rolling release (strategy kvs): 10%,
	// then 50% of the visitors, no hold, then everyone. Each browser is
	// one visitor (its own user agent and cookie jar), so its pages and
	// their lazy loads meet one release per step.
	Gradual bool
	// Seed drives the run's chances: which PoP each page load asks, the
	// stand-in's PoPs and faults. Zero: one from the clock, reported in
	// Report.Seed, so that a run that failed can be replayed. (The flips'
	// timing against the page loads still varies from run to run.)
	Seed uint64
}

// Report is what a run saw.
type Report struct {
	PageLoads int            `json:"page_loads"`
	Requests  int            `json:"requests"`
	Flips     int            `json:"flips"`
	Promotes  int            `json:"promotes"`
	Rollbacks int            `json:"rollbacks"`
	Failed    int            `json:"failed_deploys"` // deploys that ended failed (only under faults)
	Broken    int            `json:"broken_page_loads"`
	Reasons   map[string]int `json:"reasons,omitempty"`
	Examples  []string       `json:"examples,omitempty"`
	Seconds   float64        `json:"seconds"`
	Skew      int            `json:"skew_releases"`
	Pops      int            `json:"pops"`
	Strategy  string         `json:"strategy"`
	Seed      uint64         `json:"seed"`
}

const distID, bucketName = "EATOMIC", "atomic-site"

var assetRef = regexp.MustCompile(`(?:src|href)="(/assets/[^"]+)"`)
var releaseMeta = regexp.MustCompile(`<meta name="release" content="([^"]+)">`)

// Run runs one measurement.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	cfg = cfg.withDefaults()
	rg, err := newRig(ctx, cfg)
	if err != nil {
		return nil, err
	}
	defer rg.close()
	v, err := rg.publishNext(ctx)
	if err != nil {
		return nil, err
	}
	if _, err := rg.svc.Promote(ctx, releases.PromoteRequest{Site: rg.site.Name, Version: v, Actor: "atomicity"}, nil); err != nil {
		return nil, fmt.Errorf("first promote: %w", err)
	}
	if cfg.Strategy == cloud.StrategyKVS {
		if err := moveToKVS(ctx, rg.aws, rg.svc, rg.apiURL, rg.cfc, cfg.Propagation); err != nil {
			return nil, err
		}
	}
	if cfg.Gradual {
		if cfg.Strategy != cloud.StrategyKVS {
			return nil, fmt.Errorf("a gradual run needs strategy kvs")
		}
		rg.svc.Sites[0].Rollout = releases.RolloutPolicy{Steps: []int{10, 50}}
	}
	rep := &Report{Reasons: map[string]int{}, Skew: cfg.SkewReleases, Pops: cfg.Pops, Strategy: rg.svc.Sites[0].Strategy, Seed: cfg.Seed}
	if rep.Strategy == "" {
		rep.Strategy = releases.DefaultStrategy
	}
	rg.aws.SetFaults(cfg.Faults)

	start := time.Now()
	b := startBrowsers(ctx, cfg, rg.edgeURL, rep)
	flipErr := rg.flips(ctx, cfg, rep, &b.loads)
	b.stop()
	rep.PageLoads, rep.Requests = int(b.loads.Load()), int(b.requests.Load())
	rep.Seconds = time.Since(start).Seconds()
	return rep, flipErr
}

func (cfg Config) withDefaults() Config {
	if cfg.Clients <= 0 {
		cfg.Clients = 8
	}
	if cfg.Pops <= 0 {
		cfg.Pops = 4
	}
	if cfg.Propagation <= 0 {
		cfg.Propagation = 400 * time.Millisecond
	}
	if cfg.Invalidation <= 0 {
		cfg.Invalidation = 200 * time.Millisecond
	}
	if cfg.Seed == 0 {
		cfg.Seed = uint64(time.Now().UnixNano())
	}
	return cfg
}

// rig is a run's parts: the stand-in and its two servers, the store, and
// the release service and publisher deploying one site through them.
type rig struct {
	aws             *localaws.Server
	apiURL, edgeURL string
	cfc             *cloudfront.Client
	site            releases.Site
	svc             *releases.Service
	pub             *publish.Publisher
	dir             string
	skew            int
	next            int // the last version published
	closers         []func()
}

func newRig(ctx context.Context, cfg Config) (_ *rig, err error) {
	rg := &rig{dir: cfg.Dir, skew: cfg.SkewReleases}
	defer func() {
		if err != nil {
			rg.close()
		}
	}()
	rg.aws, err = localaws.New(localaws.Options{DataDir: filepath.Join(cfg.Dir, "aws"), Propagation: cfg.Propagation,
		Invalidation: cfg.Invalidation, Pops: cfg.Pops, KVSPropagation: cfg.Invalidation, Seed: cfg.Seed})
	if err != nil {
		return nil, err
	}
	if err := rg.aws.EnsureSite(distID, bucketName); err != nil {
		return nil, err
	}
	var stop func()
	if rg.apiURL, stop, err = testaws.Serve(rg.aws.Handler()); err != nil {
		return nil, err
	}
	rg.closers = append(rg.closers, stop)
	if rg.edgeURL, stop, err = testaws.Serve(rg.aws.Edge()); err != nil {
		return nil, err
	}
	rg.closers = append(rg.closers, stop)
	s3c, cfc, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: rg.apiURL, Credentials: cloud.StaticCredentials("atomic", "atomic")})
	if err != nil {
		return nil, err
	}
	rg.cfc = cfc
	db, err := store.Open(filepath.Join(cfg.Dir, "deploybot.db"), store.Options{})
	if err != nil {
		return nil, err
	}
	rg.closers = append(rg.closers, func() { db.Close() })
	rg.site = releases.Site{Name: "www", Bucket: bucketName, Prefix: "www/", DistributionID: distID, SkewReleases: cfg.SkewReleases}
	bucket := &cloud.S3Bucket{Client: s3c}
	rg.svc = wiring.Service(wiring.Config{Sites: []releases.Site{rg.site}, Store: db, Bucket: bucket, CF: cfc,
		Deploy: wiring.Deploy{PollInterval: 20 * time.Millisecond}, Unshared: !cfg.Gradual, NoProbes: true, NoPIDCheck: true})
	rg.pub = &publish.Publisher{Bucket: bucket}
	return rg, nil
}

// close stops what newRig started, last first.
func (rg *rig) close() {
	for i := len(rg.closers) - 1; i >= 0; i-- {
		rg.closers[i]()
	}
}

// publishNext builds and publishes the next version.
func (rg *rig) publishNext(ctx context.Context) (string, error) {
	rg.next++
	v := fmt.Sprintf("v%d", rg.next)
	dir := filepath.Join(rg.dir, "build", v)
	if err := writeBuild(dir, v); err != nil {
		return "", err
	}
	_, err := rg.pub.Publish(ctx, publish.Request{Site: rg.site, Version: v, Dir: dir, SkewReleases: rg.skew})
	return v, err
}

// flips promotes and rolls back (every fourth flip) until cfg's flips and
// page loads are both reached.
func (rg *rig) flips(ctx context.Context, cfg Config, rep *Report, loads *atomic.Int64) error {
	for i := 1; ctx.Err() == nil && (i <= cfg.Flips || loads.Load() < int64(cfg.PageLoads)); i++ {
		var err error
		if i%4 == 0 {
			_, err = rg.svc.Rollback(ctx, releases.RollbackRequest{Site: rg.site.Name, Actor: "atomicity"}, nil)
			rep.Rollbacks++
		} else {
			var v string
			if v, err = rg.publishNext(ctx); err != nil {
				return fmt.Errorf("publish %s: %w", v, err)
			}
			_, err = rg.svc.Promote(ctx, releases.PromoteRequest{Site: rg.site.Name, Version: v, Actor: "atomicity", Gradual: cfg.Gradual}, nil)
			rep.Promotes++
		}
		rep.Flips++
		if err != nil {
			// Under faults a deploy may fail after its retries; it must
			// fail cleanly (the reliability tests check the record). The
			// measurement goes on with the next flip.
			if cfg.Faults == (localaws.Faults{}) {
				return fmt.Errorf("flip %d: %w", i, err)
			}
			rep.Failed++
		}
	}
	return nil
}

// browsers are cfg.Clients clients loading pages until stopped, counting
// into the report (under mu) what they find broken.
type browsers struct {
	loads, requests atomic.Int64
	done            chan struct{}
	wg              sync.WaitGroup
	mu              sync.Mutex
}

func startBrowsers(ctx context.Context, cfg Config, edgeURL string, rep *Report) *browsers {
	b := &browsers{done: make(chan struct{})}
	transport := &http.Transport{MaxIdleConnsPerHost: cfg.Clients * 2}
	for c := range cfg.Clients {
		b.wg.Add(1)
		go func() {
			defer b.wg.Done()
			// One visitor: its own cookie jar (the cohort cookie) and
			// user agent (a first visit's cohort comes from it).
			jar, _ := cookiejar.New(nil)
			client := &http.Client{Timeout: 30 * time.Second, Transport: &agent{rt: transport, name: fmt.Sprintf("atomicity-browser-%d", c)}, Jar: jar}
			rng := rand.New(rand.NewPCG(uint64(c), cfg.Seed))
			for {
				select {
				case <-b.done:
					return
				default:
				}
				reason, detail, n := loadPage(ctx, client, edgeURL, rng.IntN(cfg.Pops), rng)
				b.loads.Add(1)
				b.requests.Add(int64(n))
				if reason != "" {
					b.mu.Lock()
					rep.Broken++
					rep.Reasons[reason]++
					if len(rep.Examples) < 5 {
						rep.Examples = append(rep.Examples, detail)
					}
					b.mu.Unlock()
				}
			}
		}()
	}
	return b
}

// agent sends each request as one browser.
type agent struct {
	rt   http.RoundTripper
	name string
}

func (a *agent) RoundTrip(r *http.Request) (*http.Response, error) {
	r = r.Clone(r.Context())
	r.Header.Set("User-Agent", a.name)
	return a.rt.RoundTrip(r)
}

// stop ends the page loads and waits for the last.
func (b *browsers) stop() {
	close(b.done)
	b.wg.Wait()
}

// loadPage is one browser page load at one PoP: "/" and then each asset
// it names, after the moment a browser needs to parse the page. It returns
// why the load is broken ("" when it is not), a detail, and the requests.
func loadPage(ctx context.Context, c *http.Client, edge string, pop int, rng *rand.Rand) (reason, detail string, requests int) {
	status, page, err := get(ctx, c, edge+"/", pop)
	requests++
	if err != nil {
		return "transport error", err.Error(), requests
	}
	if status != http.StatusOK {
		return "page " + strconv.Itoa(status), fmt.Sprintf("pop %d: / answered %d", pop, status), requests
	}
	m := releaseMeta.FindSubmatch(page)
	if m == nil {
		return "page without release", fmt.Sprintf("pop %d: %q", pop, page), requests
	}
	release := string(m[1])
	time.Sleep(time.Duration(rng.IntN(5000)) * time.Microsecond)
	for _, ref := range assetRef.FindAllSubmatch(page, -1) {
		p := string(ref[1])
		status, body, err := get(ctx, c, edge+p, pop)
		requests++
		switch {
		case err != nil:
			return "transport error", err.Error(), requests
		case status != http.StatusOK:
			return fmt.Sprintf("asset %d", status), fmt.Sprintf("pop %d: page of %s names %s: %d", pop, release, p, status), requests
		case !promised(p, body):
			return "asset with other content", fmt.Sprintf("pop %d: page of %s names %s: other bytes", pop, release, p), requests
		}
	}
	return "", "", requests
}

// promised reports whether body is what the fingerprint in name promises.
func promised(name string, body []byte) bool {
	m := fingerprint.FindStringSubmatch(name)
	if m == nil {
		return false
	}
	sum := sha256.Sum256(body)
	return hex.EncodeToString(sum[:])[:len(m[1])] == m[1]
}

var fingerprint = regexp.MustCompile(`\.([0-9a-f]{10})\.[a-z]+$`)

func get(ctx context.Context, c *http.Client, url string, pop int) (int, []byte, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return 0, nil, err
	}
	req.Header.Set(localaws.PopHeader, strconv.Itoa(pop))
	resp, err := c.Do(req)
	if err != nil {
		return 0, nil, err
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	return resp.StatusCode, body, err
}

// writeBuild writes the build of one release: a page naming its
// fingerprinted assets (two of its own, one shared by every release, as a
// vendor bundle is) and the release it belongs to.
func writeBuild(dir, version string) error {
	assets := map[string]string{
		"app.js":    fmt.Sprintf("console.log(%q);\n", "app of "+version),
		"app.css":   fmt.Sprintf("body::after{content:%q}\n", "style of "+version),
		"vendor.js": "/* vendor bundle, the same in every release */\n",
	}
	var names []string
	for name, body := range assets {
		sum := sha256.Sum256([]byte(body))
		ext := filepath.Ext(name)
		fp := name[:len(name)-len(ext)] + "." + hex.EncodeToString(sum[:])[:10] + ext
		if err := writeFile(filepath.Join(dir, "assets", fp), body); err != nil {
			return err
		}
		names = append(names, fp)
	}
	sort.Strings(names)
	page := fmt.Sprintf("<!doctype html>\n<meta name=\"release\" content=\"%s\">\n", version)
	for _, n := range names {
		if filepath.Ext(n) == ".css" {
			page += fmt.Sprintf("<link rel=\"stylesheet\" href=\"/assets/%s\">\n", n)
		} else {
			page += fmt.Sprintf("<script src=\"/assets/%s\"></script>\n", n)
		}
	}
	return writeFile(filepath.Join(dir, "index.html"), page)
}

func writeFile(p, body string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	return os.WriteFile(p, []byte(body), 0o644)
}

// moveToKVS runs kvs-setup for the site and switches its strategy, then
// waits until every PoP runs the function.
func moveToKVS(ctx context.Context, aws *localaws.Server, svc *releases.Service, apiURL string, cfc *cloudfront.Client, propagation time.Duration) error {
	arn, err := aws.EnsureKVS("atomicity")
	if err != nil {
		return err
	}
	kvsc, err := cloud.NewKVSClient(ctx, cloud.Settings{Region: "us-east-1", Endpoint: apiURL, Credentials: cloud.StaticCredentials("atomic", "atomic")})
	if err != nil {
		return err
	}
	svc.Sites[0].KVSARN = arn
	if _, err := standin.SwitchToKVS(ctx, &cloud.KVSSetup{CF: cfc, KVS: kvsc, PollInterval: 20 * time.Millisecond}, svc, svc.Sites[0].Name, propagation); err != nil {
		return fmt.Errorf("kvs-setup: %w", err)
	}
	time.Sleep(propagation + propagation/4)
	return nil
}
