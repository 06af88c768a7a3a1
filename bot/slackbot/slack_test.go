package slackbot_test

import (
	"context"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slackbot"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/probe"
	"github.com/deploybot/deploybot/releases"
)

const (
	alice   = "UALICE"  // a deployer by id
	bob     = "UBOB"    // a deployer through the group
	mallory = "UMALORY" // not a deployer
	group   = "SDEPLOYERS"
	channel = "CDEPLOYS"
)

type world struct {
	*testenv.Env
	t       *testing.T
	slack   *slackfake.Server
	app     *slackbot.Slack
	stopApp func()
	// conns is the num_connections of Slack's last hello.
	conns atomic.Int64
	// prepare, when set, changes the app before it runs.
	prepare func(app *slackbot.Slack)
}

func newWorld(t *testing.T, propagation time.Duration) *world {
	t.Helper()
	w := &world{t: t, slack: slackfake.New(t)}
	w.Env = testenv.New(t, testenv.Options{AWS: localaws.Options{Propagation: propagation, Invalidation: propagation / 2}, MaxAttempts: 1,
		Site:  releases.Site{DistributionID: "ESLACK", Channel: channel, Deployers: []string{alice, group}},
		Store: true})
	w.slack.Groups[group] = []string{bob}
	w.startApp()
	return w
}

// startApp connects a bot over the world's service to the fake Slack.
func (w *world) startApp() {
	b := &bot.Bot{Service: w.Service, Command: "/site"}
	var err error
	w.app, err = slackbot.New("xapp-1-test", "xoxb-test", w.slack.APIURL(), b, nil)
	if err != nil {
		w.t.Fatal(err)
	}
	// The notices' pace is the subject of its own tests (and the
	// benchmark); here it would only slow the rest down.
	w.app.PaceNotices(60*1000, 1000)
	// Who may do what is the service's: Slack only tells it who is in a
	// user group.
	w.Service.Access = &releases.Access{Directory: &slackbot.UserGroups{API: w.app.API}}
	w.Service.OnApproval = w.app
	w.app.Connections = func(n int) { w.conns.Store(int64(n)) }
	if w.prepare != nil {
		w.prepare(w.app)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.app.Run(ctx) }()
	var once sync.Once
	w.stopApp = func() { once.Do(func() { cancel(); <-done }) }
	w.t.Cleanup(w.stopApp)
	w.slack.WaitFor("the socket to connect", func() bool { return w.app.Connected() })
}

// restart stops the bot and its store as a serve restart does, then
// starts both again on the same store file; edit says how the new
// service's sites differ from the test environment's.
func (w *world) restart(edit func(s *releases.Service)) {
	w.stopApp()
	if err := w.Store.Close(); err != nil {
		w.t.Fatal(err)
	}
	w.OpenStore()
	if edit != nil {
		edit(w.Service)
	}
	w.startApp()
}

// publish publishes releases and records them, as the CI hook does.
func (w *world) publish(versions ...string) {
	for _, v := range versions {
		w.Publish(v, w.Service.Time(), map[string]string{"index.html": "<h1>" + v + "</h1>"})
	}
	if _, err := w.Service.Sync(context.Background(), "www"); err != nil {
		w.t.Fatal(err)
	}
}

// promoteInTurn promotes each version from Slack as alice and waits until
// it is live before the next.
func (w *world) promoteInTurn(envelopePrefix string, versions ...string) {
	w.t.Helper()
	for i, v := range versions {
		w.slack.Slash(envelopePrefix+"-"+v, alice, "promote "+v)
		n := i + 1
		w.slack.WaitFor(v+" live", func() bool {
			posts, _, _ := w.slack.Snapshot()
			c := 0
			for _, p := range posts {
				if strings.Contains(p.Text, "is live on") {
					c++
				}
			}
			return c == n
		})
	}
}

func (w *world) live() string {
	cur, err := w.CDN.Current(context.Background(), w.Site)
	if err != nil {
		w.t.Fatal(err)
	}
	return cur.Version
}

// thread returns the posts in the thread of root, in order.
func thread(posts []slackfake.Post, root string) []slackfake.Post {
	var out []slackfake.Post
	for _, p := range posts {
		if p.ThreadTS == root {
			out = append(out, p)
		}
	}
	return out
}

func hasText(ps []slackfake.Post, sub string) bool { return slackfake.HasText(ps, sub) }

func TestSlashPromoteEndToEnd(t *testing.T) {
	w := newWorld(t, 200*time.Millisecond)
	w.publish("v1", "v2")
	w.slack.RateLimitUpdates = 1 // the first chat.update gets a 429
	w.slack.Slash("env-1", alice, "promote www v2 ship the new checkout")
	w.slack.WaitFor("the ack", func() bool { _, ok := w.slack.AckDelay("env-1"); return ok })
	if d, _ := w.slack.AckDelay("env-1"); d > time.Second {
		t.Fatalf("ack took %s (Slack's deadline is 3 s)", d)
	}
	w.slack.WaitFor("the live reply", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "is live on") })
	posts, updates, eph := w.slack.Snapshot()
	// Typed outside the site's channel: the person alone hears where the
	// deploy reports, through the command's response_url.
	if len(eph) != 1 || eph[0].Via != "response_url" || eph[0].User != alice ||
		!strings.Contains(eph[0].Text, "Started: the promote of *www* reports in <"+w.slack.APIURL()+"archives/"+channel+"/p") {
		t.Fatalf("private replies: %s", slackfake.Dump(eph))
	}
	card := posts[0]
	if card.Channel != channel || card.ThreadTS != "" || !strings.Contains(card.Text, "Promote www: (none) -> v2 by <@UALICE>") {
		t.Fatalf("card %+v", card)
	}
	replies := thread(posts, card.TS)
	var texts []string
	for _, r := range replies {
		texts = append(texts, r.Text)
	}
	want := []string{"started by", "updating the distribution…", "updating the distribution: done", "waiting for CloudFront to deploy…",
		"waiting for CloudFront to deploy: done", "invalidating the cache…", "invalidating the cache: done",
		"waiting for the invalidation…", "waiting for the invalidation: done", "`v2` is live on *www*"}
	if len(texts) != len(want) {
		t.Fatalf("thread:\n%s", strings.Join(texts, "\n"))
	}
	for i := range want {
		if !strings.Contains(texts[i], want[i]) {
			t.Fatalf("thread reply %d is %q, want %q\nthread:\n%s", i, texts[i], want[i], strings.Join(texts, "\n"))
		}
	}
	if strings.Contains(string(replies[len(replies)-1].Blocks), "deploybot_rollback") {
		t.Fatal("the first deploy offers a rollback to nothing")
	}
	// The card was updated (after one 429 and a retry) and ends live.
	if w.slack.Limited != 1 || len(updates) == 0 {
		t.Fatalf("limited %d, updates %d", w.slack.Limited, len(updates))
	}
	last := updates[len(updates)-1]
	if last.TS != card.TS || !strings.Contains(last.Text, "live") {
		t.Fatalf("last card update %+v", last)
	}
	if w.live() != "v2" {
		t.Fatalf("distribution serves %q", w.live())
	}
	audit, _ := w.Store.Audit(context.Background(), "www", 1)
	if len(audit) != 1 || audit[0].Actor != alice || audit[0].Result != "ok" || audit[0].Action != "promote" {
		t.Fatalf("audit %+v", audit)
	}
}

