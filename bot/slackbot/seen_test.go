package slackbot_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/probe"
	"github.com/deploybot/deploybot/releases"
)

// broadcasts are the thread replies also shown in the channel
// (reply_broadcast).
func broadcasts(posts []slackfake.Post) []slackfake.Post {
	var out []slackfake.Post
	for _, p := range posts {
		if p.Broadcast {
			out = append(out, p)
		}
	}
	return out
}

// Failures people see: a failed deploy's last line is broadcast to the
// channel from its thread, once (not its phase's failure line); a deploy
// whose card lives in a thread (a notice's Promote button) broadcasts its
// end; a deploy whose card is in the channel broadcasts nothing more, and
// no phase line ever is.
func TestFailuresAndThreadedEndsAreBroadcast(t *testing.T) {
	w := newWorld(t, 20*time.Millisecond)
	w.publish("v1", "v2")
	w.promoteInTurn("b", "v1")
	if posts, _, _ := w.slack.Snapshot(); len(broadcasts(posts)) != 0 {
		t.Fatalf("a deploy whose card is in the channel broadcast:%s", slackfake.Dump(broadcasts(posts)))
	}

	w.AWS.SetFaults(localaws.Faults{ErrorRate: 1, Only: "cloudfront UpdateDistribution"})
	w.slack.Slash("b-fail", alice, "promote v2")
	w.slack.WaitFor("the failure", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "failed in phase update; live now: v1")
	})
	w.AWS.SetFaults(localaws.Faults{})
	posts, _, _ := w.slack.Snapshot()
	b := broadcasts(posts)
	if len(b) != 1 || !strings.Contains(b[0].Text, ":x: deploy ") || !strings.Contains(b[0].Text, "failed in phase update; live now: v1") || b[0].ThreadTS == "" {
		t.Fatalf("broadcasts after a failed deploy:%s", slackfake.Dump(b))
	}

	w.publishAt(w.Service.Time().Add(time.Hour), "v3")
	notice, _ := w.noticeOf("v3")
	if !w.slack.Click("b-click", alice, notice.TS, bot.ActionPromote) {
		t.Fatal("the notice has no Promote button")
	}
	w.slack.WaitFor("v3 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v3` is live on *www*") })
	posts, _, _ = w.slack.Snapshot()
	b = broadcasts(posts)
	if len(b) != 2 || !strings.Contains(b[1].Text, "`v3` is live on *www*") || b[1].ThreadTS != notice.TS {
		t.Fatalf("broadcasts after a deploy in a notice's thread:%s", slackfake.Dump(b))
	}
	if !strings.Contains(string(b[1].Blocks), bot.ActionRollback) {
		t.Fatalf("the broadcast live reply lost its Rollback button: %s", b[1].Blocks)
	}
}

// An automatic rollback is broadcast as it starts, saying why, besides
// the failure of the promote it answers.
func TestAutoRollbackIsBroadcast(t *testing.T) {
	w := newWorld(t, 20*time.Millisecond)
	w.publish("v1", "v2")
	health := httptest.NewServer(http.HandlerFunc(func(rw http.ResponseWriter, r *http.Request) {
		if w.live() == "v2" {
			http.Error(rw, "boom", http.StatusInternalServerError)
			return
		}
		rw.Write([]byte("ok"))
	}))
	t.Cleanup(health.Close)
	w.Site.Health = releases.HealthPolicy{Checks: []releases.HealthCheck{{URL: health.URL}}, Settle: 100 * time.Millisecond, Interval: 10 * time.Millisecond}
	w.Service.Sites[0] = w.Site
	w.Service.Prober = &probe.HTTP{}
	w.promoteInTurn("ar", "v1", "v2")
	posts, _, _ := w.slack.Snapshot()
	var texts []string
	for _, p := range broadcasts(posts) {
		texts = append(texts, p.Text)
	}
	joined := strings.Join(texts, "\n")
	if len(texts) != 2 || !strings.Contains(joined, ":rotating_light: rollback v2 → v1 started by deploybot") || !strings.Contains(joined, "failed in phase health") {
		t.Fatalf("broadcasts:\n%s", joined)
	}
	if l, _ := w.Store.Lock(context.Background(), "www"); l == nil {
		t.Fatal("not locked after the automatic rollback")
	}
}
