package slackbot_test

import (
	"context"
	"net/http"
	"net/http/httptest"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/probe"
	"github.com/deploybot/deploybot/releases"
)

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
