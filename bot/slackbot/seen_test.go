package slackbot_test

import (
	"context"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/localaws"
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
	w.failHealthWhileLive("v2")
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
	// The rollback reports in its promote's card, and says so for
	// whoever would resume it.
	ds, _ := w.Store.Deploys(context.Background(), "www", 2)
	rollback, _ := w.Service.DeployLinks(context.Background(), "www", ds[0].ID)
	promote, _ := w.Service.DeployLinks(context.Background(), "www", ds[1].ID)
	if ds[0].Actor != releases.AutoActor || rollback[releases.DeployLinkCard] == "" || rollback[releases.DeployLinkCard] != promote[releases.DeployLinkCard] {
		t.Fatalf("card links: rollback %v, promote %v", rollback, promote)
	}
}

// thread replies in the thread of root holding sub.
func repliesWith(posts []slackfake.Post, root, sub string) []slackfake.Post {
	var out []slackfake.Post
	for _, p := range thread(posts, root) {
		if strings.Contains(p.Text, sub) {
			out = append(out, p)
		}
	}
	return out
}

// approvals is a world whose site needs one approval, by the deployers'
// group, alice, carol and a CI role, on a clock the test may move ahead.
type approvals struct {
	*world
	ahead *atomic.Int64
}

func newApprovals(t *testing.T, versions ...string) approvals {
	w := newWorld(t, 20*time.Millisecond)
	ahead := &atomic.Int64{}
	w.Service.Sites[0].Approval = releases.Approval{Required: 1, Timeout: 30 * time.Minute, Approvers: []string{group, alice, "UCAROL", "arn:aws:iam::1:user/ci"}}
	w.Service.Now = func() time.Time { return time.Now().Add(time.Duration(ahead.Load())) }
	w.publish(versions...)
	return approvals{w, ahead}
}

// ask promotes version as alice and returns its card, once recorded, and
// the request's id.
func (w approvals) ask(envelope, version, reason string) (slackfake.Post, string) {
	w.t.Helper()
	w.slack.Slash(envelope, alice, "promote "+version+" "+reason)
	w.slack.WaitFor("the card of "+reason, func() bool { p, _, _ := w.slack.Snapshot(); return hasText(p, reason) })
	card := w.cardOf(reason)
	as, _ := w.Service.Approvals(context.Background(), "www", 1)
	w.slack.WaitFor("the card recorded", func() bool {
		_, _, ok, _ := w.app.Bot.ApprovalCard(context.Background(), w.Service.Sites[0], as[0].ID)
		return ok
	})
	return card, as[0].ID
}

// updated reports whether the message ts was updated to hold sub.
func (w *world) updated(ts, sub string) bool {
	_, us, _ := w.slack.Snapshot()
	for _, u := range us {
		if u.TS == ts && strings.Contains(u.Text, sub) {
			return true
		}
	}
	return false
}

// An approval card mentions its approvers while it waits, so Slack tells
// them: user groups and users, not the person who asked (who cannot
// approve), not a CI role Slack cannot notify.
func TestApprovalCardMentionsItsApprovers(t *testing.T) {
	w := newApprovals(t, "v1")
	card, _ := w.ask("ma-1", "v1", "first launch")
	if !strings.Contains(card.Text, ":bell: Approvers: <!subteam^"+group+">, <@UCAROL>\n") || strings.Contains(card.Text, "Approvers: <@UALICE>") || strings.Contains(card.Text, "arn:") {
		t.Fatalf("the card does not mention its approvers (and only them): %q", card.Text)
	}
}

