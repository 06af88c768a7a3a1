package slackbot

import (
	"encoding/json"
	"errors"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/releases"
)

// hostile is text from outside that Slack would turn into a ping, a
// mention or a disguised link if it reached a message unescaped.
var hostile = []string{
	"fix <!channel> see <https://evil.example/login|release notes>",
	"<!here>",
	"<!everyone>",
	"<@U0ATTACK>",
	"<#C0ATTACK>",
	"<!subteam^S0ATTACK>",
	"<https://evil.example>",
	"<mailto:a@evil.example|support>",
	"&lt;!channel&gt;", // already escaped: must not come back as markup
	"a & b < c > d",
}

// unsafe are the openings of Slack's markup that only the bot may write.
var unsafe = []string{"<!", "<@", "<#", "<http", "<mailto"}

// strs collects every string of a JSON value that Slack may read as
// markup: the blocks' mrkdwn texts and the buttons' values. A plain_text
// object (a label, a confirm dialog) is shown as written, markup and all.
func strs(v any, out *[]string) {
	switch x := v.(type) {
	case string:
		*out = append(*out, x)
	case []any:
		for _, e := range x {
			strs(e, out)
		}
	case map[string]any:
		if x["type"] == "plain_text" {
			return
		}
		for _, e := range x {
			strs(e, out)
		}
	}
}

// checkEscaped fails when a message, its blocks or its fallback text,
// carries Slack markup the bot did not write, or shows an entity it
// decoded back.
func checkEscaped(t *testing.T, what, input string, m bot.Message) {
	t.Helper()
	p := encode(m)
	raw, err := json.Marshal(p.blocks)
	if err != nil {
		t.Fatal(err)
	}
	var v any
	if err := json.Unmarshal(raw, &v); err != nil {
		t.Fatal(err)
	}
	texts := []string{p.text}
	strs(v, &texts)
	for _, s := range texts {
		for _, u := range unsafe {
			if strings.Contains(s, u) {
				t.Errorf("%s: %q survives unescaped in %q", what, u, s)
			}
		}
		if strings.HasPrefix(input, "&lt;") && strings.Contains(s, "&lt;!channel&gt;") && !strings.Contains(s, "&amp;lt;!channel&amp;gt;") {
			t.Errorf("%s: pre-escaped text came back as markup: %q", what, s)
		}
	}
}

// Every renderer, fed hostile text in every field that comes from outside
// (CI, users, the bucket, error texts), posts it escaped, in the blocks
// and in the fallback text.
func TestHostileTextIsEscapedEverywhere(t *testing.T) {
	now := t0
	for _, h := range hostile {
		site := releases.Site{Name: "www", RepoURL: "https://github.com/acme/www"}
		d := releases.Deploy{ID: "d-" + h, Site: "www", Kind: releases.KindPromote, Actor: h, Reason: h, From: "v1", To: "v2", StartedAt: now}
		rel := releases.Release{Site: "www", Version: "v2", Commit: h, Message: h, Build: releases.Build{Branch: h, CIURL: h, PullRequest: h}, Files: 1, Bytes: 10, PublishedAt: now}
		diff := &releases.Diff{Site: "www", From: "v1", To: "v2", Added: []releases.DiffFile{{Path: h}}, Removed: []releases.DiffFile{{Path: h}}, Changed: []releases.DiffFile{{Path: h}}}
		live := "v1"
		st := &releases.Status{Site: "www", Live: &live, OriginPath: h, Recorded: h, Drift: true, Deploy: &d,
			Lock: &releases.Lock{Site: "www", Holder: h, Reason: h, Since: now}, Links: map[string]string{"slack": h}}
		errH := errors.New(h)
		msgs := map[string]bot.Message{
			"card running":   bot.Card(bot.CardState{Deploy: d, Phase: h, Elapsed: time.Second}),
			"card failed":    bot.Card(bot.CardState{Deploy: d, Result: "failed", Error: h}),
			"live":           bot.LiveMessage(d, time.Second),
			"notice":         bot.NoticeMessage(site, rel, diff, bot.NoticeState{Live: h, Older: true}),
			"notice live":    bot.NoticeMessage(site, rel, diff, bot.NoticeState{Live: "v2", LiveSince: now}),
			"notice compare": bot.NoticeMessage(site, rel, diff, bot.NoticeState{Live: "v1", LiveCommit: h}),
			"versions": bot.VersionsMessage(site, []releases.VersionInfo{{Release: rel, Pin: &releases.Pin{By: h, Reason: h}}},
				[]releases.Deploy{{To: "v2", Actor: h, Phase: releases.PhaseDone}}, now),
			"status": bot.StatusMessage(st, now),
			"prune": bot.PruneMessage(&releases.PruneReport{Site: "www", Actor: h, Deleted: []releases.PrunedRelease{{Version: "v0", Error: h}},
				Kept: []releases.KeptRelease{{Version: "v1", Reason: h}}}, errH),
			"prune skipped": bot.PruneMessage(&releases.PruneReport{Site: "www", Skipped: h}, nil),
			"diff":          bot.DiffMessage(diff),
			"help":          {Text: bot.HelpText(h)},
			"error":         {Text: bot.ErrorText(errH)},
			"mention":       {Text: bot.Mention(h)},
		}
		req := releases.ApprovalRequest{ID: "r1", Site: "www", Version: "v2", From: "v1", Actor: h, Reason: h, Override: h, Required: 2,
			State: releases.ApprovalPending, Approvals: []releases.ApprovalVote{{By: h}}, Expires: now, DecidedBy: h + " too", Why: h}
		msgs["approval pending"] = bot.ApprovalView{Site: site, Request: req, Approvers: []string{h}}.Message()
		approved := req
		approved.State = releases.ApprovalApproved
		for _, phase := range []releases.Phase{releases.PhaseDone, releases.PhaseFailed} {
			msgs["approval deploy "+string(phase)] = bot.ApprovalView{Site: site, Request: approved,
				Deploy: &releases.Deploy{ID: "r1", To: "v2", Phase: phase, Error: h, FinishedAt: now}, Live: h}.Message()
		}
		for _, state := range []releases.ApprovalState{releases.ApprovalApproved, releases.ApprovalRejected, releases.ApprovalExpired, releases.ApprovalFailed} {
			decided := req
			decided.State = state
			msgs["approval decided "+string(state)] = bot.ApprovalDecidedMessage(site, decided, bot.Mention(h))
		}
		for _, typ := range []releases.EventType{releases.EventDeployStarted, releases.EventPhaseStarted, releases.EventPhaseFinished,
			releases.EventPhaseFailed, releases.EventPhaseNote, releases.EventDeployFailed, releases.EventDeployResumed, releases.EventDeployInterrupted} {
			auto := d
			auto.Actor = releases.AutoActor
			msgs["thread "+string(typ)] = bot.Message{Text: bot.ThreadLine(releases.Event{Type: typ, Deploy: auto, Phase: releases.Phase(h), Title: h, Err: errH})}
		}
		for name, m := range msgs {
			checkEscaped(t, name+" with "+h, h, m)
		}
	}
}
