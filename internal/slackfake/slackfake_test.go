package slackfake

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack"
)

// dial opens a socket-mode connection to the fake as an app would, and
// reads its hello.
func dial(t *testing.T, f *Server) *websocket.Conn {
	t.Helper()
	c, _, err := websocket.DefaultDialer.Dial("ws://"+strings.TrimSuffix(strings.TrimPrefix(f.APIURL(), "http://"), "/")+"/ws", nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	var hello map[string]any
	if err := c.ReadJSON(&hello); err != nil || hello["type"] != "hello" {
		t.Fatalf("hello %v %v", hello, err)
	}
	return c
}

// A socket-mode response of 20 KB or more never reaches Slack: the
// envelope stays unacknowledged and its answer is not shown. One just
// under the limit is taken.
func TestAckOf20KBIsDropped(t *testing.T) {
	f := New(t)
	c := dial(t, f)
	ack := func(id string, size int) {
		t.Helper()
		// {"envelope_id":"..","payload":{"text":"xxx"}}
		frame := `{"envelope_id":"` + id + `","payload":{"response_type":"ephemeral","text":"`
		frame += strings.Repeat("x", size-len(frame)-len(`"}}`)) + `"}}`
		if len(frame) != size {
			t.Fatalf("frame of %d bytes, want %d", len(frame), size)
		}
		if err := c.WriteMessage(websocket.TextMessage, []byte(frame)); err != nil {
			t.Fatal(err)
		}
	}
	ack("big", MaxResponse)
	ack("small", MaxResponse-1)
	f.WaitFor("the small ack", func() bool { _, ok := f.AckDelay("small"); return ok })
	if _, ok := f.AckDelay("big"); ok {
		t.Fatal("an ack of 20 KB was taken")
	}
	_, _, eph := f.Snapshot()
	f.Mu.Lock()
	dropped := f.AcksDropped
	f.Mu.Unlock()
	if dropped != 1 || len(eph) != 1 || len(eph[0].Text) != MaxResponse-1-len(`{"envelope_id":"small","payload":{"response_type":"ephemeral","text":""}}`) {
		t.Fatalf("dropped %d, answers shown %d", dropped, len(eph))
	}
}

// A confirm dialog's texts are plain_text; Slack refuses the message
// (invalid_blocks) when one is mrkdwn.
func TestConfirmTextMustBePlain(t *testing.T) {
	button := func(textType string) []byte {
		return []byte(`[{"type":"actions","elements":[{"type":"button","action_id":"a","value":"v","text":{"type":"plain_text","text":"Go"},
			"confirm":{"title":{"type":"plain_text","text":"Sure?"},"text":{"type":"` + textType + `","text":"Make v2 live?"},
			"confirm":{"type":"plain_text","text":"Yes"},"deny":{"type":"plain_text","text":"No"}}}]}]`)
	}
	if code, err := ValidateMessage("x", button("plain_text")); code != "" {
		t.Fatalf("plain_text refused: %s %v", code, err)
	}
	if code, err := ValidateMessage("x", button("mrkdwn")); code != "invalid_blocks" || !strings.Contains(err.Error(), "confirm.text") {
		t.Fatalf("mrkdwn: %q %v", code, err)
	}
}

// A click's response_url replaces or deletes the message clicked,
// ephemeral or not; a button that is gone cannot be clicked.
func TestClickResponseReplacesOrDeletesTheMessage(t *testing.T) {
	f := New(t)
	post := func(url, body string) {
		t.Helper()
		resp, err := http.Post(url, "application/json", strings.NewReader(body))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %s", body, resp.Status)
		}
	}
	buttons := `[{"type":"actions","elements":[{"type":"button","action_id":"yes","value":"v","text":{"type":"plain_text","text":"Yes"}}]}]`
	for _, c := range []struct{ answer, want string }{
		{`{"replace_original":true,"text":"done"}`, "done"},
		{`{"delete_original":true}`, ""},
	} {
		cmd := f.ResponseURL("cmd-"+c.want, "U1", "D1")
		post(cmd, `{"response_type":"ephemeral","text":"sure?","blocks":`+buttons+`}`)
		_, _, eph := f.Snapshot()
		q := eph[len(eph)-1]
		if q.TS == "" || q.Text != "sure?" {
			t.Fatalf("question %+v", q)
		}
		payload, ok := f.ClickPayload("click-"+c.want, "U1", q.TS, "yes")
		if !ok {
			t.Fatal("no button")
		}
		if cont := payload["container"].(map[string]any); cont["is_ephemeral"] != true || cont["message_ts"] != q.TS {
			t.Fatalf("container %v", cont)
		}
		post(payload["response_url"].(string), c.answer)
		m, _ := f.Message(q.TS)
		if m.Deleted != (c.want == "") || (c.want != "" && (m.Text != c.want || len(m.Blocks) != 0)) {
			t.Fatalf("after %s: %+v", c.answer, m)
		}
		if _, ok := f.ClickPayload("again-"+c.want, "U1", q.TS, "yes"); ok {
			t.Fatalf("after %s the button can still be clicked", c.answer)
		}
	}
}

// A thread reply posted with reply_broadcast is recorded as shown in the
// channel too; reply_broadcast without thread_ts means nothing. Posting
// in a DM the bot was not added to is refused (channel_not_found), in one
// it is in it is taken.
func TestBroadcastAndDirectMessages(t *testing.T) {
	f := New(t)
	api := slack.New("xoxb-test", slack.OptionAPIURL(f.APIURL()))
	ctx := context.Background()
	_, root, err := api.PostMessageContext(ctx, "C1", slack.MsgOptionText("root", false))
	if err != nil {
		t.Fatal(err)
	}
	for _, opts := range [][]slack.MsgOption{
		{slack.MsgOptionText("quiet", false), slack.MsgOptionTS(root)},
		{slack.MsgOptionText("loud", false), slack.MsgOptionTS(root), slack.MsgOptionBroadcast()},
		{slack.MsgOptionText("top", false), slack.MsgOptionBroadcast()},
	} {
		if _, _, err := api.PostMessageContext(ctx, "C1", opts...); err != nil {
			t.Fatal(err)
		}
	}
	posts, _, _ := f.Snapshot()
	var got []string
	for _, p := range posts {
		got = append(got, fmt.Sprintf("%s:%v", p.Text, p.Broadcast))
	}
	if strings.Join(got, " ") != "root:false quiet:false loud:true top:false" {
		t.Fatalf("posts %s", got)
	}

	f.Mu.Lock()
	f.DMs["DBOT"] = true
	f.Mu.Unlock()
	var refused slack.SlackErrorResponse
	if _, _, err := api.PostMessageContext(ctx, "DPEOPLE", slack.MsgOptionText("hi", false)); !errors.As(err, &refused) || refused.Err != "channel_not_found" {
		t.Fatalf("chat.postMessage in a DM between people: %v", err)
	}
	if _, err := api.PostEphemeralContext(ctx, "DPEOPLE", "U1", slack.MsgOptionText("hi", false)); !errors.As(err, &refused) || refused.Err != "channel_not_found" {
		t.Fatalf("chat.postEphemeral in a DM between people: %v", err)
	}
	if _, _, err := api.PostMessageContext(ctx, "DBOT", slack.MsgOptionText("hi", false)); err != nil {
		t.Fatalf("chat.postMessage in the bot's own DM: %v", err)
	}
}
