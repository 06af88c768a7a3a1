package slackbot_test

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
)

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
