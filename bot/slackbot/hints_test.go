package slackbot_test

import (
	"context"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/internal/slackfake"
)

// cliFlag is a command-line flag in a text: "--no-verify", or the long
// dash Slack makes of "--".
var cliFlag = regexp.MustCompile(`(--|—)[a-z]`)

// A refusal whose remedy is a command-line flag tells a Slack user what
// to do in Slack's words: nobody can type --no-verify into Slack.
func TestSlackRefusalNamesNoCommandLineFlag(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.publish("v1")
	// v1's page goes missing from the bucket: the promote's check refuses.
	if _, err := w.S3.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String(w.Site.Bucket), Key: aws.String(w.Site.Prefix + "v1/index.html")}); err != nil {
		t.Fatal(err)
	}
	w.slack.Slash("h-1", alice, "promote v1")
	var refusal slackfake.Post
	w.slack.WaitFor("the refusal", func() bool {
		posts, updates, eph := w.slack.Snapshot()
		for _, p := range append(append(posts, updates...), eph...) {
			if strings.Contains(p.Text, "refusing to promote v1") {
				refusal = p
				return true
			}
		}
		return false
	})
	if f := cliFlag.FindString(refusal.Text); f != "" {
		t.Errorf("Slack's refusal names the command-line flag %q: %s", f, refusal.Text)
	}
	if !strings.Contains(refusal.Text, "from the command line or the API, not from Slack") {
		t.Errorf("Slack's refusal does not say where the check can be skipped: %s", refusal.Text)
	}
	if w.live() != "" {
		t.Fatalf("a refused promote changed the distribution: %q", w.live())
	}
}