func TestRefusalsAreEphemeralAndAudited(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publish("v1")
	w.slack.Slash("e-1", mallory, "promote v1")
	w.slack.WaitFor("a refusal", func() bool { _, _, eph := w.slack.Snapshot(); return len(eph) == 1 })
	_, _, eph := w.slack.Snapshot()
	if eph[0].User != mallory || !strings.Contains(eph[0].Text, "only the deployers") {
		t.Fatalf("refusal %+v", eph[0])
	}
	// bob is a deployer through the user group; he locks the site.
	w.slack.Slash("e-2", bob, "lock www launch freeze")
	w.slack.WaitFor("the lock notice", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "locked *www*") })
	w.slack.Slash("e-3", alice, "promote v1")
	w.slack.WaitFor("a lock refusal", func() bool { _, _, eph := w.slack.Snapshot(); return len(eph) == 2 })
	_, _, eph = w.slack.Snapshot()
	if eph[1].User != alice || !strings.Contains(eph[1].Text, "locked by UBOB") || !strings.Contains(eph[1].Text, "launch freeze") {
		t.Fatalf("lock refusal %+v", eph[1])
	}
	// Malformed input and help are answered privately too.
	w.slack.Slash("e-4", mallory, "promote ../v1")
	w.slack.Slash("e-5", mallory, "status")
	w.slack.WaitFor("status", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "*Locked* by <@UBOB>") })
	w.slack.WaitFor("the version error", func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, "invalid version") })
	w.slack.Slash("e-6", bob, "unlock")
	w.slack.WaitFor("the unlock notice", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "unlocked *www*") })
	if w.live() != "" {
		t.Fatalf("a refused promote changed the distribution: %q", w.live())
	}
	audit, _ := w.Store.Audit(context.Background(), "www", 0)
	results := map[string]int{}
	for _, a := range audit {
		results[a.Action+":"+a.Result]++
	}
	if results["promote:refused"] != 2 || results["lock:ok"] != 1 || results["unlock:ok"] != 1 {
		t.Fatalf("audit %v", results)
	}
}

func TestDuplicateEnvelopeRunsOnce(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publish("v1")
	w.slack.Slash("same", alice, "promote v1")
	w.slack.Slash("same", alice, "promote v1")
	w.slack.WaitFor("the live reply", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "is live on") })
	// Both deliveries read, then every command they started finished: a
	// second run would have posted by now.
	w.slack.WaitFor("both deliveries acked", func() bool { return w.slack.Acks("same") == 2 })
	w.stopApp()
	posts, _, eph := w.slack.Snapshot()
	cards := 0
	for _, p := range posts {
		if strings.HasPrefix(p.Text, "Promote www") {
			cards++
		}
	}
	if cards != 1 || len(eph) != 1 || !strings.HasPrefix(eph[0].Text, "Started:") {
		t.Fatalf("%d cards, ephemeral %s", cards, slackfake.Dump(eph))
	}
}

func TestDisconnectMidDeployStillCompletesTheThread(t *testing.T) {
	w := newWorld(t, time.Second)
	w.publish("v1")
	w.slack.Slash("d-1", alice, "promote v1")
	w.slack.WaitFor("the propagate phase", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "waiting for CloudFront to deploy…")
	})
	// status links to the running deploy's thread.
	w.slack.Slash("d-status", mallory, "status")
	w.slack.WaitFor("status with the thread link", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "*Deploy in progress:* promote `(none)` → `v1`") && hasText(posts, "|thread>)")
	})
	w.slack.Mu.Lock()
	conns := w.slack.Conns
	w.slack.Mu.Unlock()
	w.slack.Drop()
	w.slack.WaitFor("a reconnect", func() bool {
		w.slack.Mu.Lock()
		defer w.slack.Mu.Unlock()
		return w.slack.Conns > conns && w.slack.Conn != nil
	})
	w.slack.WaitFor("the live reply", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "is live on") })
	// Commands still work on the new connection.
	w.slack.Slash("d-2", mallory, "versions")
	w.slack.WaitFor("the versions table", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "▶ v1") })
}

func TestNoticePromoteButtonRunsInItsThread(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publish("v1")
	rel, _, err := w.Service.Record(context.Background(), "www", "v1")
	if err != nil {
		t.Fatal(err)
	}
	w.app.ReleaseRecorded(context.Background(), w.Site, rel, "hook")
	w.slack.WaitFor("the notice", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "New release of *www*") })
	posts, _, _ := w.slack.Snapshot()
	notice := posts[0]
	if !strings.Contains(string(notice.Blocks), `"action_id":"deploybot_promote"`) || !strings.Contains(string(notice.Blocks), `"confirm"`) {
		t.Fatalf("notice blocks %s", notice.Blocks)
	}
	click := func(envelope, user string) {
		w.slack.Send(envelope, "interactive", map[string]any{
			"type": "block_actions", "user": map[string]any{"id": user}, "channel": map[string]any{"id": channel},
			"message":   map[string]any{"ts": notice.TS, "text": notice.Text},
			"container": map[string]any{"type": "message", "message_ts": notice.TS, "channel_id": channel},
			"actions":   []map[string]any{{"action_id": "deploybot_promote", "block_id": "b", "value": "www/v1", "type": "button"}},
		})
	}
	click("click-1", mallory)
	w.slack.WaitFor("the refusal", func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, "only the deployers") })
	click("click-2", alice)
	w.slack.WaitFor("the live reply", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "is live on") })
	posts, _, _ = w.slack.Snapshot()
	for _, p := range posts[1:] {
		if p.ThreadTS != notice.TS {
			t.Fatalf("a deploy message left the notice's thread: %+v", p)
		}
	}
	if w.live() != "v1" {
		t.Fatalf("live %q", w.live())
	}
	// The final reply offers a Rollback button only when there is a previous release.
	var last slackfake.Post
	for _, p := range posts {
		if strings.Contains(p.Text, "is live on") {
			last = p
		}
	}
	var blocks []map[string]any
	_ = json.Unmarshal(last.Blocks, &blocks)
	if len(blocks) != 1 {
		t.Fatalf("first deploy offers a rollback: %s", last.Blocks)
	}
}

