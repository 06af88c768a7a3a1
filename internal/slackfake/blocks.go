package slackfake

import (
	"encoding/json"
	"fmt"
	"unicode/utf16"
)

// Slack's limits on a message, as its reference documents them; what
// breaks one is refused with invalid_blocks (or msg_too_long for the
// text), as Slack refuses it:
//   - https://api.slack.com/reference/block-kit/blocks (50 blocks a
//     message; section text 3,000, fields 10 of 2,000; context 10
//     elements; actions 25 elements; header 150; block_id 255)
//   - https://api.slack.com/reference/block-kit/block-elements#button
//     (text 75, value 2,000, action_id 255)
//   - https://api.slack.com/reference/block-kit/composition-objects#confirm
//     (title 100, text 300, confirm and deny 30; each a plain_text text
//     object, so a mrkdwn one is refused)
//   - https://api.slack.com/reference/block-kit/composition-objects#text
//     (3,000)
//   - https://api.slack.com/methods/chat.postMessage (msg_too_long;
//     text is truncated past 40,000 characters, and refused here)
const (
	MaxBlocks          = 50
	MaxSectionText     = 3000
	MaxFields          = 10
	MaxFieldText       = 2000
	MaxContextElements = 10
	MaxActionElements  = 25
	MaxHeaderText      = 150
	MaxButtonText      = 75
	MaxButtonValue     = 2000
	MaxID              = 255
	MaxConfirmTitle    = 100
	MaxConfirmText     = 300
	MaxConfirmButton   = 30
	MaxText            = 3000
	MaxMessageText     = 40000
)

// Length counts characters as Slack does, conservatively: UTF-16 code
// units, so a character outside the Basic Multilingual Plane (most emoji)
// counts two.
func Length(s string) int { return len(utf16.Encode([]rune(s))) }

type textObj struct {
	Type string `json:"type"`
	Text string `json:"text"`
}

type element struct {
	Type     string   `json:"type"`
	Text     *textObj `json:"text"`
	ActionID string   `json:"action_id"`
	Value    string   `json:"value"`
	Confirm  *struct {
		Title   *textObj `json:"title"`
		Text    *textObj `json:"text"`
		Confirm *textObj `json:"confirm"`
		Deny    *textObj `json:"deny"`
	} `json:"confirm"`
}

type block struct {
	Type     string            `json:"type"`
	BlockID  string            `json:"block_id"`
	Text     *textObj          `json:"text"`
	Fields   []textObj         `json:"fields"`
	Elements []json.RawMessage `json:"elements"`
}

// ValidateMessage checks a message's text and blocks (JSON, as
// chat.postMessage takes them) against Slack's limits; the error is the
// one Slack answers, with why.
func ValidateMessage(text string, blocks []byte) (code string, err error) {
	if Length(text) > MaxMessageText {
		return "msg_too_long", fmt.Errorf("text is %d characters, over %d", Length(text), MaxMessageText)
	}
	if len(blocks) == 0 {
		return "", nil
	}
	if err := ValidateBlocks(blocks); err != nil {
		return "invalid_blocks", err
	}
	return "", nil
}

