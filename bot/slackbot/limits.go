package slackbot

import (
	"strings"
	"unicode/utf16"

	"github.com/deploybot/deploybot/bot"
	"github.com/slack-go/slack"
)

// Slack's limits on what a message may hold; Slack refuses a message
// that breaks one (invalid_blocks, msg_too_long), and the post is lost
// (https://api.slack.com/reference/block-kit/blocks,
// https://api.slack.com/reference/block-kit/block-elements#button,
// https://api.slack.com/reference/block-kit/composition-objects#confirm,
// https://api.slack.com/methods/chat.postMessage).
const (
	maxBlocks          = 50
	maxSectionText     = 3000
	maxFields          = 10
	maxFieldText       = 2000
	maxContextElements = 10
	maxActionElements  = 25
	maxHeaderText      = 150
	maxButtonText      = 75
	maxConfirmTitle    = 100
	maxConfirmText     = 300
	maxConfirmButton   = 30
	maxText            = 3000
	maxMessageText     = 40000
	maxBlockID         = 255
)

// posting is a message as Slack takes it: the fallback text and the
// Block Kit blocks.
type posting struct {
	text   string
	blocks []slack.Block
}

// encode is m as it is posted: Block Kit, within Slack's limits. Every
// post goes through here.
func encode(m bot.Message) posting { return fit(posting{text: string(m.Text), blocks: blockKit(m)}) }

// fit makes a message keep within Slack's limits, so that no post fails
// for its length: texts are cut with an ellipsis (never inside an entity
// or a mention, and closing a code block the cut leaves open), lists of
// fields, elements and blocks are cut with "(N more)", block ids to their
// 255 characters. It changes m's blocks in place; they are built fresh
// for every post.
func fit(m posting) posting {
	m.text = cutMrkdwn(m.text, maxMessageText)
	if len(m.blocks) > maxBlocks {
		more := len(m.blocks) - (maxBlocks - 1)
		m.blocks = append(m.blocks[:maxBlocks-1:maxBlocks-1], contextText(bot.Md("(%d more not shown)", more)))
	}
	for _, b := range m.blocks {
		switch b := b.(type) {
		case *slack.SectionBlock:
			fitText(b.Text, maxSectionText)
			if len(b.Fields) > maxFields {
				more := len(b.Fields) - (maxFields - 1)
				b.Fields = append(b.Fields[:maxFields-1:maxFields-1], mdText(bot.Md("(%d more)", more)))
			}
			for _, f := range b.Fields {
				fitText(f, maxFieldText)
			}
		case *slack.HeaderBlock:
			fitText(b.Text, maxHeaderText)
		case *slack.ContextBlock:
			els := b.ContextElements.Elements
			if len(els) > maxContextElements {
				more := len(els) - (maxContextElements - 1)
				els = append(els[:maxContextElements-1:maxContextElements-1], mdText(bot.Md("(%d more)", more)))
				b.ContextElements.Elements = els
			}
			for _, e := range els {
				if t, ok := e.(*slack.TextBlockObject); ok {
					fitText(t, maxText)
				}
			}
		case *slack.ActionBlock:
			b.BlockID = prefix(b.BlockID, maxBlockID)
			if b.Elements == nil {
				continue
			}
			if len(b.Elements.ElementSet) > maxActionElements {
				b.Elements.ElementSet = b.Elements.ElementSet[:maxActionElements]
			}
			for _, e := range b.Elements.ElementSet {
				if btn, ok := e.(*slack.ButtonBlockElement); ok {
					fitText(btn.Text, maxButtonText)
					if c := btn.Confirm; c != nil {
						fitText(c.Title, maxConfirmTitle)
						fitText(c.Text, maxConfirmText)
						fitText(c.Confirm, maxConfirmButton)
						fitText(c.Deny, maxConfirmButton)
					}
				}
			}
		}
	}
	return m
}

// fitText cuts a text object to limit characters; an empty one, which
// Slack refuses, becomes a dash.
func fitText(t *slack.TextBlockObject, limit int) {
	if t == nil {
		return
	}
	if t.Text == "" {
		t.Text = "—"
	}
	if t.Type == slack.MarkdownType {
		t.Text = cutMrkdwn(t.Text, limit)
	} else {
		t.Text = cutPlain(t.Text, limit)
	}
}

// length counts characters as Slack does, conservatively: UTF-16 code
// units, so most emoji count two.
func length(s string) int { return len(utf16.Encode([]rune(s))) }

// prefix returns the longest prefix of s of at most n characters (as
// length counts them), on a rune boundary.
func prefix(s string, n int) string {
	units := 0
	for i, r := range s {
		w := 1
		if r >= 0x10000 {
			w = 2
		}
		if units+w > n {
			return s[:i]
		}
		units += w
	}
	return s
}

func cutPlain(s string, limit int) string {
	if length(s) <= limit {
		return s
	}
	return prefix(s, limit-1) + "…"
}

// cutMrkdwn cuts mrkdwn to limit characters with an ellipsis. The cut
// backs off to before an entity (&amp;) or a mention or link (<...>) it
// would split, and a code block it leaves open is closed.
func cutMrkdwn(s string, limit int) string {
	if length(s) <= limit {
		return s
	}
	const fence = "```"
	kept := prefix(s, limit-1-len(fence))
	if i := strings.LastIndexByte(kept, '&'); i >= 0 && !strings.Contains(kept[i:], ";") {
		kept = kept[:i]
	}
	if i := strings.LastIndexByte(kept, '<'); i >= 0 && !strings.Contains(kept[i:], ">") {
		kept = kept[:i]
	}
	kept += "…"
	if strings.Count(kept, fence)%2 == 1 {
		kept += fence
	}
	return kept
}
