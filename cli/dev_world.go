//go:build !nostandin

package cli

import (
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/internal/standin"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// The demo site's distribution and bucket in the stand-in.
const devDistID, devBucket = "EDEVDEMO", "demo-site"

// devWorld is what dev runs: the stand-in serving its API and edge on
// loopback, the store, and the service over them, wired as serve's.
type devWorld struct {
	aws      *localaws.Server
	endpoint string // the stand-in's API
	siteURL  string // the edge, with a trailing slash
	settings cloud.Settings
	cfc      *cloudfront.Client
	bucket   *cloud.S3Bucket
	svc      *releases.Service
	out      *consoleOut
	// close stops the servers and closes the store.
	close func()
}

// startDevWorld starts the stand-in and opens the store under f.data.
func startDevWorld(ctx context.Context, env Env, f devFlags) (*devWorld, error) {
	if err := os.MkdirAll(f.data, 0o755); err != nil {
		return nil, err
	}
	opts := f.standIn
	opts.DataDir = filepath.Join(f.data, "aws")
	srv, err := localaws.New(opts)
	if err != nil {
		return nil, err
	}
	if err := srv.EnsureSite(devDistID, devBucket); err != nil {
		return nil, err
	}
	w := &devWorld{aws: srv, out: &consoleOut{w: env.Stdout}}
	stopServers, err := w.serve(ctx, f)
	if err != nil {
		return nil, err
	}
	w.settings = cloud.Settings{Region: "us-east-1", Endpoint: w.endpoint, Credentials: cloud.StaticCredentials("dev", "dev")}
	s3c, cfc, err := cloud.NewClients(ctx, w.settings)
	if err != nil {
		stopServers()
		return nil, err
	}
	db, err := store.Open(filepath.Join(f.data, "deploybot.db"), store.Options{})
	if err != nil {
		stopServers()
		return nil, err
	}
	w.close = func() { db.Close(); stopServers() }
	w.cfc = cfc
	w.bucket = cloud.NewS3Bucket(s3c, w.settings.Observe)
	site := releases.Site{Name: "demo", Install: "dev", Bucket: devBucket, Prefix: "demo/", DistributionID: devDistID, Channel: "#demo", SkewReleases: 2,
		URL:     strings.TrimSuffix(w.siteURL, "/"),
		Routing: releases.DefaultRouting, Retention: releases.Policy{Keep: 10, KeepDeployed: 3, MinAge: 72 * time.Hour, Grace: time.Hour}}
	w.svc = wiring.Service(wiring.Config{Sites: []releases.Site{site}, Store: db, Bucket: w.bucket, CF: cfc, Logger: logger(env),
		Deploy: wiring.Deploy{Timeout: 5 * time.Minute, PollInterval: 500 * time.Millisecond, VisibleTimeout: time.Minute},
		// The console's user owns the machine: every name typed there
		// holds every role, and four eyes still compare those names.
		Access: &releases.Access{}})
	w.svc.OnApproval = w.out
	return w, nil
}

// serve serves the stand-in's API and edge on f's addresses; stop shuts
// both down.
func (w *devWorld) serve(ctx context.Context, f devFlags) (stop func(), err error) {
	apiLn, err := listen("--listen", f.apiAddr)
	if err != nil {
		return nil, err
	}
	edgeLn, err := listen("--edge", f.edgeAddr)
	if err != nil {
		apiLn.Close()
		return nil, err
	}
	api := &http.Server{Handler: w.aws.Handler(), ReadHeaderTimeout: 10 * time.Second}
	edge := &http.Server{Handler: w.aws.Edge(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = api.Serve(apiLn) }()
	go func() { _ = edge.Serve(edgeLn) }()
	w.endpoint = "http://" + apiLn.Addr().String()
	w.siteURL = "http://" + edgeLn.Addr().String() + "/"
	return func() {
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = api.Shutdown(shut)
		_ = edge.Shutdown(shut)
	}, nil
}

// prepare puts the demo site on f.strategy, publishes the sample
// releases and makes v1 live the first time; it returns the site's line
// of the configuration it amounts to.
func (w *devWorld) prepare(ctx context.Context, env Env, f devFlags) (siteConfig string, err error) {
	// The same --data may have run the other strategy last time. kvs ->
	// origin-path undoes kvs-setup (the association goes, the origin path
	// names the release the key holds) before anything reads the live
	// release; origin-path -> kvs is kvs-setup itself, below.
	kvsARN, err := w.aws.EnsureKVS("deploybot-dev")
	if err != nil {
		return "", err
	}
	kvsc, err := cloud.NewKVSClient(ctx, w.settings)
	if err != nil {
		return "", err
	}
	setup := &cloud.KVSSetup{CF: w.cfc, KVS: kvsc, Pages: w.bucket, PollInterval: 200 * time.Millisecond}
	if f.strategy == releases.DefaultStrategy {
		if err := w.originPath(ctx, env, setup, kvsARN, f.data); err != nil {
			return "", err
		}
	}
	if err := w.publishSamples(ctx, f.data); err != nil {
		return "", err
	}
	siteConfig = fmt.Sprintf("{name: demo, bucket: %s, prefix: demo/, distribution_id: %s}", devBucket, devDistID)
	if f.strategy == cloud.StrategyKVS {
		if err := devKVS(ctx, env, setup, w.svc, kvsARN, w.siteURL, f.standIn.KVSPropagation); err != nil {
			return "", err
		}
		siteConfig = fmt.Sprintf("{name: demo, bucket: %s, prefix: demo/, distribution_id: %s, strategy: kvs, kvs: {arn: %q}, url: %q}",
			devBucket, devDistID, kvsARN, w.svc.Sites[0].URL)
	}
	return siteConfig, w.firstPromote(ctx, env)
}

// originPath moves the demo site back from strategy kvs when the last run
// left it there, and sets up its routing.
func (w *devWorld) originPath(ctx context.Context, env Env, setup *cloud.KVSSetup, kvsARN, data string) error {
	site := w.svc.Sites[0]
	kvsSite := site
	kvsSite.KVSARN = kvsARN
	reverted, live, err := setup.Revert(ctx, kvsSite)
	if err != nil {
		return fmt.Errorf("moving the demo site back from strategy kvs: %w", err)
	}
	if reverted {
		fmt.Fprintf(env.Stdout, "strategy origin-path: %s was last run with --strategy kvs; the function is detached and the origin path names %s again (the edge switches over as the distribution deploys)\n", data, present.OrNone(live))
		if err := waitDeployed(ctx, w.cfc, devDistID); err != nil {
			return err
		}
	}
	// The routing a production site gets from routing-setup: folder
	// paths serve their index.html, missing pages 404.html.
	rep, err := (&cloud.RoutingSetup{CF: w.cfc, PollInterval: 200 * time.Millisecond}).Apply(ctx, site)
	if err != nil {
		return fmt.Errorf("setting up the demo site's routing: %w", err)
	}
	if rep.Updated {
		fmt.Fprintf(env.Stdout, "strategy origin-path: function %s routes folder paths to their index.html, missing pages get 404.html, and function %s names the release in every answer's %s (deployed)\n",
			cloud.RouterName(site), cloud.ReleaseHeaderName(site), strings.ToLower(releases.ReleaseHeader))
	}
	return nil
}

// publishSamples publishes the sample releases through the same code as
// production, once (a second `dev` on the same --data keeps its state).
func (w *devWorld) publishSamples(ctx context.Context, data string) error {
	site := w.svc.Sites[0]
	pub := &publish.Publisher{Bucket: w.bucket}
	for _, v := range []string{"v1", "v2"} {
		if _, err := w.bucket.ReadManifest(ctx, site, v); err == nil {
			continue
		}
		dir, err := sampleSite(data, v)
		if err != nil {
			return err
		}
		if _, err := pub.Publish(ctx, publish.Request{Site: site, Version: v, Commit: "sample-" + v, Message: "sample release " + v, Dir: dir, SkewReleases: site.SkewReleases}); err != nil {
			return err
		}
	}
	return nil
}

// firstPromote records the samples, makes v1 live when nothing is, and
// finishes what a killed dev left half done.
func (w *devWorld) firstPromote(ctx context.Context, env Env) error {
	name := w.svc.Sites[0].Name
	if _, err := w.svc.Sync(ctx, name); err != nil {
		return err
	}
	if cur, err := w.svc.Versions(ctx, name); err == nil && !anyLive(cur) {
		fmt.Fprintln(env.Stdout, "promoting the sample release v1 ...")
		if _, err := w.svc.Promote(releases.WithPrincipal(ctx, releases.System), releases.PromoteRequest{Site: name, Version: "v1", Actor: "dev", Reason: "first sample release"}, nil); err != nil {
			return err
		}
	}
	if _, err := w.svc.Recover(ctx, nil); err != nil {
		fmt.Fprintf(env.Stderr, "deploybot: recovering interrupted deploys: %v\n", err)
	}
	return nil
}

func anyLive(vs []releases.VersionInfo) bool {
	for _, v := range vs {
		if v.Live {
			return true
		}
	}
	return false
}

// sampleSite writes a small site that shows its version big and clear,
// with a fingerprinted stylesheet and script.
func sampleSite(data, version string) (string, error) {
	dir := filepath.Join(data, "samples", version)
	color := map[string]string{"v1": "#2563eb", "v2": "#16a34a"}[version]
	css := fmt.Sprintf("body{font-family:system-ui,sans-serif;margin:0;display:grid;place-items:center;height:100vh;background:%s;color:#fff}h1{font-size:12vw;margin:0}p{font-size:1.5rem}\n", color)
	js := fmt.Sprintf("document.getElementById('t').textContent='loaded '+new Date().toLocaleTimeString()+' (%s)';\n", version)
	cssName := fmt.Sprintf("assets/style.%08x.css", fingerprint(css))
	jsName := fmt.Sprintf("assets/app.%08x.js", fingerprint(js))
	html := fmt.Sprintf(`<!doctype html><html><head><meta charset="utf-8"><title>demo %[1]s</title><link rel="stylesheet" href="/%[2]s"></head>
<body><main><h1>%[1]s</h1><p>deploybot demo site, release %[1]s</p><p id="t"></p></main><script src="/%[3]s"></script></body></html>
`, version, cssName, jsName)
	page := func(title, text string) string {
		return fmt.Sprintf(`<!doctype html><html><head><meta charset="utf-8"><title>%[1]s</title><link rel="stylesheet" href="/%[2]s"></head>
<body><main><h1>%[1]s</h1><p>%[3]s</p><p><a href="/">home</a></p></main></body></html>
`, title, cssName, text)
	}
	files := map[string]string{"index.html": html, cssName: css, jsName: js,
		// A section page (/docs/ and /docs) and a 404 page, what a static
		// site generator writes: they show the site's routing at work.
		"docs/index.html": page("docs "+version, "a section of release "+version+", served for /docs/ and /docs"),
		"404.html":        page("404", "no such page in release "+version)}
	for name, body := range files {
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return "", err
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			return "", err
		}
	}
	return dir, nil
}

// fingerprint is the 32-bit FNV-1a hash of s, for asset names that
// change with their content.
func fingerprint(s string) uint32 {
	h := fnv.New32a()
	io.WriteString(h, s)
	return h.Sum32()
}

// waitDeployed waits until the distribution has deployed its last change,
// so that the first page a person opens shows what the console says.
func waitDeployed(ctx context.Context, cfc *cloudfront.Client, id string) error {
	w := cloudfront.NewDistributionDeployedWaiter(cfc, func(o *cloudfront.DistributionDeployedWaiterOptions) {
		o.MinDelay, o.MaxDelay = 200*time.Millisecond, time.Second
	})
	return w.Wait(ctx, &cloudfront.GetDistributionInput{Id: &id}, 2*time.Minute)
}

// devKVS moves the demo site onto strategy kvs with kvs-setup's code: a
// key value store, the generated function (which the stand-in's edge
// runs), the key, and the distribution's association.
func devKVS(ctx context.Context, env Env, setup *cloud.KVSSetup, svc *releases.Service, arn, siteURL string, propagation time.Duration) error {
	svc.Sites[0].KVSARN, svc.Sites[0].URL = arn, strings.TrimSuffix(siteURL, "/")
	// A kvs flip waits a little longer than the stand-in's propagation.
	rep, err := standin.SwitchToKVS(ctx, setup, svc, svc.Sites[0].Name, propagation+propagation/2)
	if err != nil {
		return fmt.Errorf("moving the demo site onto strategy kvs: %w", err)
	}
	if rep.Associated {
		key := "= " + rep.Key
		if rep.Key == "" {
			key = "not written yet (the first promote writes it)"
		}
		fmt.Fprintf(env.Stdout, "strategy kvs: function %s runs at the edge, key %s %s (deployed)\n", rep.Function, svc.Sites[0].Name, key)
	}
	return nil
}