func TestRollbackButton(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publish("v1", "v2")
	w.promoteInTurn("p", "v1", "v2")
	posts, _, _ := w.slack.Snapshot()
	var last slackfake.Post
	for _, p := range posts {
		if strings.Contains(p.Text, "`v2` is live") {
			last = p
		}
	}
	ds, _ := w.Store.Deploys(context.Background(), "www", 1)
	value := "www/v1/" + ds[0].ID
	if !strings.Contains(string(last.Blocks), `"value":"`+value+`"`) || !strings.Contains(string(last.Blocks), "deploybot_rollback") {
		t.Fatalf("no rollback button to v1: %s", last.Blocks)
	}
	w.slack.Send("rb-1", "interactive", map[string]any{
		"type": "block_actions", "user": map[string]any{"id": bob}, "channel": map[string]any{"id": channel},
		"message": map[string]any{"ts": last.TS, "thread_ts": last.ThreadTS},
		"actions": []map[string]any{{"action_id": "deploybot_rollback", "block_id": "b1", "value": value, "type": "button"}},
	})
	w.slack.WaitFor("the rollback", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "`v1` is live") && w.live() == "v1"
	})
	ds, _ = w.Store.Deploys(context.Background(), "www", 1)
	if ds[0].Kind != releases.KindRollback || ds[0].Actor != bob || ds[0].To != "v1" {
		t.Fatalf("rollback deploy %+v", ds[0])
	}
}

func TestFailedDeployThreadSaysWhatFailedAndWhatIsLive(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publish("v1", "v2")
	w.slack.Slash("f-1", alice, "promote v1")
	w.slack.WaitFor("v1 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v1` is live") })
	w.AWS.SetFaults(localaws.Faults{ErrorRate: 1, Only: "cloudfront UpdateDistribution"})
	w.slack.Slash("f-2", alice, "promote v2")
	w.slack.WaitFor("the failure", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "failed in phase update; live now: v1")
	})
	posts, updates, _ := w.slack.Snapshot()
	if !hasText(posts, ":x: updating the distribution failed") {
		t.Fatalf("no phase failure line:%s", slackfake.Dump(posts))
	}
	if last := updates[len(updates)-1]; !strings.Contains(last.Text, "failed") {
		t.Fatalf("card not marked failed: %q", last.Text)
	}
	if w.live() != "v1" {
		t.Fatalf("live %q", w.live())
	}
}

func TestSlashRollbackAndHelp(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publish("v1", "v2")
	w.promoteInTurn("r", "v1", "v2")
	// "it broke" is a reason, not a version: rollback goes to v1.
	w.slack.Slash("r-back", bob, "rollback www it broke")
	w.slack.WaitFor("the rollback", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "Rollback www: v2 -> v1 by <@UBOB>") && hasText(posts, "`v1` is live") && w.live() == "v1"
	})
	ds, _ := w.Store.Deploys(context.Background(), "www", 1)
	if ds[0].Reason != "it broke" || ds[0].Kind != releases.KindRollback {
		t.Fatalf("rollback record %+v", ds[0])
	}
	w.slack.Slash("r-help", mallory, "help")
	w.slack.Slash("r-junk", mallory, "frobnicate")
	w.slack.WaitFor("help, twice, in the acks", func() bool {
		_, _, all := w.slack.Snapshot()
		var eph []slackfake.Post
		for _, p := range all {
			if p.Via == "ack" {
				eph = append(eph, p)
			}
		}
		return len(eph) == 2 && strings.Contains(eph[0].Text+eph[1].Text, "unknown command") && strings.Contains(eph[0].Text, "/site promote [site] &lt;version&gt;")
	})
}

func TestSlashPruneAndPins(t *testing.T) {
	w := newWorld(t, 20*time.Millisecond)
	w.publish("v1", "v2", "v3", "v4")
	w.Site.Retention = releases.Policy{Keep: 1, KeepDeployed: 1, MinAge: time.Nanosecond}
	w.Service.Sites[0] = w.Site
	w.slack.Slash("pr-0", alice, "promote v4")
	w.slack.WaitFor("v4 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v4` is live") })
	w.slack.Slash("pr-1", alice, "pin v2 keep for the audit")
	w.slack.WaitFor("the pin notice", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "pinned `v2` of *www*") })
	w.slack.Slash("pr-2", mallory, "prune")
	w.slack.WaitFor("the refusal", func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, "only the deployers") })
	w.slack.Slash("pr-3", alice, "prune --dry-run")
	w.slack.WaitFor("the dry run", func() bool {
		_, _, eph := w.slack.Snapshot()
		return hasText(eph, "(dry run) would delete 2 release(s)") && hasText(eph, "*Kept, pinned:* `v2`")
	})
	w.slack.Slash("pr-4", bob, "prune")
	w.slack.WaitFor("the prune", func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, "Pruned *www*: 2 release(s)") })
	for v, want := range map[string]bool{"v1": true, "v2": false, "v3": true, "v4": false} {
		r, _ := w.Store.Release(context.Background(), "www", v)
		if r.Pruned != want {
			t.Errorf("%s pruned = %v, want %v", v, r.Pruned, want)
		}
	}
	w.slack.Slash("pr-5", alice, "unpin v2")
	w.slack.WaitFor("the unpin notice", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "unpinned `v2`") })
	w.slack.Slash("pr-6", alice, "promote v1")
	w.slack.WaitFor("the refusal of a pruned release", func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, "no release v1") })
}

