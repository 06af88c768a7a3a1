package slackbot

import "testing"

// Answers go to Slack's response URLs only: commercial Slack's and
// GovSlack's (slack-gov.com), whichever API the bot talks to, and a test
// fake's host when it talks to one.
func TestValidResponseURL(t *testing.T) {
	for _, c := range []struct {
		api, url string
		ok       bool
	}{
		{"", "https://hooks.slack.com/commands/T1/1/abc", true},
		{"", "https://hooks.slack-gov.com/commands/T1/1/abc", true},
		{"https://slack-gov.com/api/", "https://hooks.slack-gov.com/actions/T1/1/abc", true},
		{"", "https://slack-gov.com/x", true},
		{"", "http://hooks.slack-gov.com/commands/T1/1/abc", false},
		{"", "https://hooks.slack-gov.com.evil.example/x", false},
		{"", "https://evilslack-gov.com/x", false},
		{"", "https://evil.example/x?h=hooks.slack.com", false},
		{"", "ftp://hooks.slack.com/x", false},
		{"", "not a url", false},
		{"http://127.0.0.1:4000/", "http://127.0.0.1:4000/respond/e1", true},
		{"http://127.0.0.1:4000/", "http://127.0.0.2:4000/respond/e1", false},
		{"http://127.0.0.1:4000/", "https://hooks.slack.com/commands/T1/1/abc", true},
	} {
		s := &Slack{apiURL: c.api}
		if got := s.validResponseURL(c.url); got != c.ok {
			t.Errorf("API %q: %s accepted %v, want %v", c.api, c.url, got, c.ok)
		}
	}
}
