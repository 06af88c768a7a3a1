package slackbot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
)

// A deploy interrupted by a restart goes on in the card and thread it
// started in when recovery resumes it: the thread says it resumes and
// ends with the live reply, and the same card ends live. (Before, the
// thread promised "resumes when it is back" and then fell silent, the
// card stuck at its last phase.)
func TestAResumedDeployGoesOnInItsCardAndThread(t *testing.T) {
	w := newWorld(t, 3*time.Second)
	w.publish("v1")
	w.slack.Slash("r-1", alice, "promote v1 launch")
	w.slack.WaitFor("the deploy waiting for CloudFront", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(posts, "waiting for CloudFront to deploy…")
	})
	posts, _, _ := w.slack.Snapshot()
	card := posts[0]
	ds, _ := w.Store.Deploys(context.Background(), "www", 1)
	links, _ := w.Service.DeployLinks(context.Background(), "www", ds[0].ID)
	if want := card.Channel + " " + card.TS + " " + card.TS; links[releases.DeployLinkCard] != want {
		t.Fatalf("card link %q, want %q", links[releases.DeployLinkCard], want)
	}

	w.restart(nil) // the deploy is interrupted in its wait
	w.slack.WaitFor("the interruption in the thread", func() bool {
		posts, _, _ := w.slack.Snapshot()
		return hasText(thread(posts, card.TS), "deploybot is restarting")
	})
	progress, end := w.app.Resumed(context.Background())
	recovered, err := w.Service.Recover(context.Background(), progress)
	end()
	if err != nil || len(recovered) != 1 || recovered[0].Phase != releases.PhaseDone {
		t.Fatalf("recover: %+v %v", recovered, err)
	}

	posts, updates, _ := w.slack.Snapshot()
	var texts []string
	for _, p := range thread(posts, card.TS) {
		texts = append(texts, p.Text)
	}
	got := strings.Join(texts, "\n")
	resumed := strings.Index(got, "resuming from phase `propagate`")
	if resumed < 0 || !strings.Contains(got[resumed:], "`v1` is live on *www*") {
		t.Fatalf("the thread after the restart:\n%s", got)
	}
	last := updates[len(updates)-1]
	if last.TS != card.TS || !strings.Contains(last.Text, "live") {
		t.Fatalf("the card's last update %+v", last)
	}
	for _, p := range posts[1:] {
		if p.ThreadTS == "" && strings.Contains(p.Text, "Promote www") {
			t.Fatalf("a second card was posted: %+v", p)
		}
	}
}

// A card link that points outside the site's channel (a DM, another
// channel: the bucket is outside input) is not followed: the resumed
// deploy ends without a post there.
func TestAResumedDeployFollowsOnlyACardInItsChannel(t *testing.T) {
	for _, elsewhere := range []string{"D0ELSE 1700000000.000001 1700000000.000001", "C0ELSE 1700000000.000001 1700000000.000001"} {
		t.Run(elsewhere[:6], func(t *testing.T) {
			w := newWorld(t, 3*time.Second)
			w.publish("v1")
			w.slack.Slash("r-1", alice, "promote v1 launch")
			w.slack.WaitFor("the deploy waiting for CloudFront", func() bool {
				posts, _, _ := w.slack.Snapshot()
				return hasText(posts, "waiting for CloudFront to deploy…")
			})
			w.restart(nil)
			ds, _ := w.Store.Deploys(context.Background(), "www", 1)
			if err := w.Service.SetDeployLink(context.Background(), "www", ds[0].ID, releases.DeployLinkCard, elsewhere); err != nil {
				t.Fatal(err)
			}
			before, updatesBefore, _ := w.slack.Snapshot()
			progress, end := w.app.Resumed(context.Background())
			if _, err := w.Service.Recover(context.Background(), progress); err != nil {
				t.Fatal(err)
			}
			end()
			after, updatesAfter, _ := w.slack.Snapshot()
			if len(after) != len(before) || len(updatesAfter) != len(updatesBefore) {
				t.Fatalf("posted for a card elsewhere: %s", strings.Join(texts(after[len(before):]), "\n"))
			}
		})
	}
}

func texts(ps []slackfake.Post) []string {
	var out []string
	for _, p := range ps {
		out = append(out, p.Channel+": "+p.Text)
	}
	return out
}
