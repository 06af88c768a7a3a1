//go:build !nostandin

package cli

import (
	"context"
	"fmt"
	"io"
	"path/filepath"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/ticker"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// runDev is `deploybot dev`: the whole product on one machine with no
// account. The local AWS stand-in serves S3, CloudFront and an edge on
// loopback; a site "demo" gets two sample releases, v1 live; lines typed
// on stdin go through the same parser, runners and services as Slack, and
// the replies Slack would show are printed.
func runDev(ctx context.Context, env Env, args []string) error {
	f, err := parseDevFlags(env, args)
	if err != nil {
		return err
	}
	w, err := startDevWorld(ctx, env, f)
	if err != nil {
		return err
	}
	defer w.close()
	siteConfig, err := w.prepare(ctx, env, f)
	if err != nil {
		return err
	}
	// The setup's own first promote needs nobody's approval; yours do.
	w.svc.Sites[0].Approval = releases.Approval{Required: f.approvals}
	// The history goes to the bucket as it would from serve; the pusher
	// stops before the store closes.
	pushCtx, stopPush := context.WithCancel(ctx)
	pushed := make(chan struct{})
	defer func() { stopPush(); <-pushed }()
	go func() {
		defer close(pushed)
		ticker.Every(pushCtx, nil, 2*time.Second, func(ctx context.Context) { _, _ = w.svc.PushHistory(ctx) })
	}()
	printDevBanner(env.Stdout, f.data, w.siteURL, w.endpoint, siteConfig)
	return runConsole(ctx, env, &bot.Bot{Service: w.svc, Command: "/site"}, w.out)
}

// devFlags are dev's command line.
type devFlags struct {
	data, edgeAddr, apiAddr string
	approvals               int
	strategy                string
	standIn                 localaws.Options
}

func parseDevFlags(env Env, args []string) (devFlags, error) {
	fs := newFlagSet(env, "dev", "")
	data := fs.String("data", ".deploybot-dev", "`DIR` for the local buckets, distributions and store")
	edgeAddr := fs.String("edge", "127.0.0.1:8080", "`ADDR` (host:port) of the edge that serves the site (127.0.0.1:0 picks a free port)")
	apiAddr := fs.String("listen", "127.0.0.1:0", "`ADDR` (host:port) of the local S3 + CloudFront APIs")
	standIn := standInFlags(fs, 4*time.Second, 2*time.Second, time.Second)
	approvals := fs.Int("approvals", 0, "`N` approvals each promote of the demo site waits for (0 to 5; say `as NAME /site approve ID` to approve as someone else)")
	strategy := fs.String("strategy", releases.DefaultStrategy, "`STRATEGY` the demo site flips by: origin-path, or kvs (a key value store and a CloudFront Function; instant flips and previews)")
	pos, err := parse(fs, args)
	if err != nil {
		return devFlags{}, err
	}
	if len(pos) != 0 {
		return devFlags{}, usagef("dev takes no arguments")
	}
	if *approvals < 0 || *approvals > 5 {
		return devFlags{}, usagef("--approvals is 0 to 5")
	}
	if *strategy != releases.DefaultStrategy && *strategy != cloud.StrategyKVS {
		return devFlags{}, usagef("--strategy is %s or %s", releases.DefaultStrategy, cloud.StrategyKVS)
	}
	opts, err := standIn()
	if err != nil {
		return devFlags{}, err
	}
	return devFlags{data: *data, edgeAddr: *edgeAddr, apiAddr: *apiAddr, approvals: *approvals, strategy: *strategy, standIn: opts}, nil
}

func printDevBanner(w io.Writer, data, siteURL, endpoint, siteConfig string) {
	fmt.Fprintf(w, `
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
`, siteURL, endpoint, data, endpoint, filepath.Join(data, "deploybot.db"), siteConfig)
}
