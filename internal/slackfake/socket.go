// Socket mode: the /ws connections, envelopes sent in turn over them,
// their acks, and what a person types or clicks.

package slackfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"time"

	"github.com/gorilla/websocket"
)

// MaxResponse is the size from which Slack drops a socket-mode response
// (an envelope's ack, with its payload) without a word: the envelope
// stays unacknowledged and the payload is never shown. Slack's socket
// mode pages do not state the limit; slack-go measured it against Slack
// and refuses to send such a response
// (https://github.com/slack-go/slack/issues/1196, socketmode.go's
// maxResponseSize), and the fake drops it as Slack does.
const MaxResponse = 20 * 1024

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *Server) ws(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	// Hello goes out before the connection is shared: gorilla allows one
	// writer at a time, and send writes under f.Mu. It counts the app's
	// open connections, this one included.
	f.Mu.Lock()
	n := len(f.live) + 1
	f.Mu.Unlock()
	_ = c.WriteJSON(map[string]any{"type": "hello", "num_connections": n, "connection_info": map[string]any{"app_id": "A1"}, "debug_info": map[string]any{"host": "fake"}})
	f.Mu.Lock()
	f.Conn = c
	f.live = append(f.live, c)
	f.Conns++
	f.Mu.Unlock()
	defer f.gone(c)
	for {
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
			Payload    *struct {
				ResponseType string          `json:"response_type"`
				Text         string          `json:"text"`
				Blocks       json.RawMessage `json:"blocks"`
			} `json:"payload"`
		}
		_, raw, err := c.ReadMessage()
		if err != nil {
			return
		}
		if len(raw) >= MaxResponse {
			f.Mu.Lock()
			f.AcksDropped++
			f.Mu.Unlock()
			continue
		}
		if err := json.Unmarshal(raw, &ack); err != nil {
			return
		}
		f.Mu.Lock()
		f.acks[ack.EnvelopeID] = time.Now()
		f.ackCount[ack.EnvelopeID]++
		if p := ack.Payload; p != nil && (p.Text != "" || len(p.Blocks) > 0) {
			o := f.origins[ack.EnvelopeID]
			post := Post{Channel: o.channel, User: o.user, Text: p.Text, Blocks: p.Blocks, Via: "ack"}
			post.TS = f.nextTS()
			if p.ResponseType == "in_channel" {
				f.Posts = append(f.Posts, post)
			} else {
				f.Ephemeral = append(f.Ephemeral, post)
			}
		}
		f.Mu.Unlock()
	}
}

// gone forgets a closed connection.
func (f *Server) gone(c *websocket.Conn) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	for i, l := range f.live {
		if l == c {
			f.live = append(f.live[:i], f.live[i+1:]...)
			break
		}
	}
	if f.Conn == c {
		f.Conn = nil
		if n := len(f.live); n > 0 {
			f.Conn = f.live[n-1]
		}
	}
}

// Live is how many socket-mode connections are open.
func (f *Server) Live() int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return len(f.live)
}