// ValidateBlocks checks blocks against Slack's limits.
func ValidateBlocks(raw []byte) error {
	var blocks []block
	if err := json.Unmarshal(raw, &blocks); err != nil {
		return fmt.Errorf("blocks are not a JSON array of blocks: %w", err)
	}
	if len(blocks) > MaxBlocks {
		return fmt.Errorf("%d blocks, over %d", len(blocks), MaxBlocks)
	}
	for i, b := range blocks {
		where := fmt.Sprintf("blocks[%d] (%s)", i, b.Type)
		if Length(b.BlockID) > MaxID {
			return fmt.Errorf("%s: block_id over %d", where, MaxID)
		}
		switch b.Type {
		case "section":
			if b.Text == nil && len(b.Fields) == 0 {
				return fmt.Errorf("%s: neither text nor fields", where)
			}
			if err := checkText(b.Text, MaxSectionText, where+".text"); err != nil {
				return err
			}
			if len(b.Fields) > MaxFields {
				return fmt.Errorf("%s: %d fields, over %d", where, len(b.Fields), MaxFields)
			}
			for j := range b.Fields {
				if err := checkText(&b.Fields[j], MaxFieldText, fmt.Sprintf("%s.fields[%d]", where, j)); err != nil {
					return err
				}
			}
		case "header":
			if b.Text == nil || b.Text.Type != "plain_text" {
				return fmt.Errorf("%s: a header's text is plain_text", where)
			}
			if err := checkText(b.Text, MaxHeaderText, where+".text"); err != nil {
				return err
			}
		case "context":
			if len(b.Elements) == 0 || len(b.Elements) > MaxContextElements {
				return fmt.Errorf("%s: %d elements, not 1 to %d", where, len(b.Elements), MaxContextElements)
			}
			for j, raw := range b.Elements {
				var t textObj
				if err := json.Unmarshal(raw, &t); err != nil {
					return fmt.Errorf("%s.elements[%d]: %w", where, j, err)
				}
				if t.Type == "mrkdwn" || t.Type == "plain_text" {
					if err := checkText(&t, MaxText, fmt.Sprintf("%s.elements[%d]", where, j)); err != nil {
						return err
					}
				}
			}
		case "actions":
			if len(b.Elements) == 0 || len(b.Elements) > MaxActionElements {
				return fmt.Errorf("%s: %d elements, not 1 to %d", where, len(b.Elements), MaxActionElements)
			}
			for j, raw := range b.Elements {
				var e element
				if err := json.Unmarshal(raw, &e); err != nil {
					return fmt.Errorf("%s.elements[%d]: %w", where, j, err)
				}
				if err := checkElement(e, fmt.Sprintf("%s.elements[%d]", where, j)); err != nil {
					return err
				}
			}
		case "divider":
		default:
			return fmt.Errorf("%s: a block type the fake does not model", where)
		}
	}
	return nil
}

func checkElement(e element, where string) error {
	if e.Type != "button" {
		return fmt.Errorf("%s: an element type the fake does not model: %s", where, e.Type)
	}
	if e.Text == nil || e.Text.Type != "plain_text" || e.Text.Text == "" {
		return fmt.Errorf("%s: a button's text is non-empty plain_text", where)
	}
	if err := checkText(e.Text, MaxButtonText, where+".text"); err != nil {
		return err
	}
	if Length(e.Value) > MaxButtonValue {
		return fmt.Errorf("%s: value is %d characters, over %d", where, Length(e.Value), MaxButtonValue)
	}
	if Length(e.ActionID) > MaxID {
		return fmt.Errorf("%s: action_id over %d", where, MaxID)
	}
	if c := e.Confirm; c != nil {
		for _, part := range []struct {
			name string
			t    *textObj
			max  int
		}{{"title", c.Title, MaxConfirmTitle}, {"text", c.Text, MaxConfirmText}, {"confirm", c.Confirm, MaxConfirmButton}, {"deny", c.Deny, MaxConfirmButton}} {
			if part.t == nil {
				return fmt.Errorf("%s.confirm.%s: missing", where, part.name)
			}
			if part.t.Type != "plain_text" {
				return fmt.Errorf("%s.confirm.%s: a confirm dialog's texts are plain_text, got %q", where, part.name, part.t.Type)
			}
			if err := checkText(part.t, part.max, where+".confirm."+part.name); err != nil {
				return err
			}
		}
	}
	return nil
}

func checkText(t *textObj, limit int, where string) error {
	if t == nil {
		return nil
	}
	if t.Type != "mrkdwn" && t.Type != "plain_text" {
		return fmt.Errorf("%s: text type %q", where, t.Type)
	}
	if t.Text == "" {
		return fmt.Errorf("%s: empty text", where)
	}
	if n := Length(t.Text); n > limit {
		return fmt.Errorf("%s: %d characters, over %d", where, n, limit)
	}
	return nil
}