func TestSlashDiffAndTheNoticesDiff(t *testing.T) {
	w := newWorld(t, 20*time.Millisecond)
	w.publish("v1")
	ctx := context.Background()
	about := "<p>about</p>"
	if err := w.Bucket.PutFile(ctx, w.Site, "v2", releases.File{Path: "about.html", Body: strings.NewReader(about), Size: int64(len(about))}); err != nil {
		t.Fatal(err)
	}
	if err := w.Bucket.WriteManifest(ctx, w.Site, &releases.Manifest{Version: "v2", PublishedAt: w.Service.Time(),
		Files: []releases.ManifestFile{{Path: "index.html", Size: 11}, {Path: "about.html", Size: int64(len(about))}}}); err != nil {
		t.Fatal(err)
	}
	// Anyone may look; a diff changes nothing.
	w.slack.Slash("d-1", mallory, "diff v1 v2")
	w.slack.WaitFor("the diff", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "`v1` → `v2`: 1 added (+12 B), 0 removed") && hasText(posts, "+ `about.html` (12 B)")
	})
	w.slack.Slash("d-p", alice, "preview v2") // a deployer: previews are theirs (and previewers')
	w.slack.WaitFor("the preview refusal", func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, "previews need strategy kvs") })
	w.slack.Slash("d-2", mallory, "diff v1 v9")
	w.slack.WaitFor("the refusal", func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, "no release v9") })
	w.slack.Slash("d-3", alice, "promote v1")
	w.slack.WaitFor("v1 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v1` is live") })
	rel, _, err := w.Service.Record(ctx, "www", "v2")
	if err != nil {
		t.Fatal(err)
	}
	w.app.ReleaseRecorded(ctx, w.Site, rel, "hook")
	w.slack.WaitFor("the notice with its diff", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "New release of *www*: `v2`") && hasText(posts, "Against live `v1`: 1 added, 0 removed, 0 changed (`about.html`)")
	})
}

// A promote that fails its health checks is rolled back by deploybot in
// the same thread, saying why, and the card ends on the rollback.
func TestAutoRollbackInTheThread(t *testing.T) {
	w := newWorld(t, 20*time.Millisecond)
	w.publish("v1", "v2")
	w.failHealthWhileLive("v2")
	w.slack.Slash("h-0", alice, "promote v1")
	w.slack.WaitFor("v1 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v1` is live") })
	w.slack.Slash("h-1", alice, "promote v2")
	w.slack.WaitFor("the automatic rollback to finish", func() bool {
		posts, _, _ := w.slack.Snapshot()
		n := 0
		for _, p := range posts {
			if strings.Contains(p.Text, "`v1` is live") {
				n++
			}
		}
		return n == 2
	})
	posts, updates, _ := w.slack.Snapshot()
	var card slackfake.Post
	for _, p := range posts {
		if strings.Contains(p.Text, "Promote www: v1 -> v2") {
			card = p
		}
	}
	var texts []string
	for _, r := range thread(posts, card.TS) {
		texts = append(texts, r.Text)
	}
	joined := strings.Join(texts, "\n")
	for _, want := range []string{"failed after", "answered 500, want 200", ":rotating_light: rollback v2 → v1 started by deploybot", "auto-rollback: v2 failed health checks", "`v1` is live on *www*"} {
		if !strings.Contains(joined, want) {
			t.Fatalf("thread lacks %q:\n%s", want, joined)
		}
	}
	var last slackfake.Post
	for _, u := range updates {
		if u.TS == card.TS {
			last = u
		}
	}
	if !strings.Contains(last.Text, "Rollback") || !strings.Contains(last.Text, "live") {
		t.Fatalf("the card does not end on the rollback: %q", last.Text)
	}
	if l, _ := w.Store.Lock(context.Background(), "www"); l == nil || !strings.HasPrefix(l.Reason, "auto-rollback") {
		t.Fatalf("lock %+v", l)
	}
}

// On a kvs site, /site preview answers privately with a signed link, and
// promotes write the key.
func TestSlashPreviewAndPromoteOnAKVSSite(t *testing.T) {
	w := newWorld(t, 20*time.Millisecond)
	w.publish("v1", "v2")
	w.slack.Slash("pv-0", alice, "promote v1")
	w.slack.WaitFor("v1 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v1` is live") })
	ctx := context.Background()
	arn, err := w.AWS.EnsureKVS("sites")
	if err != nil {
		t.Fatal(err)
	}
	kvsc, err := cloud.NewKVSClient(ctx, w.Settings)
	if err != nil {
		t.Fatal(err)
	}
	w.Site.Strategy, w.Site.KVSARN, w.Site.URL = cloud.StrategyKVS, arn, "https://www.example.com"
	if _, err := (&cloud.KVSSetup{CF: w.CF, KVS: kvsc, PollInterval: 10 * time.Millisecond}).Apply(ctx, w.Site); err != nil {
		t.Fatal(err)
	}
	w.Service.Sites[0] = w.Site
	w.Service.CDNs[cloud.StrategyKVS] = &cloud.KVS{Client: kvsc, CF: w.CF, Propagation: 10 * time.Millisecond}
	// A preview shows an unreleased build: mallory, neither deployer nor
	// previewer, is refused; named in previewers:, she may.
	w.slack.Slash("pv-refused", mallory, "preview v2")
	w.slack.WaitFor("the refusal", func() bool {
		_, _, eph := w.slack.Snapshot()
		return hasText(eph, "only the deployers and previewers of www may preview")
	})
	w.Site.Previewers = []string{mallory}
	w.Service.Sites[0] = w.Site
	w.slack.Slash("pv-1", mallory, "preview v2")
	w.slack.WaitFor("the preview link", func() bool {
		_, _, eph := w.slack.Snapshot()
		return hasText(eph, "Preview of `v2` on *www*: <https://www.example.com/?deploybot-preview=v2.")
	})
	w.slack.Slash("pv-2", mallory, "preview v9")
	w.slack.WaitFor("the refusal", func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, "no release v9") })
	w.slack.Slash("pv-3", alice, "promote v2")
	w.slack.WaitFor("v2 live by key", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "writing the live version to the key value store: done") && hasText(posts, "`v2` is live")
	})
	if cur, _ := (&cloud.KVS{Client: kvsc}).Current(ctx, w.Site); cur.Version != "v2" {
		t.Fatalf("the key holds %+v", cur)
	}
}

