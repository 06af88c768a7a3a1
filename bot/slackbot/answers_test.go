package slackbot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot/slackbot"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// acked are the answers that came in acks.
func (w *world) acked() []slackfake.Post {
	_, _, eph := w.slack.Snapshot()
	var out []slackfake.Post
	for _, p := range eph {
		if p.Via == "ack" {
			out = append(out, p)
		}
	}
	return out
}

// A command that does not parse is answered in its ack, however long
// what was typed: the answer quotes a little of it, so the ack stays
// under the 20 KB past which Slack drops it (and slack-go refuses to
// send it, leaving the envelope unacknowledged).
func TestLongInputIsAnsweredInASmallAck(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	long := strings.Repeat("x", 30000)
	for i, text := range []string{
		"status " + strings.Repeat("word ", 6000),
		"promote v" + long,
		long,
		"status " + strings.Repeat("<&>", 5000),
	} {
		id := "long-" + string(rune('a'+i))
		w.slack.Slash(id, mallory, text)
		w.slack.WaitFor("the ack of "+id, func() bool { _, ok := w.slack.AckDelay(id); return ok })
	}
	w.slack.WaitFor("four answers", func() bool { return len(w.acked()) == 4 })
	for _, p := range w.acked() {
		if len(p.Text) > 4000 || !strings.Contains(p.Text, "characters)") && !strings.Contains(p.Text, "invalid version") {
			t.Errorf("answer of %d bytes: %.300q", len(p.Text), p.Text)
		}
	}
	w.slack.Mu.Lock()
	defer w.slack.Mu.Unlock()
	if w.slack.AcksDropped != 0 {
		t.Fatalf("Slack dropped %d acks", w.slack.AcksDropped)
	}
}

// When the ack with the answer is refused, the envelope is acknowledged
// without it and the answer comes through the command's response_url.
func TestRefusedAckAnswersThroughTheResponseURL(t *testing.T) {
	w := &world{t: t, slack: slackfake.New(t), prepare: slackbot.RefuseAckPayloads}
	w.Env = testenv.New(t, testenv.Options{AWS: localaws.Options{Propagation: 10 * time.Millisecond}, MaxAttempts: 1,
		Site: releases.Site{DistributionID: "ESLACK", Channel: channel, Deployers: []string{alice, group}}, Store: true})
	w.startApp()
	w.slack.Slash("refused-1", mallory, "frobnicate")
	w.slack.Slash("refused-1", mallory, "frobnicate") // redelivered: one answer
	w.slack.WaitFor("the ack", func() bool { _, ok := w.slack.AckDelay("refused-1"); return ok })
	w.slack.WaitFor("the answer through the response_url", func() bool {
		_, _, eph := w.slack.Snapshot()
		return len(eph) == 1 && eph[0].Via == "response_url" && eph[0].User == mallory && strings.Contains(eph[0].Text, "unknown command")
	})
	// Both deliveries read, then every command they started finished:
	// a second answer would be there now.
	w.slack.WaitFor("both deliveries acked", func() bool { return w.slack.Acks("refused-1") == 2 })
	w.stopApp()
	if _, _, eph := w.slack.Snapshot(); len(eph) != 1 {
		t.Fatalf("answers: %s", slackfake.Dump(eph))
	}
}

// Slack sends "R&D fix" as "R&amp;D fix": the reason is kept and shown
// as typed, and counts as many characters as typed.
func TestCommandTextIsReadAsTyped(t *testing.T) {
	w := newWorld(t, 10*time.Millisecond)
	w.publish("v1")
	w.slack.Slash("amp-1", alice, "promote v1 R&D fix <b>ok</b>")
	w.slack.WaitFor("v1 live", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, "`v1` is live") })
	ds, _ := w.Store.Deploys(context.Background(), "www", 1)
	if len(ds) != 1 || ds[0].Reason != "R&D fix <b>ok</b>" {
		t.Fatalf("deploy %+v", ds)
	}
	posts, _, _ := w.slack.Snapshot()
	if !strings.Contains(string(posts[0].Blocks), `R\u0026amp;D fix \u0026lt;b\u0026gt;ok\u0026lt;/b\u0026gt;`) || strings.Contains(string(posts[0].Blocks), "amp;amp;") {
		t.Fatalf("card %s", posts[0].Blocks)
	}
	// 500 characters as typed, the most a reason may have, although Slack
	// sends 625.
	reason := strings.Repeat("R&D ", releases.MaxReason/4)
	w.slack.Slash("amp-2", alice, "lock "+reason)
	w.slack.WaitFor("the lock", func() bool { posts, _, _ := w.slack.Snapshot(); return hasText(posts, ":lock:") })
	if l, _ := w.Store.Lock(context.Background(), "www"); l == nil || l.Reason != strings.TrimSpace(reason) {
		t.Fatalf("lock %+v", l)
	}
}
