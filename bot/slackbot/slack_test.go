package slackbot_test

import (
	"context"
	"encoding/json"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slackbot"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
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
	// Stopped as serve stops it: its work is cancelled as a shutdown, so
	// a deploy it runs is interrupted for recovery, not failed.
	ctx, cancel := context.WithCancelCause(context.Background())
	done := make(chan error, 1)
	go func() { done <- w.app.Run(ctx) }()
	var once sync.Once
	w.stopApp = func() { once.Do(func() { cancel(releases.ErrShutdown); <-done }) }
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