// Slack refuses a message past its limits, and the post is lost: a
// 128-character version (the longest there may be) in a notice's Promote
// button, a 2,500-character reason in the card's field, a 3,500-character
// lock reason in status. Everything goes out, cut to fit.
func TestLongTextStaysWithinSlacksLimits(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	long := "v" + strings.Repeat("9", 127)
	w.publish(long)
	rel, _, err := w.Service.Record(context.Background(), "www", long)
	if err != nil {
		t.Fatal(err)
	}
	w.app.ReleaseRecorded(context.Background(), w.Site, rel, "hook")
	w.slack.WaitFor("the notice", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "New release of *www*")
	})
	// The longest reason the service takes, of the characters escaping
	// makes longest (each of < & > becomes four or five).
	worst := func(unit string) string { return strings.Repeat(unit, releases.MaxReason)[:releases.MaxReason] }
	w.slack.Slash("long-0", alice, "promote "+long+" "+worst("<&>")+"x")
	w.slack.WaitFor("the refusal of a longer reason", func() bool {
		_, _, ephemeral := w.slack.Snapshot()
		return hasText(ephemeral, "the reason is 501 characters long; at most 500 are kept")
	})
	w.slack.Slash("long-1", alice, "promote "+long+" "+worst("<&>"))
	w.slack.WaitFor("the long version live", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "is live on")
	})
	w.slack.Slash("long-2", alice, "lock "+worst("frozen & <careful> "))
	w.slack.WaitFor("the lock", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, ":lock:") })
	w.slack.Slash("long-3", alice, "status")
	w.slack.WaitFor("the status", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "*www* status") })
	w.slack.Mu.Lock()
	refused := append([]slackfake.Post(nil), w.slack.Refused...)
	w.slack.Mu.Unlock()
	if len(refused) > 0 {
		t.Fatalf("Slack refused %d post(s):%s", len(refused), slackfake.Dump(refused))
	}
}

// A post Slack never takes (the bot is not in the site's private channel)
// is logged and counted, not silently dropped.
func TestLostPostsAreCounted(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	var mu sync.Mutex
	lost := map[string]int{}
	w.app.Lost = func(what string) { mu.Lock(); lost[what]++; mu.Unlock() }
	w.publish("v1")
	w.slack.Mu.Lock()
	w.slack.NotIn[channel] = true
	w.slack.Mu.Unlock()
	w.slack.Slash("lost-1", alice, "promote v1")
	w.slack.WaitFor("the deploy to finish and its card to be counted lost", func() bool {
		mu.Lock()
		defer mu.Unlock()
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].Phase == releases.PhaseDone && lost["card"] == 1
	})
	ds, err := w.Store.Deploys(context.Background(), "www", 1)
	if err != nil || len(ds) != 1 || ds[0].Phase != releases.PhaseDone {
		t.Fatalf("the deploy without a thread is recorded done: %+v %v", ds, err)
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lost) != 1 {
		t.Fatalf("after the card failed for the channel, the view kept trying: %v", lost)
	}
}

// A command typed in a conversation the bot cannot post in (a DM between
// people, a private channel it was not invited to) is answered there all
// the same, through its response_url: refusals, answers, and where the
// deploy reports.
func TestCommandsAnswerInAnyConversation(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	w.publish("v1")
	const dm = "D0PEOPLE"
	w.slack.Mu.Lock()
	w.slack.NotIn[dm] = true
	w.slack.Mu.Unlock()
	w.slack.SlashIn("dm-1", mallory, dm, "promote v1")
	w.slack.WaitFor("the refusal in the DM", func() bool {
		_, _, eph := w.slack.Snapshot()
		return len(eph) == 1 && eph[0].Via == "response_url" && eph[0].Channel == dm && strings.Contains(eph[0].Text, "only the deployers")
	})
	w.slack.SlashIn("dm-2", alice, dm, "versions")
	w.slack.WaitFor("versions in the DM", func() bool {
		posts, _, _ := w.slack.Snapshot()
		for _, p := range posts {
			if p.Via == "response_url" && p.Channel == dm && strings.Contains(p.Text, "release(s)") {
				return true
			}
		}
		return false
	})
	w.slack.SlashIn("dm-3", alice, dm, "promote v1")
	w.slack.WaitFor("the deploy, and where it reports", func() bool {
		posts, _, eph := w.slack.Snapshot()
		return hasText(posts, "`v1` is live") && hasText(eph, "Started: the promote of *www* reports in <")
	})
	posts, _, _ := w.slack.Snapshot()
	for _, p := range posts {
		if p.Channel == dm && p.Via != "response_url" {
			t.Fatalf("posted in the DM with the Web API: %+v", p)
		}
	}
}

// When the site's channel cannot be posted to, the deploy still runs and
// is recorded, and the person who started it hears why there is no thread
// and what to do.
func TestSiteChannelTheBotIsNotIn(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	w.publish("v1")
	w.slack.Mu.Lock()
	w.slack.NotIn[channel] = true
	w.slack.Mu.Unlock()
	w.slack.Slash("ni-1", alice, "promote v1")
	w.slack.WaitFor("the deploy done and the person told", func() bool {
		_, _, eph := w.slack.Snapshot()
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].Phase == releases.PhaseDone &&
			hasText(eph, "cannot post in <#"+channel+"> (Slack says channel_not_found)") && hasText(eph, "/invite @deploybot")
	})
}

// A site's channel given by name: the card is updated with the id Slack
// returned, as chat.update takes ids only.
func TestChannelGivenByName(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	w.publish("v1")
	w.slack.Mu.Lock()
	w.slack.Channels["CNAMED"] = slackfake.Channel{ID: "CNAMED", Name: "deploys", Member: true}
	w.slack.Mu.Unlock()
	w.Site.Channel = "#deploys"
	w.Service.Sites[0] = w.Site
	w.slack.Slash("name-1", alice, "promote v1")
	w.slack.WaitFor("the card updated to live", func() bool {
		_, updates, _ := w.slack.Snapshot()
		for _, u := range updates {
			if u.Channel == "CNAMED" && strings.Contains(u.Text, ": live") {
				return true
			}
		}
		return false
	})
}

