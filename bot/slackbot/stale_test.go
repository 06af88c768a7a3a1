package slackbot_test

import (
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/slackfake"
)

// A Rollback button is checked when it is clicked, as a typed command is:
// a button under a deploy the site has moved on from is refused saying
// what is live now, and a button from before (which names no live
// release) cannot go forward, in a freeze or not. The live reply of a
// superseded deploy loses its button.
func TestStaleRollbackButtonsInAFreeze(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publish("v1", "v2", "v3")
	w.promoteInTurn("p", "v1", "v2")
	posts, _, _ := w.slack.Snapshot()
	var reply slackfake.Post // "v2 is live", with "Roll back to v1"
	for _, p := range posts {
		if strings.Contains(p.Text, "`v2` is live") {
			reply = p
		}
	}
	ds, _ := w.Store.Deploys(t.Context(), "www", 1)
	underV2 := "www/v1/" + ds[0].ID // the button's value: back to v1, under the deploy that made v2 live
	if !strings.Contains(string(reply.Blocks), `"value":"`+underV2+`"`) {
		t.Fatalf("no rollback button from v2 to v1 under %s: %s", ds[0].ID, reply.Blocks)
	}
	w.slack.Slash("p-v3", alice, "promote v3")
	w.slack.WaitFor("v3 live and v2's reply without its button", func() bool {
		_, updates, _ := w.slack.Snapshot()
		for _, u := range updates {
			if u.TS == reply.TS && strings.Contains(u.Text, "`v3` is live now") && !strings.Contains(string(u.Blocks), "deploybot_rollback") {
				return w.live() == "v3"
			}
		}
		return false
	})
	w.slack.Slash("f-1", alice, "freeze 2h launch week")
	w.slack.WaitFor("the freeze", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "froze") })

	click := func(id, value, wantRefusal string) {
		t.Helper()
		w.slack.Send(id, "interactive", map[string]any{
			"type": "block_actions", "user": map[string]any{"id": bob}, "channel": map[string]any{"id": channel},
			"message": map[string]any{"ts": reply.TS, "thread_ts": reply.ThreadTS},
			"actions": []map[string]any{{"action_id": "deploybot_rollback", "block_id": "b1", "value": value, "type": "button"}},
		})
		w.slack.WaitFor("the refusal: "+wantRefusal, func() bool { _, _, eph := w.slack.Snapshot(); return hasText(eph, wantRefusal) })
		if w.live() != "v3" {
			t.Fatalf("a stale button moved the site to %s", w.live())
		}
	}
	// The button as it was posted: asked under the deploy to v2; another
	// deploy has made v3 live since.
	click("stale-1", underV2, "made v3 live since")
	// A button of an earlier deploybot names only its target: it cannot
	// tell whether the site moved, so it is refused, saying what to type.
	click("stale-0", "www/v1", "from an earlier deploybot")
	w.publish("v4")
	w.slack.Slash("p-v4", alice, "promote v4 --override-freeze the fix")
	w.slack.WaitFor("v4 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v4` is live") })
	if err := w.Service.CanRollBack(t.Context(), "www", "v3"); err != nil {
		t.Fatalf("v3 should be a rollback target now: %v", err)
	}
	w.slack.Slash("rb-v3", alice, "rollback v3 back to v3")
	w.slack.WaitFor("v3 live again", func() bool {
		posts, _, _ := w.slack.Snapshot()
		n := 0
		for _, p := range posts {
			if strings.Contains(p.Text, "`v3` is live") {
				n++
			}
		}
		return n == 2
	})
	// A button whose deploy is the latest, but whose target is newer
	// than live (forged, or a rollback's own reply from before) goes
	// nowhere: a rollback goes only back.
	ds, _ = w.Store.Deploys(t.Context(), "www", 1)
	click("stale-2", "www/v4/"+ds[0].ID, "it is newer than the live v3")
}
