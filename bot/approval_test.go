package bot

import (
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// A card asks the site's approvers as Slack can notify them: users and
// user groups by id, people by their Slack ids, never the person who
// asked, each once; names Slack cannot notify are left out.
func TestApproverIDs(t *testing.T) {
	b := &Bot{Service: &releases.Service{Access: &releases.Access{People: []releases.Person{
		{Name: "alice", Slack: []string{"UALICE"}, AWS: []string{"arn:aws:iam::1:user/alice"}},
		{Name: "carol", Slack: []string{"UCAROL", "WCAROL"}},
	}}}}
	site := releases.Site{Name: "www", Deployers: []string{"UDEPLOYER"},
		Approval: releases.Approval{Required: 1, Approvers: []string{"SOPS", "alice", "carol", "UCAROL", "arn:aws:iam::1:user/ci", "token:ci", "<!channel>", "UBOB"}}}
	got := strings.Join(b.ApproverIDs(site, "arn:aws:iam::1:user/alice"), " ")
	if got != "SOPS UCAROL WCAROL UBOB" {
		t.Fatalf("approvers asked: %s", got)
	}
	site.Approval.Approvers = nil
	if got := strings.Join(b.ApproverIDs(site, "UALICE"), " "); got != "UDEPLOYER" {
		t.Fatalf("without approvers, the deployers: %s", got)
	}
	for in, want := range map[string]Mrkdwn{"UBOB": "<@UBOB>", "WCAROL": "<@WCAROL>", "SOPS": "<!subteam^SOPS>", "alice": "", "<!channel>": "", "S": ""} {
		if got := Audience(in); got != want {
			t.Errorf("Audience(%q) = %q, want %q", in, got, want)
		}
	}
	// The person who asked from the command line is mentioned by their
	// Slack id; someone the people list does not know, by name.
	if got := b.MentionOf("arn:aws:iam::1:user/alice"); got != "<@UALICE>" {
		t.Errorf("MentionOf(alice's ARN) = %q", got)
	}
	if got := b.MentionOf("token:<!here>"); got != "token:&lt;!here&gt;" {
		t.Errorf("MentionOf(an unknown token) = %q", got)
	}
}
