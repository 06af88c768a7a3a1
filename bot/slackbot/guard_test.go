package slackbot_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
)

// A freeze from Slack holds promotes, not rollbacks; an approver's
// override goes through and a deployer who is not an approver is refused;
// status shows the freeze; every step is in the audit log.
func TestSlashFreezeHoldsPromotesNotRollbacks(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.Service.Sites[0].Approval.Approvers = []string{alice}
	w.publish("v1", "v2", "v3")
	w.promoteInTurn("f", "v1", "v2")
	eph := func(sub string) bool { _, _, e := w.slack.Snapshot(); return hasText(e, sub) }
	posted := func(sub string) bool { p, _, _ := w.slack.Snapshot(); return hasText(p, sub) }

	w.slack.Slash("f-freeze", bob, "freeze 2h launch week")
	w.slack.WaitFor("the freeze notice", func() bool { return posted(":snowflake: <@UBOB> froze *www* until") && posted("launch week") })
	w.slack.Slash("f-promote", bob, "promote v3")
	w.slack.WaitFor("the freeze refusal", func() bool { return eph("site www is frozen by UBOB until") && eph("rollbacks are allowed") })
	w.slack.Slash("f-override-bob", bob, "promote v3 --override-freeze it is urgent")
	w.slack.WaitFor("the approver refusal", func() bool { return eph("only the approvers of www") })
	if w.live() != "v2" {
		t.Fatalf("a refused promote flipped: %s", w.live())
	}
	w.slack.Slash("f-status", mallory, "status")
	w.slack.WaitFor("status with the freeze", func() bool { return posted(":snowflake: *Frozen*: frozen by UBOB until") })

	w.slack.Slash("f-rollback", bob, "rollback www incident")
	w.slack.WaitFor("the rollback", func() bool {
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].Kind == releases.KindRollback && ds[0].Phase == releases.PhaseDone && w.live() == "v1"
	})
	w.slack.Slash("f-override", alice, "promote v3 hotfix --override-freeze CTO approved")
	w.slack.WaitFor("the override", func() bool {
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].To == "v3" && ds[0].Phase == releases.PhaseDone && posted("`v3` is live")
	})
	w.slack.Slash("f-unfreeze", bob, "unfreeze")
	w.slack.WaitFor("the unfreeze notice", func() bool { return posted(":sunny: <@UBOB> unfroze *www*") })

	audit, err := w.Store.Audit(context.Background(), "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(audit) - 1; i >= 0; i-- {
		a := audit[i]
		if a.Door != "slack" {
			t.Fatalf("door %q in %+v", a.Door, a)
		}
		got = append(got, a.Action+":"+a.Result)
		if a.Action == "promote" && a.Result == "ok" && strings.Contains(a.Detail, "v3") && !strings.Contains(a.Detail, "overriding the freeze: CTO approved") {
			t.Fatalf("the override is not recorded: %+v", a)
		}
	}
	want := "promote:ok promote:ok freeze:ok promote:refused promote:refused rollback:ok promote:ok unfreeze:ok"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

// cardOf finds the newest top-level post holding sub.
func (w *world) cardOf(sub string) slackfake.Post {
	w.t.Helper()
	posts, _, _ := w.slack.Snapshot()
	for i := len(posts) - 1; i >= 0; i-- {
		if posts[i].ThreadTS == "" && strings.Contains(posts[i].Text, sub) {
			return posts[i]
		}
	}
	w.t.Fatalf("no post holds %q", sub)
	return slackfake.Post{}
}

// click presses a button of a message in the site's channel.
func (w *world) click(envelope, user, action, value string, m slackfake.Post) {
	w.slack.Send(envelope, "interactive", map[string]any{
		"type": "block_actions", "user": map[string]any{"id": user}, "channel": map[string]any{"id": channel},
		"message":   map[string]any{"ts": m.TS, "text": m.Text},
		"container": map[string]any{"type": "message", "message_ts": m.TS, "channel_id": channel},
		"actions":   []map[string]any{{"action_id": action, "block_id": "b", "value": value, "type": "button"}},
	})
}

