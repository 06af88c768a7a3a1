//go:build !nostandin

package cli

import (
	"bufio"
	"context"
	"fmt"
	"hash/fnv"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/standin"
	"github.com/deploybot/deploybot/internal/ticker"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// runDev is `deploybot dev`: the whole product on one machine with no
// account. The local AWS stand-in serves S3, CloudFront and an edge on
// loopback; a site "demo" gets two sample releases, v1 live; lines typed
// on stdin go through the same parser, runners and services as Slack, and
// the replies Slack would show are printed.
func runDev(ctx context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "dev", "")
	data := fs.String("data", ".deploybot-dev", "`DIR` for the local buckets, distributions and store")
	edgeAddr := fs.String("edge", "127.0.0.1:8080", "`ADDR` (host:port) of the edge that serves the site (127.0.0.1:0 picks a free port)")
	apiAddr := fs.String("listen", "127.0.0.1:0", "`ADDR` (host:port) of the local S3 + CloudFront APIs")
	standIn := standInFlags(fs, 4*time.Second, 2*time.Second, time.Second)
	approvals := fs.Int("approvals", 0, "`N` approvals each promote of the demo site waits for (0 to 5; say `as NAME /site approve ID` to approve as someone else)")
	strategy := fs.String("strategy", releases.DefaultStrategy, "`STRATEGY` the demo site flips by: origin-path, or kvs (a key value store and a CloudFront Function; instant flips and previews)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("dev takes no arguments")
	}
	if *approvals < 0 || *approvals > 5 {
		return usagef("--approvals is 0 to 5")
	}
	if *strategy != releases.DefaultStrategy && *strategy != cloud.StrategyKVS {
		return usagef("--strategy is %s or %s", releases.DefaultStrategy, cloud.StrategyKVS)
	}
	opts, err := standIn()
	if err != nil {
		return err
	}
	if err := os.MkdirAll(*data, 0o755); err != nil {
		return err
	}
	opts.DataDir = filepath.Join(*data, "aws")
	srv, err := localaws.New(opts)
	if err != nil {
		return err
	}
	const distID, bucketName = "EDEVDEMO", "demo-site"
	if err := srv.EnsureSite(distID, bucketName); err != nil {
		return err
	}
	apiLn, err := listen("--listen", *apiAddr)
	if err != nil {
		return err
	}
	edgeLn, err := listen("--edge", *edgeAddr)
	if err != nil {
		apiLn.Close()
		return err
	}
	api := &http.Server{Handler: srv.Handler(), ReadHeaderTimeout: 10 * time.Second}
	edge := &http.Server{Handler: srv.Edge(), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = api.Serve(apiLn) }()
	go func() { _ = edge.Serve(edgeLn) }()
	defer func() {
		shut, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
		defer cancel()
		_ = api.Shutdown(shut)
		_ = edge.Shutdown(shut)
	}()
	endpoint := "http://" + apiLn.Addr().String()
	siteURL := "http://" + edgeLn.Addr().String() + "/"

	settings := cloud.Settings{Region: "us-east-1", Endpoint: endpoint, Credentials: cloud.StaticCredentials("dev", "dev")}
	s3c, cfc, err := cloud.NewClients(ctx, settings)
	if err != nil {
		return err
	}
	db, err := store.Open(filepath.Join(*data, "deploybot.db"), store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	site := releases.Site{Name: "demo", Install: "dev", Bucket: bucketName, Prefix: "demo/", DistributionID: distID, Channel: "#demo", SkewReleases: 2,
		URL:     strings.TrimSuffix(siteURL, "/"),
		Routing: releases.DefaultRouting, Retention: releases.Policy{Keep: 10, KeepDeployed: 3, MinAge: 72 * time.Hour, Grace: time.Hour}}
	bucket := cloud.NewS3Bucket(s3c, settings.Observe)
	svc := wiring.Service(wiring.Config{Sites: []releases.Site{site}, Store: db, Bucket: bucket, CF: cfc, Logger: logger(env),
		Deploy: wiring.Deploy{Timeout: 5 * time.Minute, PollInterval: 500 * time.Millisecond, VisibleTimeout: time.Minute},
		// The console's user owns the machine: every name typed there
		// holds every role, and four eyes still compare those names.
		Access: &releases.Access{}})
	out := &consoleOut{w: env.Stdout}
	svc.OnApproval = out

	// The same --data may have run the other strategy last time. kvs ->
	// origin-path undoes kvs-setup (the association goes, the origin path
	// names the release the key holds) before anything reads the live
	// release; origin-path -> kvs is kvs-setup itself, below.
	kvsARN, err := srv.EnsureKVS("deploybot-dev")
	if err != nil {
		return err
	}
	kvsc, err := cloud.NewKVSClient(ctx, settings)
	if err != nil {
		return err
	}
	setup := &cloud.KVSSetup{CF: cfc, KVS: kvsc, Pages: bucket, PollInterval: 200 * time.Millisecond}
	if *strategy == releases.DefaultStrategy {
		kvsSite := site
		kvsSite.KVSARN = kvsARN
		reverted, live, err := setup.Revert(ctx, kvsSite)
		if err != nil {
			return fmt.Errorf("moving the demo site back from strategy kvs: %w", err)
		}
		if reverted {
			fmt.Fprintf(env.Stdout, "strategy origin-path: %s was last run with --strategy kvs; the function is detached and the origin path names %s again (the edge switches over as the distribution deploys)\n", *data, orNone(live))
			if err := waitDeployed(ctx, cfc, distID); err != nil {
				return err
			}
		}
		// The routing a production site gets from routing-setup: folder
		// paths serve their index.html, missing pages 404.html.
		rep, err := (&cloud.RoutingSetup{CF: cfc, PollInterval: 200 * time.Millisecond}).Apply(ctx, site)
		if err != nil {
			return fmt.Errorf("setting up the demo site's routing: %w", err)
		}
		if rep.Updated {
			fmt.Fprintf(env.Stdout, "strategy origin-path: function %s routes folder paths to their index.html, missing pages get 404.html, and function %s names the release in every answer's %s (deployed)\n",
				cloud.RouterName(site), cloud.ReleaseHeaderName(site), strings.ToLower(releases.ReleaseHeader))
		}
	}

	// Sample releases, published and promoted through the same code as
	// production, once (a second `dev` on the same --data keeps its state).
	pub := &publish.Publisher{Bucket: bucket}
	for _, v := range []string{"v1", "v2"} {
		if _, err := bucket.ReadManifest(ctx, site, v); err == nil {
			continue
		}
		dir, err := sampleSite(*data, v)
		if err != nil {
			return err
		}
		if _, err := pub.Publish(ctx, publish.Request{Site: site, Version: v, Commit: "sample-" + v, Message: "sample release " + v, Dir: dir, SkewReleases: site.SkewReleases}); err != nil {
			return err
		}
	}
	siteConfig := fmt.Sprintf("{name: demo, bucket: %s, prefix: demo/, distribution_id: %s}", bucketName, distID)
	if *strategy == cloud.StrategyKVS {
		if err := devKVS(ctx, env, setup, svc, kvsARN, siteURL, opts.KVSPropagation); err != nil {
			return err
		}
		siteConfig = fmt.Sprintf("{name: demo, bucket: %s, prefix: demo/, distribution_id: %s, strategy: kvs, kvs: {arn: %q}, url: %q}",
			bucketName, distID, kvsARN, svc.Sites[0].URL)
	}
	if _, err := svc.Sync(ctx, site.Name); err != nil {
		return err
	}
	if cur, err := svc.Versions(ctx, site.Name); err == nil && !anyLive(cur) {
		fmt.Fprintln(env.Stdout, "promoting the sample release v1 ...")
		if _, err := svc.Promote(releases.WithPrincipal(ctx, releases.System), releases.PromoteRequest{Site: site.Name, Version: "v1", Actor: "dev", Reason: "first sample release"}, nil); err != nil {
			return err
		}
	}
	if _, err := svc.Recover(ctx, nil); err != nil {
		fmt.Fprintf(env.Stderr, "deploybot: recovering interrupted deploys: %v\n", err)
	}
	// The setup's own first promote needs nobody's approval; yours do.
	svc.Sites[0].Approval = releases.Approval{Required: *approvals}
	// The history goes to the bucket as it would from serve; the pusher
	// stops before the store closes.
	pushCtx, stopPush := context.WithCancel(ctx)
	pushed := make(chan struct{})
	defer func() { stopPush(); <-pushed }()
	go func() {
		defer close(pushed)
		ticker.Every(pushCtx, nil, 2*time.Second, func(ctx context.Context) { _, _ = svc.PushHistory(ctx) })
	}()

	fmt.Fprintf(env.Stdout, `
deploybot dev is running.

  site:      %s   (open it in a browser; it shows the live release)
  S3 + CloudFront API (local stand-in): %s
  data:      %s

The configuration it amounts to:
  install: dev
  aws: {endpoint: %q}
  store: {path: %s}
  sites:
    - %s

Type commands as you would in Slack, for example:
  /site promote v2 trying it out
  /site versions
  /site status
  /site rollback
  /site diff v1 v2
  /site preview v2      (with --strategy kvs: a link that shows v2 to you alone)
  /site help
Ctrl-D or Ctrl-C quits.
`, siteURL, endpoint, *data, endpoint, filepath.Join(*data, "deploybot.db"), siteConfig)

	b := &bot.Bot{Service: svc, Command: "/site"}
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(env.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		fmt.Fprint(env.Stdout, "> ")
		select {
		case <-ctx.Done():
			fmt.Fprintln(env.Stdout)
			return nil
		case line, ok := <-lines:
			if !ok {
				fmt.Fprintln(env.Stdout)
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			user, rest := consoleUser(line)
			text, ok := strings.CutPrefix(rest, "/site")
			if !ok {
				out.printf("(commands start with /site, e.g. /site help; \"as NAME /site ...\" acts as someone else)\n")
				continue
			}
			req := bot.Request{Cmd: bot.Parse(text, b.SiteNames()), UserID: user, Channel: "#demo", Door: "console"}
			b.Handle(ctx, req, out)
		}
	}
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

// consoleName is who a console line may act as: "as bob /site approve
// ID", so one person can try what needs two (an approval).
var consoleName = regexp.MustCompile(`^as ([a-z][a-z0-9_-]{0,31}) +`)

// consoleUser splits a console line into who typed it ("you" unless it
// says "as NAME") and the command.
func consoleUser(line string) (user, rest string) {
	line = strings.TrimSpace(line)
	if m := consoleName.FindStringSubmatch(line); m != nil {
		return m[1], strings.TrimSpace(line[len(m[0]):])
	}
	return "you", line
}

// ApprovalChanged prints an approval request's card as it changes, as
// Slack would show it in the site's channel.
func (c *consoleOut) ApprovalChanged(_ context.Context, site releases.Site, a releases.ApprovalRequest) {
	c.printf("[%s] approval card: %s\n", site.Channel, indent(plain(bot.ApprovalMessage(site, a).Text)))
}

// consoleOut prints what Slack would show: private replies, channel
// messages, and a deploy's card and thread as lines.
type consoleOut struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *consoleOut) printf(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format, a...)
}

func (c *consoleOut) Private(_ context.Context, _ bot.Request, text bot.Mrkdwn) {
	c.printf("[only you] %s\n", indent(plain(text)))
}

func (c *consoleOut) Public(_ context.Context, req bot.Request, m bot.Message) {
	c.printf("[%s] %s\n", req.Channel, indent(plain(m.Text)))
}

// slackLink is Slack's link syntax, <URL|label> or <URL>.
var slackLink = regexp.MustCompile(`<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>`)

// plain turns Slack's link syntax into the bare URL, which a terminal
// makes clickable and a person can copy, and escaped characters back into
// themselves; the rest of the text is as Slack would show it.
func plain(text bot.Mrkdwn) string {
	return bot.Mrkdwn(slackLink.ReplaceAllString(string(text), "$1")).Plain()
}

func (c *consoleOut) Deploy(_ context.Context, req bot.Request, site releases.Site) bot.DeployView {
	return &consoleDeploy{c: c, channel: site.Channel}
}

type consoleDeploy struct {
	c       *consoleOut
	channel string
	started time.Time
}

func (d *consoleDeploy) Event(e releases.Event) {
	if d.started.IsZero() {
		d.started = e.Deploy.StartedAt
	}
	switch e.Type {
	case releases.EventDeployStarted, releases.EventDeployResumed:
		d.c.printf("[%s] card: %s\n", d.channel, plain(bot.Card(bot.CardState{Deploy: e.Deploy, Phase: "starting"}).Text))
	case releases.EventDeployFinished:
		d.c.printf("[%s] card: %s\n", d.channel, plain(bot.Card(bot.CardState{Deploy: e.Deploy, Result: "done", Elapsed: e.Elapsed}).Text))
		d.c.printf("[%s]   └ %s\n", d.channel, plain(bot.LiveMessage(e.Deploy, e.Elapsed).Text))
		return
	case releases.EventDeployFailed:
		d.c.printf("[%s] card: %s\n", d.channel, plain(bot.Card(bot.CardState{Deploy: e.Deploy, Result: "failed", Error: bot.ErrorMessage(e.Err), Elapsed: e.Elapsed}).Text))
	}
	if line := bot.ThreadLine(e); line != "" {
		d.c.printf("[%s]   └ %s\n", d.channel, plain(line))
	}
}

func (d *consoleDeploy) Done(*releases.Outcome, error) {}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }

func orNone(v string) string {
	if v == "" {
		return "no release"
	}
	return v
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
