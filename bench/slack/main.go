// Command slack counts what deploybot asks of Slack's Web API at a busy
// team's scale, against the fake Slack (the model of Slack the tests use,
// which answers 429 with Retry-After past a method's budget):
//
//   - a promote with 300 kept releases, each with its notice: the
//     chat.update and chat.postMessage calls it makes, notices included;
//
//   - a prune that retires 300 notices: the calls in the busiest minute;
//
//   - a 429 storm (Retry-After: 45, budgets far below the deploy's needs)
//     during a promote: whether any card, thread line or live reply is
//     lost.
//
//     go run ./bench/slack [-kept 300] [-storm=true]
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slackbot"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// tb is what the fake Slack needs of a test, for a program.
type tb struct{ cleanups []func() }

func (*tb) Helper()                           {}
func (*tb) Fatal(args ...any)                 { panic(fmt.Sprint(args...)) }
func (*tb) Fatalf(format string, args ...any) { panic(fmt.Sprintf(format, args...)) }
func (t *tb) Cleanup(f func())                { t.cleanups = append(t.cleanups, f) }
func (t *tb) done() {
	for i := len(t.cleanups) - 1; i >= 0; i-- {
		t.cleanups[i]()
	}
}

func main() {
	kept := flag.Int("kept", 300, "releases kept, each with a notice")
	storm := flag.Bool("storm", true, "also run the 429 storm (some two minutes)")
	flag.Parse()
	if err := run(*kept, *storm); err != nil {
		fmt.Fprintln(os.Stderr, "slack bench:", err)
		os.Exit(1)
	}
}

// world is one site on the stand-in with kept releases and their notices,
// and a bot connected to a fake Slack.
type world struct {
	fake  *slackfake.Server
	bot   *slackbot.Slack
	svc   *releases.Service
	site  releases.Site
	lost  atomic.Int64
	stop  func()
	names []string
}

func setup(ctx context.Context, t *tb, dir string, kept int) (*world, error) {
	srv, err := localaws.New(localaws.Options{DataDir: dir})
	if err != nil {
		return nil, err
	}
	if err := srv.EnsureSite("ESLACK", "slack-site"); err != nil {
		return nil, err
	}
	api, stop, err := testaws.Serve(srv.Handler())
	if err != nil {
		return nil, err
	}
	t.Cleanup(stop)
	s3c, cfc, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: api, Credentials: cloud.StaticCredentials("bench", "bench")})
	if err != nil {
		return nil, err
	}
	site := releases.Site{Name: "www", Bucket: "slack-site", Prefix: "www/", DistributionID: "ESLACK", Channel: "CREL",
		Retention: releases.Policy{Keep: 2, KeepDeployed: 1, MinAge: time.Nanosecond}}
	bucket := &cloud.S3Bucket{Client: s3c}
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{})
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { db.Close() })
	svc := wiring.Service(wiring.Config{Sites: []releases.Site{site}, Store: db, Bucket: bucket, CF: cfc,
		Deploy: wiring.Deploy{PollInterval: 10 * time.Millisecond, FastPoll: 10 * time.Millisecond}, Unshared: true, NoProbes: true, NoPIDCheck: true})
	w := &world{svc: svc, site: site}
	if w.names, err = seedReleases(ctx, bucket, site, kept); err != nil {
		return nil, err
	}
	if _, err := svc.Sync(ctx, site.Name); err != nil {
		return nil, err
	}
	// The middle release is live, and every kept release has its notice,
	// showing what it shows with that release live (posted earlier, as
	// the releases came: not what is counted here).
	mid := w.names[kept/2]
	if _, err := svc.Promote(ctx, releases.PromoteRequest{Site: site.Name, Version: mid, Actor: "bench", NoVerify: true}, nil); err != nil {
		return nil, err
	}
	if err := w.startBot(ctx, t); err != nil {
		return nil, err
	}
	return w, nil
}

// quiet waits until no call to Slack's Web API came for d.
// seedReleases publishes kept releases, a minute apart in the past.
func seedReleases(ctx context.Context, bucket *cloud.S3Bucket, site releases.Site, kept int) ([]string, error) {
	var names []string
	t0 := time.Now().Add(-time.Duration(kept+1) * time.Minute)
	for i := range kept {
		v := fmt.Sprintf("v%03d", i+1)
		body := "<h1>" + v + "</h1>"
		if err := bucket.PutFile(ctx, site, v, releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
			return nil, err
		}
		if err := bucket.WriteManifest(ctx, site, &releases.Manifest{Version: v, PublishedAt: t0.Add(time.Duration(i) * time.Minute),
			Files: []releases.ManifestFile{{Path: "index.html", Size: int64(len(body))}}}); err != nil {
			return nil, err
		}
		names = append(names, v)
	}
	return names, nil
}

