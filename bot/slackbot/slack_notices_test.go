package slackbot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
)

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

// notifyingPruner prunes and tells the Slack app, as serve's server does.
type notifyingPruner struct{ w *world }

func (p notifyingPruner) Prune(ctx context.Context, req releases.PruneRequest) (*releases.PruneReport, error) {
	rep, err := p.w.Service.Prune(ctx, req)
	if rep != nil {
		p.w.app.PruneFinished(ctx, p.w.Site, rep, err)
	}
	return rep, err
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

// A notice whose post fails is posted by the next look for unposted
// notices (serve's reconcile, on the holder of the site's lease), once:
// before, its claim kept every replica from posting it, and nothing
// posted it again. A notice that went out is not posted again.
func TestAFailedNoticeIsPostedAgain(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.restart(func(s *releases.Service) { s.Store = releases.NewSharedStore(w.Store, w.Bucket, s.Sites) })
	ctx := context.Background()
	w.slack.Mu.Lock()
	w.slack.Unavailable = 1
	w.slack.Mu.Unlock()
	w.publish("v1")
	rel, err := w.Service.Release(ctx, "www", "v1")
	if err != nil {
		t.Fatal(err)
	}
	w.app.ReleaseRecorded(ctx, w.Site, rel, "hook")
	w.slack.WaitFor("the failed post to give its claim up", func() bool {
		rs, err := w.Service.UnpostedNotices(ctx, "www", "slack")
		return err == nil && len(rs) == 1 && rs[0].Version == "v1"
	})
	if posts, _, _ := w.slack.Snapshot(); hasText(posts, "New release of *www*: `v1`") {
		t.Fatal("the first post went out")
	}

	w.app.RetryNotices(ctx, w.Site)
	w.slack.WaitFor("the notice posted again", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "New release of *www*: `v1`")
	})
	w.slack.WaitFor("the notice recorded", func() bool {
		links, _ := w.Service.ReleaseLinks(ctx, "www")
		return links["v1"]["slack"] != ""
	})
	w.app.RetryNotices(ctx, w.Site)
	w.app.RetryNotices(ctx, w.Site)
	w.stopApp() // waits for the posts it started in the background
	posts, _, _ := w.slack.Snapshot()
	n := 0
	for _, p := range posts {
		if strings.Contains(p.Text, "New release of *www*: `v1`") {
			n++
		}
	}
	if n != 1 {
		t.Fatalf("the notice was posted %d times", n)
	}
}
