package slackbot

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/slack-go/slack/socketmode"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/slackfake"
)

// An ack with its answer stays under the 20 KB past which Slack drops it,
// whatever the answer holds: 3,000 characters of the ones JSON writes
// longest. Help and the longest parse error fit uncut.
func TestAckAnswerStaysUnder20KB(t *testing.T) {
	b := &bot.Bot{Command: "/site"}
	for _, unit := range []string{"&", "<", "\u2028", "\x01", "😀", "x"} {
		answer, _ := ackAnswer(b, bot.Command{Action: bot.Reject, Error: strings.Repeat(unit, 20000)})
		raw, err := json.Marshal(socketmode.Response{EnvelopeID: strings.Repeat("e", 64), Payload: answer})
		if err != nil {
			t.Fatal(err)
		}
		if len(raw) >= slackfake.MaxResponse {
			t.Errorf("%q: an ack of %d bytes", unit, len(raw))
		}
	}
	for _, text := range []string{strings.Repeat("x", 30000), "status " + strings.Repeat("\u2028", 30000), "promote v" + strings.Repeat("9", 30000)} {
		cmd := bot.Parse(text, []string{"www"})
		want, _ := b.TextAnswer(cmd)
		answer, ok := ackAnswer(b, cmd)
		if !ok || answer["text"] != string(want) {
			t.Errorf("%.30q: the answer was cut: %.200q", text, answer["text"])
		}
	}
}
