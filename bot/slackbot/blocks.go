package slackbot

import (
	"github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
)

// blockKit encodes a chat message as Block Kit
// (https://api.slack.com/reference/block-kit/blocks): a section's text
// and fields are mrkdwn (verbatim), a note is a context block, a row of
// buttons an actions block whose buttons' labels and confirm dialogs are
// plain_text, which Slack shows literally. The blocks are new on every call, so fit
// may cut them in place.
func blockKit(m bot.Message) []slack.Block {
	var out []slack.Block
	for _, b := range m.Blocks {
		switch b := b.(type) {
		case bot.Section:
			var text *slack.TextBlockObject
			if b.Text != "" || len(b.Fields) == 0 {
				text = mdText(b.Text)
			}
			var fields []*slack.TextBlockObject
			for _, f := range b.Fields {
				fields = append(fields, mdText(f))
			}
			out = append(out, slack.NewSectionBlock(text, fields, nil))
		case bot.Note:
			out = append(out, contextText(b.Text))
		case bot.Buttons:
			var els []slack.BlockElement
			for _, btn := range b.Buttons {
				els = append(els, button(btn))
			}
			out = append(out, slack.NewActionBlock(b.ID, els...))
		}
	}
	return out
}

func button(b bot.Button) *slack.ButtonBlockElement {
	btn := slack.NewButtonBlockElement(b.Action, b.Value, plainText(b.Label))
	switch b.Style {
	case bot.Primary:
		btn.Style = slack.StylePrimary
	case bot.Danger:
		btn.Style = slack.StyleDanger
	}
	if c := b.Confirm; c != nil {
		// Every part of a confirm dialog is plain_text
		// (https://api.slack.com/reference/block-kit/composition-objects#confirm):
		// Slack refuses a mrkdwn text there with invalid_blocks.
		btn.Confirm = slack.NewConfirmationBlockObject(plainText(c.Title), plainText(c.Text), plainText(c.OK), plainText(c.Cancel))
		if c.Danger {
			btn.Confirm.Style = slack.StyleDanger
		}
	}
	return btn
}

func contextText(text bot.Mrkdwn) *slack.ContextBlock {
	return slack.NewContextBlock("", mdText(text))
}

// mdText is a mrkdwn text object; plainText a plain_text one, which
// Slack shows literally (no mentions, no links).
//
// Every mrkdwn text object is verbatim: Slack then leaves the text as
// written, turning no bare URL into a link, no channel name into a channel
// link and no "@here" into a mention, while still rendering the markup and
// the mentions and links the bot wrote itself
// (https://api.slack.com/reference/block-kit/composition-objects#text).
// Text from outside (commit messages, reasons, names) is in nearly every
// message, and the bot writes all its own links and mentions explicitly.
func mdText(text bot.Mrkdwn) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.MarkdownType, string(text), false, true)
}

func plainText(text string) *slack.TextBlockObject {
	return slack.NewTextBlockObject(slack.PlainTextType, text, false, false)
}