// At start and in /readyz, each site's channel is checked once a minute:
// a private channel the bot was not invited to, or an archived one, is
// named with what to do; a public channel the bot is not in is fine.
func TestChannelProblems(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	ctx := context.Background()
	w.slack.Mu.Lock()
	w.slack.Channels[channel] = slackfake.Channel{ID: channel, Name: "deploys"}
	w.slack.Mu.Unlock()
	if err := w.app.ChannelsReady(ctx); err != nil {
		t.Fatalf("a public channel: %v", err)
	}
	w2 := newWorld(t, 10*time.Millisecond)
	w2.slack.Mu.Lock()
	w2.slack.Channels[channel] = slackfake.Channel{ID: channel, Name: "deploys", Private: true}
	w2.slack.Mu.Unlock()
	err := w2.app.ChannelsReady(ctx)
	if err == nil || !strings.Contains(err.Error(), "site www: the bot cannot see channel "+channel) || !strings.Contains(err.Error(), "/invite @deploybot") {
		t.Fatalf("a private channel the bot is not in: %v", err)
	}
	w3 := newWorld(t, 10*time.Millisecond)
	w3.slack.Mu.Lock()
	w3.slack.Channels[channel] = slackfake.Channel{ID: channel, Name: "deploys", Member: true, Archived: true}
	w3.slack.Mu.Unlock()
	if err := w3.app.ChannelsReady(ctx); err == nil || !strings.Contains(err.Error(), "archived") {
		t.Fatalf("an archived channel: %v", err)
	}
}

// publishAt publishes versions one minute apart, the first at base, and
// posts each one's notice as the hook would.
func (w *world) publishAt(base time.Time, versions ...string) {
	w.t.Helper()
	ctx := context.Background()
	for i, v := range versions {
		body := "<h1>" + v + "</h1>"
		if err := w.Bucket.PutFile(ctx, w.Site, v, releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
			w.t.Fatal(err)
		}
		if err := w.Bucket.WriteManifest(ctx, w.Site, &releases.Manifest{Version: v, PublishedAt: base.Add(time.Duration(i) * time.Minute),
			Files: []releases.ManifestFile{{Path: "index.html", Size: int64(len(body))}}}); err != nil {
			w.t.Fatal(err)
		}
		rel, _, err := w.Service.Record(ctx, "www", v)
		if err != nil {
			w.t.Fatal(err)
		}
		w.app.ReleaseRecorded(ctx, w.Site, rel, "hook")
		w.slack.WaitFor("the notice of "+v, func() bool {
			posts, _, _ := w.slack.Snapshot()
			return hasText(posts, "New release of *www*: `"+v+"`")
		})
	}
}

// noticeOf is the newest text (post or update) of v's notice.
func (w *world) noticeOf(v string) (slackfake.Post, bool) {
	posts, updates, _ := w.slack.Snapshot()
	var ts string
	var last slackfake.Post
	for _, p := range posts {
		if strings.HasPrefix(p.Text, ":package: New release of *www*: `"+v+"`") {
			ts, last = p.TS, p
		}
	}
	if ts == "" {
		return last, false
	}
	for _, u := range updates {
		if u.TS == ts {
			last = u
		}
	}
	return last, true
}

// A release's notice stays true: live since when it goes live; "older
// than the live one, promoting it is a rollback" (and a Roll back button
// whose dialog says it goes back) once a newer one is live; pruned, with
// no button, once retention deletes it.
func TestNoticesStayTrue(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	w.publishAt(w.Service.Time().Add(-time.Hour), "v1", "v2", "v3")
	w.slack.Slash("nt-1", alice, "promote v3")
	w.slack.WaitFor("the notices updated after v3 went live", func() bool {
		n3, _ := w.noticeOf("v3")
		n1, _ := w.noticeOf("v1")
		n2, _ := w.noticeOf("v2")
		return strings.Contains(n3.Text, ":white_check_mark: Live since") && !strings.Contains(string(n3.Blocks), "deploybot_promote") &&
			strings.Contains(n1.Text, "Older than the live release: promoting it is a rollback.") &&
			strings.Contains(string(n1.Blocks), "Roll back to v1") && strings.Contains(string(n1.Blocks), "Go back to the older v1 on www?") &&
			strings.Contains(n2.Text, "Older than the live release")
	})
	w.Site.Retention = releases.Policy{Keep: 1, KeepDeployed: 1, MinAge: time.Nanosecond}
	w.Service.Sites[0] = w.Site
	// As serve wires it: a prune from any door tells Slack when done.
	w.app.Bot.Pruner = notifyingPruner{w}
	w.slack.Slash("nt-2", bob, "prune")
	w.slack.WaitFor("the pruned notices", func() bool {
		n1, _ := w.noticeOf("v1")
		n2, _ := w.noticeOf("v2")
		return strings.Contains(n1.Text, "Pruned by retention") && !strings.Contains(string(n1.Blocks), `"actions"`) &&
			strings.Contains(n2.Text, "Pruned by retention")
	})
}

