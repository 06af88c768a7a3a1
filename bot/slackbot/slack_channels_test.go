package slackbot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
)

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

// The number of socket-mode connections Slack counts for the app (every
// replica's) reaches the metric with each hello.
func TestHelloCountsConnections(t *testing.T) {
	w := newWorld(t, 0)
	w.slack.WaitFor("the hello's num_connections", func() bool { return w.conns.Load() == 1 })
}