// The person who asked is mentioned in the card's thread when their
// request is decided (approved, rejected, expired), once per decision
// however often the card is refreshed.
func TestTheAskerIsToldHowTheirRequestWasDecided(t *testing.T) {
	w := newApprovals(t, "v1", "v2")
	told := func(card slackfake.Post, sub string) func() bool {
		return func() bool { p, _, _ := w.slack.Snapshot(); return len(repliesWith(p, card.TS, sub)) == 1 }
	}
	card, _ := w.ask("ta-1", "v1", "first launch")
	w.slack.Click("ta-2", bob, card.TS, bot.ActionApprove)
	w.slack.WaitFor("the asker told of the approval", told(card, "<@UALICE>: your promote of `v1` on *www* is approved by <@UBOB>; it runs in this thread."))
	w.slack.WaitFor("v1 live", func() bool { p, _, _ := w.slack.Snapshot(); return hasText(p, "`v1` is live on *www*") })

	card2, _ := w.ask("ta-3", "v2", "second try")
	w.slack.Click("ta-4", bob, card2.TS, bot.ActionReject)
	w.slack.WaitFor("the asker told of the rejection", told(card2, "<@UALICE>: your promote of `v2` on *www* was rejected by <@UBOB>: rejected in Slack. Nothing changed."))

	card3, _ := w.ask("ta-5", "v2", "third try")
	w.ahead.Store(int64(time.Hour))
	if _, err := w.Service.ExpireApprovals(context.Background(), "www"); err != nil {
		t.Fatal(err)
	}
	w.slack.WaitFor("the asker told of the expiry", told(card3, "<@UALICE>: your promote of `v2` on *www* expired at"))

	// Refreshed again: nothing more is said.
	as, _ := w.Service.Approvals(context.Background(), "www", 0)
	for _, a := range as {
		w.app.ApprovalChanged(context.Background(), w.Service.Sites[0], a)
	}
	w.slack.WaitFor("the cards refreshed", func() bool {
		_, us, _ := w.slack.Snapshot()
		n := 0
		for _, u := range us {
			if u.TS == card.TS || u.TS == card2.TS || u.TS == card3.TS {
				n++
			}
		}
		return n >= 2*len(as)
	})
	posts, _, _ := w.slack.Snapshot()
	for _, c := range []slackfake.Post{card, card2, card3} {
		if n := len(repliesWith(posts, c.TS, "<@UALICE>: your promote")); n != 1 {
			t.Errorf("the card %s told the asker %d times:%s", c.TS, n, slackfake.Dump(thread(posts, c.TS)))
		}
	}
}

// Once an approved deploy ends, its card says how, with what is live:
// deployed or failed, approved in Slack or through another door (the
// API, which tells the chat that what is live may have changed).
func TestApprovalCardSaysHowItsDeployEnded(t *testing.T) {
	w := newApprovals(t, "v1", "v2", "v3")
	card, _ := w.ask("de-1", "v1", "first launch")
	w.slack.Click("de-2", bob, card.TS, bot.ActionApprove)
	w.slack.WaitFor("the card says deployed", func() bool { return w.updated(card.TS, "Approved by <@UBOB> and deployed: `v1` went live at") })

	card2, _ := w.ask("de-3", "v2", "second try")
	w.AWS.SetFaults(localaws.Faults{ErrorRate: 1, Only: "cloudfront UpdateDistribution"})
	w.slack.Click("de-4", bob, card2.TS, bot.ActionApprove)
	w.slack.WaitFor("the card says failed", func() bool {
		return w.updated(card2.TS, ":x: Approved by <@UBOB>, but the deploy failed: ") && w.updated(card2.TS, "Live now: `v1`.")
	})
	w.AWS.SetFaults(localaws.Faults{})

	card3, id := w.ask("de-5", "v3", "third try")
	ctx := releases.WithPrincipal(releases.WithDoor(context.Background(), releases.DoorAPI), releases.Principal{Kind: releases.PrincipalSlack, ID: bob})
	if _, err := w.Service.Approve(ctx, "www", id, bob, nil); err != nil {
		t.Fatal(err)
	}
	w.app.LiveChanged(context.Background(), w.Service.Sites[0])
	w.slack.WaitFor("the card approved through the API says deployed", func() bool { return w.updated(card3.TS, "and deployed: `v3` went live at") })
}

// answered reports whether user got an answer holding sub through a
// response_url in the DM dm.
func (w *world) answeredIn(dm, user, sub string) bool {
	_, _, eph := w.slack.Snapshot()
	for _, p := range eph {
		if p.Via == "response_url" && p.Channel == dm && p.User == user && strings.Contains(p.Text, sub) {
			return true
		}
	}
	return false
}