// Promoting a release older than the live one goes backwards: Slack asks
// first, privately, with Confirm and Cancel; Cancel changes nothing,
// Confirm runs it with the reason given, and either replaces the question
// so that it cannot be answered twice; `rollback` does not ask. A stale
// notice's Promote button asks the same way.
func TestPromoteOfAnOlderReleaseAsksFirst(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	w.publishAt(w.Service.Time().Add(-time.Hour), "v1", "v2")
	w.slack.Slash("old-0", alice, "promote v2")
	w.slack.WaitFor("v2 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v2` is live") })

	w.slack.SlashIn("old-1", alice, "D0ALICE", "promote v1 the checkout broke")
	ask := w.question()
	if w.live() != "v2" || ask.Via != "response_url" || ask.Channel != "D0ALICE" {
		t.Fatalf("asked %+v; live %s", ask, w.live())
	}
	if !w.slack.Click("old-2", alice, ask.TS, "deploybot_cancel") {
		t.Fatal("the question has no Cancel")
	}
	w.waitAnswered(ask, "Cancelled: `v1` was not promoted")
	if w.slack.Click("old-2b", alice, ask.TS, "deploybot_confirm") {
		t.Fatal("a cancelled question can still be confirmed")
	}
	if w.live() != "v2" {
		t.Fatalf("cancel changed live to %s", w.live())
	}

	w.slack.SlashIn("old-3", alice, "D0ALICE", "promote v1 the checkout broke")
	ask = w.question(ask.TS)
	if !w.slack.Click("old-3b", alice, ask.TS, "deploybot_confirm") {
		t.Fatal("the question has no Confirm")
	}
	w.slack.WaitFor("v1 live after the confirmation", func() bool {
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].To == "v1" && ds[0].Phase == releases.PhaseDone
	})
	ds, _ := w.Store.Deploys(context.Background(), "www", 1)
	if ds[0].Reason != "the checkout broke" || ds[0].Actor != alice {
		t.Fatalf("confirmed deploy %+v", ds[0])
	}
	w.waitAnswered(ask, "Going back to `v1` on *www*, as you confirmed.")
	if w.slack.Click("old-3c", alice, ask.TS, "deploybot_confirm") {
		t.Fatal("a confirmed question can be confirmed again")
	}

	// v2 is newer than the live v1: no question. Then the stale notice
	// of v1 (still offering a Promote button) asks rather than rolls back.
	w.slack.Slash("old-4", alice, "promote v2")
	w.slack.WaitFor("v2 live again", func() bool {
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].To == "v2" && ds[0].Phase == releases.PhaseDone
	})
	var n1 slackfake.Post
	w.slack.WaitFor("v1's notice to offer going back", func() bool {
		n1, _ = w.noticeOf("v1")
		return strings.Contains(string(n1.Blocks), "deploybot_promote")
	})
	if !w.slack.Click("old-5", alice, n1.TS, "deploybot_promote") {
		t.Fatalf("v1's notice has no Promote button: %s", n1.Blocks)
	}
	w.question(ask.TS)
	w.slack.Slash("old-6", alice, "rollback v1 on purpose")
	w.slack.WaitFor("the rollback, unasked", func() bool {
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].To == "v1" && ds[0].Kind == releases.KindRollback && ds[0].Phase == releases.PhaseDone
	})
}

// Two clicks on the same question that reach the bot before it replaces
// the question (a double click, or replicas answering one each) start one
// deploy: the other finds the site busy with it, or the release live.
func TestTwoConfirmsOfOneQuestionDeployOnce(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publishAt(w.Service.Time().Add(-time.Hour), "v1", "v2")
	w.slack.Slash("two-0", alice, "promote v2")
	w.slack.WaitFor("v2 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v2` is live") })
	w.slack.SlashIn("two-1", alice, "D0ALICE", "promote v1 broke")
	ask := w.question()
	first, ok1 := w.slack.ClickPayload("two-2", alice, ask.TS, "deploybot_confirm")
	second, ok2 := w.slack.ClickPayload("two-3", alice, ask.TS, "deploybot_confirm")
	if !ok1 || !ok2 {
		t.Fatal("no Confirm to click")
	}
	w.slack.Send("two-2", "interactive", first)
	w.slack.Send("two-3", "interactive", second)
	w.slack.WaitFor("v1 live and the second click answered", func() bool {
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		_, _, eph := w.slack.Snapshot()
		return len(ds) == 1 && ds[0].To == "v1" && ds[0].Phase == releases.PhaseDone &&
			(hasText(eph, "v1 is already live on www; nothing to do") || hasText(eph, "site www is busy: deploy"))
	})
	// Every command the clicks started has finished once the app stops.
	w.stopApp()
	ds, _ := w.Store.Deploys(context.Background(), "www", 0)
	if len(ds) != 2 || ds[1].To != "v2" {
		t.Fatalf("deploys %+v", ds)
	}
}

// question waits for a new question (an ephemeral message with Confirm and
// Cancel), one whose ts is none of seen.
func (w *world) question(seen ...string) slackfake.Post {
	w.t.Helper()
	var q slackfake.Post
	w.slack.WaitFor("the question", func() bool {
		_, _, eph := w.slack.Snapshot()
		for _, p := range eph {
			if strings.Contains(p.Text, "`v1` is older than the live `v2`") && strings.Contains(string(p.Blocks), "deploybot_confirm") &&
				strings.Contains(string(p.Blocks), "deploybot_cancel") && !slices.Contains(seen, p.TS) {
				q = p
				return true
			}
		}
		return false
	})
	return q
}

// waitAnswered waits until the question is replaced by its answer, which
// has no buttons.
func (w *world) waitAnswered(q slackfake.Post, answer string) {
	w.t.Helper()
	w.slack.WaitFor("the question replaced by "+answer, func() bool {
		m, ok := w.slack.Message(q.TS)
		return ok && strings.Contains(m.Text, answer) && !strings.Contains(string(m.Blocks), "deploybot_") && m.Via == "response_url (replace_original)"
	})
}

// notifyingPruner prunes and tells the Slack app, as serve's server does.
type notifyingPruner struct{ w *world }

func (p notifyingPruner) Prune(ctx context.Context, req releases.PruneRequest) (*releases.PruneReport, error) {
	rep, err := p.w.Service.Prune(ctx, req)
	if rep != nil {
		p.w.app.PruneFinished(ctx, p.w.Site, rep, err)
	}
	return rep, err
}

// On a site with a url, the thread and the card say when visitors began
// to get the release, as the stand-in's edge answered.
func TestThreadSaysWhenVisitorsGotIt(t *testing.T) {
	w := &world{t: t, slack: slackfake.New(t)}
	w.Env = testenv.New(t, testenv.Options{AWS: localaws.Options{Propagation: 200 * time.Millisecond, Invalidation: 100 * time.Millisecond}, MaxAttempts: 1,
		Edge: true, Site: releases.Site{DistributionID: "ESLACK", Channel: channel, Deployers: []string{alice, group}}, Store: true})
	w.Service.Sites[0].URL = w.Edge
	w.Service.EdgeProber = &probe.HTTP{}
	w.startApp()
	w.publish("v1")
	w.slack.Slash("env-visible", alice, "promote www v1")
	w.slack.WaitFor("the live reply", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "is live on") })
	posts, updates, _ := w.slack.Snapshot()
	replies := thread(posts, posts[0].TS)
	var texts []string
	for _, r := range replies {
		texts = append(texts, r.Text)
	}
	all := strings.Join(texts, "\n")
	seen := regexp.MustCompile(`:eyes: visitors get v1 since \d\d:\d\d:\d\d UTC, [0-9.]+m?s after the flip \(watched [0-9.]+m?s\)`)
	if !seen.MatchString(all) || strings.Index(all, "waiting for the invalidation: done") > seen.FindStringIndex(all)[0] {
		t.Fatalf("the thread should say when visitors got v1, after the invalidation:\n%s", all)
	}
	if !strings.Contains(texts[len(texts)-1], "`v1` is live on *www*") || !strings.Contains(texts[len(texts)-1], "visitors get v1 since") {
		t.Fatalf("last reply %q", texts[len(texts)-1])
	}
	if last := updates[len(updates)-1]; !strings.Contains(last.Text, "live; visitors get v1 since") {
		t.Fatalf("the card ends %q", last.Text)
	}
}

