package slackbot

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
)

func TestCutMrkdwn(t *testing.T) {
	tests := []struct {
		in    string
		limit int
		want  string
	}{
		{"short", 10, "short"},
		{"abcdefghijklmnop", 10, "abcdef…"}, // room kept for a closing fence
		{"ab &amp; cdefghijkl", 10, "ab …"}, // not inside an entity
		{"ab <@U123> cdefghij", 10, "ab …"}, // not inside a mention
		{"```\ncode code code code", 14, "```\ncode c…```"},
		{"ab 😀😀😀😀😀😀😀😀", 10, "ab 😀…"}, // emoji count two
	}
	for _, tt := range tests {
		got := cutMrkdwn(tt.in, tt.limit)
		if got != tt.want || length(got) > tt.limit {
			t.Errorf("cutMrkdwn(%q, %d) = %q (%d), want %q", tt.in, tt.limit, got, length(got), tt.want)
		}
	}
}

// posted is a message as msgOptions would post it: fit, then the JSON
// Slack receives.
func posted(t testing.TB, p posting) (string, []byte) {
	p = fit(p)
	raw, err := json.Marshal(p.blocks)
	if err != nil {
		t.Fatal(err)
	}
	if len(p.blocks) == 0 {
		raw = nil
	}
	return p.text, raw
}

// FuzzMessagesFitSlack: whatever the lengths and counts of what goes
// into a message, what is posted is within Slack's limits, as the fake
// Slack checks them.
func FuzzMessagesFitSlack(f *testing.F) {
	f.Add("why", 1, 1)
	f.Add("<!channel> & 😀", 3000, 60)
	f.Add("a", 40001, 0)
	f.Fuzz(func(t *testing.T, piece string, n, count int) {
		n, count = n%50000, count%200
		if n < 0 {
			n = -n
		}
		if count < 0 {
			count = -count
		}
		long := strings.Repeat(piece, 1+n/max(1, len(piece)))
		version := "v" + strings.Repeat("9", min(127, n))
		d := releases.Deploy{ID: "d", Site: "www", Kind: releases.KindPromote, Actor: long, Reason: long, From: version, To: version, StartedAt: t0}
		var files []releases.DiffFile
		var vs []releases.VersionInfo
		for i := 0; i < count; i++ {
			files = append(files, releases.DiffFile{Path: long})
			vs = append(vs, releases.VersionInfo{Release: releases.Release{Version: version, Commit: long, PublishedAt: t0}, Pin: &releases.Pin{By: long, Reason: long}})
		}
		diff := &releases.Diff{Site: "www", From: version, To: version, Added: files, Changed: files}
		lock := &releases.Lock{Holder: long, Reason: long, Since: t0}
		msgs := []bot.Message{
			bot.Card(bot.CardState{Deploy: d, Phase: long, Elapsed: time.Second}),
			bot.LiveMessage(d, time.Second),
			bot.NoticeMessage(releases.Site{Name: "www"}, releases.Release{Version: version, Commit: long, Message: long}, diff, bot.NoticeState{Live: long, Older: true}),
			bot.VersionsMessage(releases.Site{Name: "www"}, vs, nil, t0),
			bot.StatusMessage(&releases.Status{Site: "www", Lock: lock, Deploy: &d, OriginPath: long, Drift: true, Recorded: long}, t0),
			bot.DiffMessage(diff),
			bot.PruneMessage(&releases.PruneReport{Site: "www", Actor: long, Deleted: []releases.PrunedRelease{{Version: version, Error: long}}}, nil),
			{Text: bot.ThreadLine(releases.Event{Type: releases.EventPhaseFailed, Deploy: d, Title: long, Err: releases.Errorf(releases.EINTERNAL, "%s", long)})},
		}
		// An approval card asking many approvers, its deploy failed with a
		// long error; what the asker is told, for every decision.
		var approvers []string
		for i := 0; i < count; i++ {
			approvers = append(approvers, fmt.Sprintf("U%020d", i), fmt.Sprintf("S%020d", i))
		}
		req := releases.ApprovalRequest{ID: "r", Site: "www", Version: version, From: version, Actor: long, Reason: long, Override: long, Required: 5,
			State: releases.ApprovalPending, Expires: t0, DecidedBy: long + "2", Why: long}
		for i := 0; i < count%6; i++ {
			req.Approvals = append(req.Approvals, releases.ApprovalVote{By: long})
		}
		msgs = append(msgs, bot.ApprovalView{Site: releases.Site{Name: "www"}, Request: req, Approvers: approvers}.Message())
		for _, state := range []releases.ApprovalState{releases.ApprovalApproved, releases.ApprovalRejected, releases.ApprovalExpired, releases.ApprovalFailed} {
			decided := req
			decided.State = state
			msgs = append(msgs, bot.ApprovalView{Site: releases.Site{Name: "www"}, Request: decided,
				Deploy: &releases.Deploy{ID: "r", To: version, Phase: releases.PhaseFailed, Error: long}, Live: version}.Message(),
				bot.ApprovalDecidedMessage(releases.Site{Name: "www"}, decided, bot.Mention(long)))
		}
		var posts []posting
		for _, m := range msgs {
			posts = append(posts, posting{text: string(m.Text), blocks: blockKit(m)})
		}
		// Past what the bot builds: more blocks, context elements and
		// buttons than Slack takes, and a block id past its 255.
		posts = append(posts, posting{text: long, blocks: manyBlocks(count, long)})
		for i, p := range posts {
			text, blocks := posted(t, p)
			if code, err := slackfake.ValidateMessage(text, blocks); code != "" {
				t.Fatalf("message %d: Slack would answer %s: %v", i, code, err)
			}
		}
	})
}

// manyBlocks is count sections and a context of count elements, past
// Slack's counts.
func manyBlocks(count int, text string) []slack.Block {
	var out []slack.Block
	var els []slack.MixedElement
	var btns []slack.BlockElement
	for i := 0; i < count; i++ {
		out = append(out, slack.NewSectionBlock(mdText(bot.Md("%s", text)), nil, nil))
		els = append(els, mdText(bot.Md("%s", text)))
		btns = append(btns, slack.NewButtonBlockElement("a", "v", plainText(text)))
	}
	if len(els) > 0 {
		out = append(out, slack.NewContextBlock("", els...), slack.NewActionBlock(text, btns...))
	}
	return out
}
