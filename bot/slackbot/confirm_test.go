package slackbot

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
)

// textObjects calls fn with every text object of a JSON value and where
// it is (the key that holds it, "confirm.text" inside a dialog).
func textObjects(v any, key string, fn func(where string, t map[string]any)) {
	switch x := v.(type) {
	case []any:
		for _, e := range x {
			textObjects(e, key, fn)
		}
	case map[string]any:
		if typ, _ := x["type"].(string); typ == "mrkdwn" || typ == "plain_text" {
			fn(key, x)
			return
		}
		for k, e := range x {
			where := k
			if key == "confirm" {
				where = "confirm." + k
			}
			textObjects(e, where, fn)
		}
	}
}

// Confirm dialogs are plain text, as Slack's reference has them (it
// refuses a mrkdwn text there): no markup, no mentions, which would show
// as written. Every mrkdwn text is verbatim, so Slack turns nothing in
// text from outside into a link or a mention.
func TestConfirmDialogsArePlainAndMrkdwnIsVerbatim(t *testing.T) {
	site := releases.Site{Name: "www"}
	d := releases.Deploy{ID: "20261128T100000Z-abcd1234", Site: "www", Kind: releases.KindPromote, Actor: "UALICE", From: "v41", To: "v42", StartedAt: t0}
	r := releases.Release{Site: "www", Version: "v42", Message: "see https://example.com #general @here"}
	a := releases.ApprovalRequest{ID: "r1", Site: "www", Version: "v42", From: "v41", Actor: "UALICE", Reason: "@channel ship it", Required: 1,
		State: releases.ApprovalPending, Expires: t0.Add(time.Hour)}
	msgs := map[string]bot.Message{
		"live":         bot.LiveMessage(d, time.Minute),
		"notice":       bot.NoticeMessage(site, r, nil, bot.NoticeState{}),
		"notice newer": bot.NoticeMessage(site, r, nil, bot.NoticeState{Live: "v41"}),
		"notice older": bot.NoticeMessage(site, r, nil, bot.NoticeState{Live: "v45", Older: true}),
		"approval":     bot.ApprovalMessage(site, a),
	}
	for name, m := range msgs {
		raw, err := json.Marshal(encode(m).blocks)
		if err != nil {
			t.Fatal(err)
		}
		if err := slackfake.ValidateBlocks(raw); err != nil {
			t.Errorf("%s: Slack refuses it: %v", name, err)
		}
		var v any
		_ = json.Unmarshal(raw, &v)
		dialogs := 0
		textObjects(v, "", func(where string, o map[string]any) {
			text, _ := o["text"].(string)
			switch {
			case strings.HasPrefix(where, "confirm."):
				dialogs++
				if o["type"] != "plain_text" {
					t.Errorf("%s: %s is %s: %q", name, where, o["type"], text)
				}
				if strings.ContainsAny(text, "`*<>&") {
					t.Errorf("%s: %s holds markup, which plain text shows as written: %q", name, where, text)
				}
			case o["type"] == "mrkdwn" && o["verbatim"] != true:
				t.Errorf("%s: %s is mrkdwn without verbatim: %q", name, where, text)
			}
		})
		if dialogs != 4 {
			t.Errorf("%s: %d confirm texts, want one dialog of 4", name, dialogs)
		}
	}
}