// The number of socket-mode connections Slack counts for the app (every
// replica's) reaches the metric with each hello.
func TestHelloCountsConnections(t *testing.T) {
	w := newWorld(t, 0)
	w.slack.WaitFor("the hello's num_connections", func() bool { return w.conns.Load() == 1 })
}

// A deploy updates only the notices whose class it changed (the release
// that was live, the one that is now, and any published between them),
// however many releases are kept.
func TestADeployUpdatesOnlyTheNoticesWhoseClassChanged(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	vs := []string{"v1", "v2", "v3", "v4", "v5", "v6", "v7", "v8"}
	w.publishAt(w.Service.Time().Add(-time.Hour), vs...)
	w.slack.Slash("cl-1", alice, "promote v4")
	w.slack.WaitFor("v4 live in its notice", func() bool {
		n, _ := w.noticeOf("v4")
		n1, _ := w.noticeOf("v1")
		return strings.Contains(n.Text, "Live since") && strings.Contains(n1.Text, "Older than the live release")
	})
	noticeUpdates := func() int {
		posts, updates, _ := w.slack.Snapshot()
		notices := map[string]bool{}
		for _, p := range posts {
			if strings.HasPrefix(p.Text, ":package: New release") {
				notices[p.TS] = true
			}
		}
		n := 0
		for _, u := range updates {
			if notices[u.TS] {
				n++
			}
		}
		return n
	}
	w.app.RefreshNoticesNow(context.Background(), w.Site) // the first promote's updates, all of them
	before := noticeUpdates()
	w.slack.Slash("cl-2", alice, "promote v5")
	w.slack.WaitFor("v5 live in its notice and v4 older", func() bool {
		n5, _ := w.noticeOf("v5")
		n4, _ := w.noticeOf("v4")
		return strings.Contains(n5.Text, "Live since") && strings.Contains(n4.Text, "Older than the live release")
	})
	// The refresh runs in the background after the deploy; one more,
	// run here, waits for it (they take turns) and changes nothing.
	w.app.RefreshNoticesNow(context.Background(), w.Site)
	if got := noticeUpdates() - before; got != 2 {
		t.Fatalf("a promote from v4 to v5 with %d notices updated %d of them, want 2 (v4 and v5)", len(vs), got)
	}
}

// A notice Slack will not let the bot update any more (someone deleted
// it) is marked gone after the first refusal, and later refreshes leave
// it alone instead of asking again for ever.
func TestADeletedNoticeIsNotAskedForAgain(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	w.publishAt(w.Service.Time().Add(-time.Hour), "v1", "v2", "v3")
	ctx := releases.WithPrincipal(context.Background(), releases.Principal{Kind: releases.PrincipalSlack, ID: alice})
	promote := func(v string) {
		t.Helper()
		if _, err := w.Service.Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: alice, Back: true}, nil); err != nil {
			t.Fatal(err)
		}
		w.app.RefreshNoticesNow(ctx, w.Site)
	}
	promote("v2")
	n3, _ := w.noticeOf("v3")
	w.slack.Delete(n3.TS)
	promote("v3") // v3's notice would go live: refused, marked gone
	links, err := w.Service.ReleaseLinks(ctx, "www")
	if err != nil || !strings.HasSuffix(links["v3"]["slack"], " gone") {
		t.Fatalf("v3's notice after Slack refused it: %q %v", links["v3"]["slack"], err)
	}
	before := len(w.slack.Calls("chat.update"))
	promote("v1") // v1 goes live, v2 newer, v3 (gone) left alone
	if got := len(w.slack.Calls("chat.update")) - before; got != 2 {
		t.Fatalf("%d chat.update calls, want 2 (v1 and v2; v3's notice is gone)", got)
	}
}

// A Confirm clicked after another release went live is refused: the
// person agreed to go back from the release live when they were asked,
// not from whatever is live by the time they click.
func TestAConfirmAfterTheSiteMovedOnIsRefused(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publishAt(w.Service.Time().Add(-time.Hour), "v1", "v2", "v3")
	w.slack.Slash("mv-0", alice, "promote v2")
	w.slack.WaitFor("v2 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v2` is live") })
	w.slack.Slash("mv-1", alice, "promote v1 broke")
	ask := w.question()
	w.slack.Slash("mv-2", bob, "promote v3")
	w.slack.WaitFor("v3 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v3` is live") })
	click, ok := w.slack.ClickPayload("mv-3", alice, ask.TS, "deploybot_confirm")
	if !ok {
		t.Fatal("no Confirm to click")
	}
	w.slack.Send("mv-3", "interactive", click)
	w.slack.WaitFor("the refusal", func() bool {
		_, _, eph := w.slack.Snapshot()
		return hasText(eph, "v3 is live on www now, not v2 as when going back to v1 was confirmed")
	})
	if ds, _ := w.Store.Deploys(context.Background(), "www", 1); len(ds) != 1 || ds[0].To != "v3" {
		t.Fatalf("newest deploy %+v, want the promote of v3", ds)
	}
}

// failHealthWhileLive gives the site a health check that fails while
// version is live (so a promote to it is rolled back) and passes
// otherwise.
func (w *world) failHealthWhileLive(version string) {
	w.t.Helper()
	health := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.live() == version {
			http.Error(rw, "boom", http.StatusInternalServerError)
			return
		}
		rw.Write([]byte("ok"))
	}))
	w.t.Cleanup(health.Close)
	w.Site.Health = releases.HealthPolicy{Checks: []releases.HealthCheck{{URL: health.URL}}, Settle: 100 * time.Millisecond, Interval: 10 * time.Millisecond}
	w.Service.Sites[0] = w.Site
	w.Service.Prober = &probe.HTTP{}
}
