package bot_test

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack/slacktest"
)

// fakeSlack is Slack as the tests need it: slacktest's server with a
// socket-mode /ws endpoint of our own, and the Web API methods it lacks
// (chat.update, usergroups.users.list) or that we must observe closely.
type fakeSlack struct {
	t   *testing.T
	srv *slacktest.Server

	mu        sync.Mutex
	conn      *websocket.Conn
	conns     int
	acks      map[string]time.Time
	sent      map[string]time.Time
	posts     []post
	updates   []post
	ephemeral []post
	seq       int
	groups    map[string][]string
	// rateLimitUpdates makes the next n chat.update calls answer 429.
	rateLimitUpdates int
	limited          int
}

type post struct {
	Channel, TS, ThreadTS, Text, User string
	Blocks                            json.RawMessage
}

func newFakeSlack(t *testing.T) *fakeSlack {
	f := &fakeSlack{t: t, acks: map[string]time.Time{}, sent: map[string]time.Time{}, groups: map[string][]string{}}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/apps.connections.open", func(w http.ResponseWriter, r *http.Request) {
			f.json(w, map[string]any{"ok": true, "url": "ws://" + r.Host + "/ws"})
		})
		c.Handle("/ws", f.ws)
		c.Handle("/chat.postMessage", f.postMessage)
		c.Handle("/chat.update", f.update)
		c.Handle("/chat.postEphemeral", f.postEphemeral)
		c.Handle("/usergroups.users.list", func(w http.ResponseWriter, r *http.Request) {
			_ = r.ParseForm()
			f.mu.Lock()
			users := f.groups[r.Form.Get("usergroup")]
			f.mu.Unlock()
			if users == nil {
				f.json(w, map[string]any{"ok": false, "error": "no_such_subteam"})
				return
			}
			f.json(w, map[string]any{"ok": true, "users": users})
		})
	})
	f.srv.Start()
	t.Cleanup(f.srv.Stop)
	return f
}

func (f *fakeSlack) apiURL() string { return f.srv.GetAPIURL() }

func (f *fakeSlack) json(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *fakeSlack) ws(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	// Hello goes out before the connection is shared: gorilla allows one
	// writer at a time, and send writes under f.mu.
	_ = c.WriteJSON(map[string]any{"type": "hello", "num_connections": 1, "connection_info": map[string]any{"app_id": "A1"}, "debug_info": map[string]any{"host": "fake"}})
	f.mu.Lock()
	f.conn = c
	f.conns++
	f.mu.Unlock()
	for {
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if err := c.ReadJSON(&ack); err != nil {
			return
		}
		f.mu.Lock()
		f.acks[ack.EnvelopeID] = time.Now()
		f.mu.Unlock()
	}
}

func (f *fakeSlack) nextTS() string {
	f.seq++
	return fmt.Sprintf("1700000000.%06d", f.seq)
}

func formPost(r *http.Request) post {
	_ = r.ParseForm()
	p := post{Channel: r.Form.Get("channel"), TS: r.Form.Get("ts"), ThreadTS: r.Form.Get("thread_ts"), Text: r.Form.Get("text"), User: r.Form.Get("user")}
	if b := r.Form.Get("blocks"); b != "" {
		p.Blocks = json.RawMessage(b)
	}
	return p
}

func (f *fakeSlack) postMessage(w http.ResponseWriter, r *http.Request) {
	p := formPost(r)
	f.mu.Lock()
	p.TS = f.nextTS()
	f.posts = append(f.posts, p)
	f.mu.Unlock()
	f.json(w, map[string]any{"ok": true, "channel": p.Channel, "ts": p.TS})
}

func (f *fakeSlack) update(w http.ResponseWriter, r *http.Request) {
	p := formPost(r)
	f.mu.Lock()
	if f.rateLimitUpdates > 0 {
		f.rateLimitUpdates--
		f.limited++
		f.mu.Unlock()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	f.updates = append(f.updates, p)
	f.mu.Unlock()
	f.json(w, map[string]any{"ok": true, "channel": p.Channel, "ts": p.TS, "text": p.Text})
}

func (f *fakeSlack) postEphemeral(w http.ResponseWriter, r *http.Request) {
	p := formPost(r)
	f.mu.Lock()
	p.TS = f.nextTS()
	f.ephemeral = append(f.ephemeral, p)
	f.mu.Unlock()
	f.json(w, map[string]any{"ok": true, "message_ts": p.TS})
}

// send delivers an envelope over the socket.
func (f *fakeSlack) send(envelopeID, typ string, payload any) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.mu.Lock()
		c := f.conn
		f.mu.Unlock()
		if c != nil {
			f.mu.Lock()
			f.sent[envelopeID] = time.Now()
			err := c.WriteJSON(map[string]any{"envelope_id": envelopeID, "type": typ, "payload": payload, "accepts_response_payload": typ == "slash_commands"})
			f.mu.Unlock()
			if err == nil {
				return
			}
		}
		if time.Now().After(deadline) {
			f.t.Fatal("no socket-mode connection to send on")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (f *fakeSlack) slash(envelopeID, user, text string) {
	f.send(envelopeID, "slash_commands", map[string]any{"command": "/site", "text": text, "user_id": user, "channel_id": "CCMD", "team_id": "T1", "trigger_id": "tr-" + envelopeID})
}

// drop closes the socket from the server side, as Slack does on refresh.
func (f *fakeSlack) drop() {
	f.mu.Lock()
	c := f.conn
	f.conn = nil
	f.mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

func (f *fakeSlack) snapshot() (posts, updates, ephemeral []post) {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]post(nil), f.posts...), append([]post(nil), f.updates...), append([]post(nil), f.ephemeral...)
}

func (f *fakeSlack) ackDelay(envelopeID string) (time.Duration, bool) {
	f.mu.Lock()
	defer f.mu.Unlock()
	a, ok := f.acks[envelopeID]
	return a.Sub(f.sent[envelopeID]), ok
}

func (f *fakeSlack) waitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			posts, updates, eph := f.snapshot()
			f.t.Fatalf("timed out waiting for %s\nposts: %s\nupdates: %d\nephemeral: %s", what, dump(posts), len(updates), dump(eph))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func dump(ps []post) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  [%s ts=%s thread=%s] %s", p.Channel, p.TS, p.ThreadTS, p.Text)
	}
	return b.String()
}