// startBot starts the fake Slack, posts each release's notice, and runs
// the bot until it is connected.
func (w *world) startBot(ctx context.Context, t *tb) error {
	w.fake = slackfake.New(t)
	w.fake.Mu.Lock()
	w.fake.Channels["CREL"] = slackfake.Channel{ID: "CREL", Name: "releases"}
	w.fake.Mu.Unlock()
	b := &bot.Bot{Service: w.svc, Command: "/site"}
	var err error
	w.bot, err = slackbot.New("xapp-1-bench", "xoxb-bench", w.fake.APIURL(), b, nil)
	if err != nil {
		return err
	}
	w.bot.Lost = func(string) { w.lost.Add(1) }
	if err := w.postNotices(ctx, b); err != nil {
		return err
	}
	runCtx, cancel := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- w.bot.Run(runCtx) }()
	w.stop = func() { cancel(); <-done }
	deadline := time.Now().Add(10 * time.Second)
	for w.fake.Live() == 0 {
		if time.Now().After(deadline) {
			return errors.New("the bot did not connect to the fake Slack")
		}
		time.Sleep(10 * time.Millisecond)
	}
	return nil
}

// postNotices posts every kept release's notice, linked to the release.
func (w *world) postNotices(ctx context.Context, b *bot.Bot) error {
	live := b.LiveNow(ctx, w.site)
	poster := slack.New("xoxb-bench", slack.OptionAPIURL(w.fake.APIURL()))
	for _, v := range w.names {
		r, err := w.svc.Release(ctx, w.site.Name, v)
		if err != nil {
			return err
		}
		st := bot.NoticeStateOf(r, live)
		_, ts, err := poster.PostMessageContext(ctx, "CREL", slack.MsgOptionText("notice of "+v, false))
		if err != nil {
			return err
		}
		link := fmt.Sprintf("CREL %s %s", ts, st.Key(v))
		if err := w.svc.SetReleaseLink(ctx, w.site.Name, v, "slack", link); err != nil {
			return err
		}
	}
	return nil
}

func (w *world) quiet(d time.Duration) {
	count := func() int { return len(w.fake.Calls("chat.update")) + len(w.fake.Calls("chat.postMessage")) }
	last, since := count(), time.Now()
	for time.Since(since) < d {
		time.Sleep(100 * time.Millisecond)
		if n := count(); n != last {
			last, since = n, time.Now()
		}
	}
}

// promote types a promote in Slack and waits for its live reply.
func (w *world) promote(id, version string, limit time.Duration) error {
	w.fake.Slash(id, "UALICE", "promote "+version)
	deadline := time.Now().Add(limit)
	for {
		posts, _, _ := w.fake.Snapshot()
		if slackfake.HasText(posts, "`"+version+"` is live on *www*") {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("no live reply for %s within %s", version, limit)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func run(kept int, storm bool) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "deploybot-slack-bench-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	t := &tb{}
	defer t.done()
	w, err := setup(ctx, t, dir, kept)
	if err != nil {
		return err
	}
	defer w.stop()

	// 1. A promote with every kept release's notice to keep true.
	u0, p0 := len(w.fake.Calls("chat.update")), len(w.fake.Calls("chat.postMessage"))
	next := w.names[kept/2+1]
	if err := w.promote("bench-1", next, time.Minute); err != nil {
		return err
	}
	w.quiet(3 * time.Second)
	fmt.Printf("promote with %d kept notices: %d chat.update, %d chat.postMessage (goal: at most 8 and 12)\n",
		kept, len(w.fake.Calls("chat.update"))-u0, len(w.fake.Calls("chat.postMessage"))-p0)

	// 2. A prune that retires most notices: the calls per minute, over
	// the first two minutes of their upkeep.
	start := time.Now()
	rep, err := w.svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "bench"})
	if err != nil {
		return err
	}
	w.bot.PruneFinished(ctx, w.site, rep, nil)
	time.Sleep(2 * time.Minute)
	busiest := 0
	var calls []time.Time
	for _, m := range []string{"chat.update", "chat.postMessage"} {
		for _, at := range w.fake.Calls(m) {
			if at.After(start) {
				calls = append(calls, at)
			}
		}
	}
	for _, a := range calls {
		n := 0
		for _, b := range calls {
			if !b.Before(a) && b.Sub(a) < time.Minute {
				n++
			}
		}
		busiest = max(busiest, n)
	}
	fmt.Printf("prune of %d releases: %d calls in the busiest minute of the first two (goal: under 40)\n", len(rep.Deleted), busiest)

	if !storm {
		return nil
	}
	// 3. A 429 storm: budgets below what a promote needs, Retry-After 45.
	w.fake.Mu.Lock()
	w.fake.PerMinute = map[string]int{"chat.update": 3, "chat.postMessage": 6}
	w.fake.RetryAfter = 45
	w.fake.Mu.Unlock()
	limited0 := w.fake.Limited
	lost0 := w.lost.Load()
	began := time.Now()
	if err := w.promote("bench-storm", w.names[kept-1], 6*time.Minute); err != nil {
		return err
	}
	w.quiet(5 * time.Second)
	fmt.Printf("429 storm (Retry-After 45): %d calls refused, the promote's thread and live reply complete after %s, %d posts lost (goal: 0)\n",
		w.fake.Limited-limited0, time.Since(began).Round(time.Second), w.lost.Load()-lost0)
	return nil
}