// Four eyes in Slack: the card with Approve and Reject, self-approval and
// non-approvers refused, another approver's click runs the deploy in the
// card's thread; a restart keeps a pending request's buttons working; a
// rejection and a timeout end requests and say so on their cards.
func TestSlackApprovals(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	// The clock the expiry below moves on: set on the service before the
	// bot uses it (and on the one the restart makes), moved atomically.
	var ahead atomic.Int64
	approval := func(s *releases.Service) {
		s.Sites[0].Approval = releases.Approval{Required: 1, Timeout: 30 * time.Minute}
		s.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	}
	approval(w.Service)
	w.publish("v1", "v2", "v3")
	eph := func(sub string) bool { _, _, e := w.slack.Snapshot(); return hasText(e, sub) }
	posted := func(sub string) bool { p, _, _ := w.slack.Snapshot(); return hasText(p, sub) }
	updated := func(sub string) bool { _, u, _ := w.slack.Snapshot(); return hasText(u, sub) }

	w.slack.Slash("a-1", alice, "promote v1 first launch")
	w.slack.WaitFor("the answer", func() bool { return eph("waits for 1 approval(s) by an approver other than you") })
	w.slack.WaitFor("the card", func() bool { return posted("*Promote www*: `(none)` → `v1` asked by <@UALICE>") })
	card := w.cardOf("`v1` asked by")
	if !strings.Contains(string(card.Blocks), `"action_id":"deploybot_approve"`) || !strings.Contains(string(card.Blocks), `"action_id":"deploybot_reject"`) {
		t.Fatalf("card blocks %s", card.Blocks)
	}
	as, _ := w.Service.Approvals(context.Background(), "www", 0)
	if len(as) != 1 {
		t.Fatalf("requests %+v", as)
	}
	id := as[0].ID
	w.click("a-2", alice, "deploybot_approve", "www/"+id, card)
	w.slack.WaitFor("the self-approval refusal", func() bool { return eph("cannot approve it: another approver must") })
	w.click("a-3", mallory, "deploybot_approve", "www/"+id, card)
	w.slack.WaitFor("the non-approver refusal", func() bool { return eph("only the approvers of www") })
	w.click("a-4", bob, "deploybot_approve", "www/"+id, card)
	w.slack.WaitFor("the deploy", func() bool { return w.live() == "v1" && posted("`v1` is live on *www*") })
	w.slack.WaitFor("the card says approved", func() bool { return updated("Approved by <@UBOB>: the deploy runs in this thread") })
	posts, _, _ := w.slack.Snapshot()
	for _, p := range posts {
		if strings.Contains(p.Text, "is live on") && p.ThreadTS != card.TS {
			t.Fatalf("the deploy did not report in the card's thread: %+v", p)
		}
	}
	ds, _ := w.Store.Deploys(context.Background(), "www", 1)
	if ds[0].ID != id || ds[0].Actor != alice || strings.Join(ds[0].ApprovedBy, ",") != bob {
		t.Fatalf("deploy %+v", ds[0])
	}

	// A pending request survives a restart, buttons and card included.
	w.slack.Slash("a-5", alice, "promote v2")
	w.slack.WaitFor("the second card", func() bool { return posted("`v1` → `v2` asked by <@UALICE>") })
	card2 := w.cardOf("`v2` asked by")
	as, _ = w.Service.Approvals(context.Background(), "www", 1)
	w.restart(approval)
	w.click("a-6", bob, "deploybot_approve", "www/"+as[0].ID, card2)
	w.slack.WaitFor("the deploy after the restart", func() bool { return w.live() == "v2" && posted("`v2` is live on *www*") })

	// Rejected.
	w.slack.Slash("a-7", alice, "promote v3")
	w.slack.WaitFor("the third card", func() bool { return posted("`v2` → `v3` asked by <@UALICE>") })
	card3 := w.cardOf("`v3` asked by")
	as, _ = w.Service.Approvals(context.Background(), "www", 1)
	w.click("a-8", bob, "deploybot_reject", "www/"+as[0].ID, card3)
	w.slack.WaitFor("the card says rejected", func() bool { return updated(":no_entry: Rejected by <@UBOB>: rejected in Slack") })

	// Expired: the request's time runs out; the record and the card say so.
	w.slack.Slash("a-9", alice, "promote v3 again")
	w.slack.WaitFor("the fourth card", func() bool { return posted("again") })
	ahead.Store(int64(time.Hour))
	if ex, err := w.Service.ExpireApprovals(context.Background(), "www"); err != nil || len(ex) != 1 {
		t.Fatalf("expire: %+v %v", ex, err)
	}
	w.slack.WaitFor("the card says expired", func() bool { return updated(":hourglass: Expired at") })
	if w.live() != "v2" {
		t.Fatalf("live %s", w.live())
	}
	audit, _ := w.Store.Audit(context.Background(), "www", 0)
	var got []string
	for i := len(audit) - 1; i >= 0; i-- {
		got = append(got, audit[i].Actor+":"+audit[i].Action+":"+audit[i].Result)
	}
	want := "UALICE:approval-requested:ok UALICE:approve:refused UMALORY:approve:refused UALICE:promote:ok UBOB:approve:ok " +
		"UALICE:approval-requested:ok UALICE:promote:ok UBOB:approve:ok UALICE:approval-requested:ok UBOB:reject:ok UALICE:approval-requested:ok deploybot:approval-expired:ok"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

// A release's notice links its commit, pull request and CI run through
// the site's repository, and the compare view from the live release's
// commit.
func TestNoticeLinksWhatChanged(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.Service.Sites[0].RepoURL = "https://github.com/acme/www"
	ctx := context.Background()
	for i, v := range []string{"v1", "v2"} {
		body := "<h1>" + v + "</h1>"
		if err := w.Bucket.PutFile(ctx, w.Site, v, releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
			t.Fatal(err)
		}
		m := &releases.Manifest{Version: v, Commit: strings.Repeat(string(rune('a'+i)), 40), PublishedAt: w.Service.Time().Add(time.Duration(i) * time.Minute),
			Build: releases.Build{Branch: "main", CIURL: "https://ci.example.com/runs/" + v, PullRequest: "7"},
			Files: []releases.ManifestFile{{Path: "index.html", Size: int64(len(body))}}}
		if err := w.Bucket.WriteManifest(ctx, w.Site, m); err != nil {
			t.Fatal(err)
		}
	}
	w.promoteInTurn("n", "v1")
	rel, _, err := w.Service.Record(ctx, "www", "v2")
	if err != nil {
		t.Fatal(err)
	}
	w.app.ReleaseRecorded(ctx, w.Service.Sites[0], rel, "hook")
	w.slack.WaitFor("the notice", func() bool { p, _, _ := w.slack.Snapshot(); return hasText(p, "New release of *www*: `v2`") })
	n := w.cardOf("New release of *www*: `v2`")
	for _, want := range []string{
		"commit <https://github.com/acme/www/commit/" + strings.Repeat("b", 40) + "|bbbbbbb>",
		"branch `main`", "<https://github.com/acme/www/pull/7|PR #7>", "<https://ci.example.com/runs/v2|CI run>",
		"<https://github.com/acme/www/compare/" + strings.Repeat("a", 40) + "..." + strings.Repeat("b", 40) + "|changes since v1>",
	} {
		if !strings.Contains(n.Text, want) {
			t.Errorf("the notice lacks %s:\n%s", want, n.Text)
		}
	}
}