// send delivers an envelope over the socket.
func (f *Server) Send(envelopeID, typ string, payload any) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.Mu.Lock()
		var c *websocket.Conn
		if n := len(f.live); n > 0 {
			c = f.live[f.next%n]
			f.next++
		}
		if c != nil {
			f.sent[envelopeID] = time.Now()
			err := c.WriteJSON(map[string]any{"envelope_id": envelopeID, "type": typ, "payload": payload, "accepts_response_payload": typ == "slash_commands"})
			f.Mu.Unlock()
			if err == nil {
				return
			}
		} else {
			f.Mu.Unlock()
		}
		if time.Now().After(deadline) {
			f.t.Fatal("no socket-mode connection to send on")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// Slash types a command in channel CCMD.
func (f *Server) Slash(envelopeID, user, text string) { f.SlashIn(envelopeID, user, "CCMD", text) }

// SlashIn types a command in a channel (a DM's id is D...), with a
// response_url of its own. The text goes as Slack sends it: &, < and >
// as &amp;, &lt; and &gt;
// (https://api.slack.com/interactivity/slash-commands,
// https://api.slack.com/reference/surfaces/formatting#escaping).
func (f *Server) SlashIn(envelopeID, user, channel, text string) {
	f.Send(envelopeID, "slash_commands", map[string]any{"command": "/site", "text": EncodeText(text), "user_id": user, "channel_id": channel,
		"team_id": "T1", "trigger_id": "tr-" + envelopeID, "response_url": f.ResponseURL(envelopeID, user, channel)})
}

// EncodeText is text as Slack sends what a person typed: its three
// control characters as entities, and nothing else.
func EncodeText(s string) string { return textEntities.Replace(s) }

var textEntities = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")

// ClickPayload is the block_actions payload Slack sends when user clicks
// the button actionID of the message with ts, as the message is now
// (https://api.slack.com/reference/interaction-payloads/block-actions):
// the button's value and its block's block_id (one Slack made up when
// the block has none, https://api.slack.com/reference/block-kit/blocks),
// the message and its container (is_ephemeral for a message only user
// sees), and a response_url of its own for the click. false when there is
// no such button to click: the message was deleted, or replaced by one
// without it.
func (f *Server) ClickPayload(envelopeID, user, ts, actionID string) (map[string]any, bool) {
	f.Mu.Lock()
	p := f.find(ts)
	if p == nil || p.Deleted {
		f.Mu.Unlock()
		return nil, false
	}
	m := *p
	for _, u := range f.Updates { // chat.update changed it
		if u.TS == ts && u.Channel == m.Channel {
			m.Text, m.Blocks = u.Text, u.Blocks
		}
	}
	ephemeral := false
	for _, e := range f.Ephemeral {
		ephemeral = ephemeral || e.TS == ts
	}
	f.Mu.Unlock()
	var blocks []struct {
		BlockID  string `json:"block_id"`
		Elements []struct {
			ActionID string `json:"action_id"`
			Value    string `json:"value"`
		} `json:"elements"`
	}
	_ = json.Unmarshal(m.Blocks, &blocks)
	for i, b := range blocks {
		for _, e := range b.Elements {
			if e.ActionID != actionID {
				continue
			}
			if b.BlockID == "" {
				b.BlockID = fmt.Sprintf("fake-block-%d", i)
			}
			ru := f.ResponseURL(envelopeID, user, m.Channel)
			f.Mu.Lock()
			f.responses[envelopeID].source = ts
			f.Mu.Unlock()
			return map[string]any{
				"type": "block_actions", "user": map[string]any{"id": user}, "channel": map[string]any{"id": m.Channel},
				"container":    map[string]any{"type": "message", "message_ts": ts, "channel_id": m.Channel, "is_ephemeral": ephemeral},
				"message":      map[string]any{"ts": ts, "thread_ts": m.ThreadTS, "text": m.Text},
				"response_url": ru,
				"actions":      []map[string]any{{"action_id": actionID, "block_id": b.BlockID, "value": e.Value, "type": "button"}},
			}, true
		}
	}
	return nil, false
}

// Click is user clicking the button actionID of the message with ts, if
// it is there to click (ClickPayload); false when it is not, and nothing
// is sent.
func (f *Server) Click(envelopeID, user, ts, actionID string) bool {
	f.t.Helper()
	payload, ok := f.ClickPayload(envelopeID, user, ts, actionID)
	if ok {
		f.Send(envelopeID, "interactive", payload)
	}
	return ok
}

// Drop closes the latest socket from the server side, as Slack does on
// refresh.
func (f *Server) Drop() {
	f.Mu.Lock()
	c := f.Conn
	f.Mu.Unlock()
	if c != nil {
		_ = c.Close()
		f.gone(c)
	}
}

func (f *Server) AckDelay(envelopeID string) (time.Duration, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	a, ok := f.acks[envelopeID]
	return a.Sub(f.sent[envelopeID]), ok
}