// `/site approve` and `/site reject` typed in a DM (one the bot was not
// added to, where it cannot post) are answered there, through the
// command's response_url: the approval says where its deploy reports (the
// card's thread), the rejection what it rejected; the person who asked is
// told in the card's thread. Nothing is posted in the DM with the Web API.
func TestApproveAndRejectTypedInADM(t *testing.T) {
	w := newWorld(t, 20*time.Millisecond)
	var mu sync.Mutex
	lost := map[string]int{}
	w.app.Lost = func(what string) { mu.Lock(); lost[what]++; mu.Unlock() }
	w.Service.Sites[0].Approval = releases.Approval{Required: 1, Timeout: 30 * time.Minute}
	w.publish("v1", "v2")
	const dm = "D0BOBCAROL"
	request := func() string {
		as, _ := w.Service.Approvals(context.Background(), "www", 1)
		return as[0].ID
	}
	w.slack.Slash("dm-1", alice, "promote v1")
	w.slack.WaitFor("the card", func() bool { p, _, _ := w.slack.Snapshot(); return hasText(p, "`v1` asked by") })
	card := w.cardOf("`v1` asked by")
	w.slack.WaitFor("the card recorded", func() bool {
		_, _, ok, _ := w.app.Bot.ApprovalCard(context.Background(), w.Service.Sites[0], request())
		return ok
	})
	w.slack.SlashIn("dm-2", bob, dm, "approve "+request())
	w.slack.WaitFor("the answer in the DM, and the deploy", func() bool {
		return w.answeredIn(dm, bob, "reports in <"+w.slack.APIURL()+"archives/"+channel+"/p"+strings.ReplaceAll(card.TS, ".", "")) && w.live() == "v1"
	})
	w.slack.WaitFor("the deploy in the card's thread", func() bool {
		p, _, _ := w.slack.Snapshot()
		return len(repliesWith(p, card.TS, "`v1` is live on *www*")) == 1
	})

	w.slack.Slash("dm-3", alice, "promote v2")
	w.slack.WaitFor("the second card", func() bool { p, _, _ := w.slack.Snapshot(); return hasText(p, "`v2` asked by") })
	card2 := w.cardOf("`v2` asked by")
	id := request()
	w.slack.SlashIn("dm-4", bob, dm, "reject "+id+" not today")
	w.slack.WaitFor("the rejection answered in the DM and told in the thread", func() bool {
		p, _, _ := w.slack.Snapshot()
		return w.answeredIn(dm, bob, ":no_entry: Rejected `"+id+"`") &&
			len(repliesWith(p, card2.TS, "<@UALICE>: your promote of `v2` on *www* was rejected by <@UBOB>: not today")) == 1
	})
	posts, _, _ := w.slack.Snapshot()
	for _, p := range posts {
		if p.Channel == dm && p.Via != "response_url" {
			t.Fatalf("posted in the DM with the Web API: %+v", p)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lost) != 0 {
		t.Fatalf("posts lost: %v", lost)
	}
}

// A site without a channel reports a deploy where it was started; typed
// in a DM, where the bot cannot post, the deploy runs without a card or
// thread, and the person who typed it hears, through the command's
// response_url, that it started and how it ended. Nothing is posted in
// the DM with the Web API.
func TestDeployTypedInADMOnASiteWithoutAChannel(t *testing.T) {
	w := newWorld(t, 20*time.Millisecond)
	var mu sync.Mutex
	lost := map[string]int{}
	w.app.Lost = func(what string) { mu.Lock(); lost[what]++; mu.Unlock() }
	w.Service.Sites[0].Channel = ""
	w.publish("v1")
	const dm = "D0ALICEBOB"
	w.slack.SlashIn("nc-1", alice, dm, "promote v1")
	w.slack.WaitFor("the start and the end, answered in the DM", func() bool {
		return w.answeredIn(dm, alice, "no thread") && w.answeredIn(dm, alice, "`v1` is live on *www*")
	})
	if w.live() != "v1" {
		t.Fatalf("live %q", w.live())
	}
	posts, _, _ := w.slack.Snapshot()
	for _, p := range posts {
		if p.Channel == dm && p.Via != "response_url" {
			t.Fatalf("posted in the DM with the Web API: %+v", p)
		}
	}
	mu.Lock()
	defer mu.Unlock()
	if len(lost) != 0 {
		t.Fatalf("posts tried in the DM and lost: %v", lost)
	}
}
