// Package slackfake is Slack for tests: slacktest's server with a
// socket-mode /ws endpoint of its own and the Web API methods slacktest
// lacks (chat.update, usergroups.users.list), recording what the bot
// posts.
package slackfake

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
type Server struct {
	t   testing.TB
	srv *slacktest.Server

	Mu        sync.Mutex
	Conn      *websocket.Conn
	Conns     int
	acks      map[string]time.Time
	sent      map[string]time.Time
	Posts     []Post
	Updates   []Post
	Ephemeral []Post
	// Refused are the posts Slack would refuse (invalid_blocks,
	// msg_too_long), with why in Text.
	Refused []Post
	seq     int
	Groups  map[string][]string
	// NotIn are channels the bot cannot post to (a private channel it was
	// not invited to): chat.postMessage answers channel_not_found, as
	// Slack does (https://api.slack.com/methods/chat.postMessage#errors).
	NotIn map[string]bool
	// GroupCalls counts usergroups.users.list calls.
	GroupCalls int
	// rateLimitUpdates makes the next n chat.update calls answer 429.
	RateLimitUpdates int
	Limited          int
}

type Post struct {
	Channel, TS, ThreadTS, Text, User string
	Blocks                            json.RawMessage
}

func New(t testing.TB) *Server {
	f := &Server{t: t, acks: map[string]time.Time{}, sent: map[string]time.Time{}, Groups: map[string][]string{}, NotIn: map[string]bool{}}
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
			f.Mu.Lock()
			f.GroupCalls++
			users := f.Groups[r.Form.Get("usergroup")]
			f.Mu.Unlock()
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

func (f *Server) APIURL() string { return f.srv.GetAPIURL() }

func (f *Server) json(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

var upgrader = websocket.Upgrader{CheckOrigin: func(*http.Request) bool { return true }}

func (f *Server) ws(w http.ResponseWriter, r *http.Request) {
	c, err := upgrader.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	// Hello goes out before the connection is shared: gorilla allows one
	// writer at a time, and send writes under f.Mu.
	_ = c.WriteJSON(map[string]any{"type": "hello", "num_connections": 1, "connection_info": map[string]any{"app_id": "A1"}, "debug_info": map[string]any{"host": "fake"}})
	f.Mu.Lock()
	f.Conn = c
	f.Conns++
	f.Mu.Unlock()
	for {
		var ack struct {
			EnvelopeID string `json:"envelope_id"`
		}
		if err := c.ReadJSON(&ack); err != nil {
			return
		}
		f.Mu.Lock()
		f.acks[ack.EnvelopeID] = time.Now()
		f.Mu.Unlock()
	}
}

func (f *Server) nextTS() string {
	f.seq++
	return fmt.Sprintf("1700000000.%06d", f.seq)
}

func formPost(r *http.Request) Post {
	_ = r.ParseForm()
	p := Post{Channel: r.Form.Get("channel"), TS: r.Form.Get("ts"), ThreadTS: r.Form.Get("thread_ts"), Text: r.Form.Get("text"), User: r.Form.Get("user")}
	if b := r.Form.Get("blocks"); b != "" {
		p.Blocks = json.RawMessage(b)
	}
	return p
}

// refuse answers a post that breaks Slack's limits as Slack does, and
// records it; false when the post is fine.
func (f *Server) refuse(w http.ResponseWriter, p Post) bool {
	code, err := ValidateMessage(p.Text, p.Blocks)
	if code == "" {
		return false
	}
	f.Mu.Lock()
	p.Text = code + ": " + err.Error()
	f.Refused = append(f.Refused, p)
	f.Mu.Unlock()
	f.json(w, map[string]any{"ok": false, "error": code})
	return true
}

func (f *Server) postMessage(w http.ResponseWriter, r *http.Request) {
	p := formPost(r)
	f.Mu.Lock()
	notIn := f.NotIn[p.Channel]
	f.Mu.Unlock()
	if notIn {
		f.json(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	if f.refuse(w, p) {
		return
	}
	f.Mu.Lock()
	p.TS = f.nextTS()
	f.Posts = append(f.Posts, p)
	f.Mu.Unlock()
	f.json(w, map[string]any{"ok": true, "channel": p.Channel, "ts": p.TS})
}

func (f *Server) update(w http.ResponseWriter, r *http.Request) {
	p := formPost(r)
	if f.refuse(w, p) {
		return
	}
	f.Mu.Lock()
	if f.RateLimitUpdates > 0 {
		f.RateLimitUpdates--
		f.Limited++
		f.Mu.Unlock()
		w.Header().Set("Retry-After", "1")
		w.WriteHeader(http.StatusTooManyRequests)
		return
	}
	f.Updates = append(f.Updates, p)
	f.Mu.Unlock()
	f.json(w, map[string]any{"ok": true, "channel": p.Channel, "ts": p.TS, "text": p.Text})
}

func (f *Server) postEphemeral(w http.ResponseWriter, r *http.Request) {
	p := formPost(r)
	if f.refuse(w, p) {
		return
	}
	f.Mu.Lock()
	p.TS = f.nextTS()
	f.Ephemeral = append(f.Ephemeral, p)
	f.Mu.Unlock()
	f.json(w, map[string]any{"ok": true, "message_ts": p.TS})
}

// send delivers an envelope over the socket.
func (f *Server) Send(envelopeID, typ string, payload any) {
	f.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		f.Mu.Lock()
		c := f.Conn
		f.Mu.Unlock()
		if c != nil {
			f.Mu.Lock()
			f.sent[envelopeID] = time.Now()
			err := c.WriteJSON(map[string]any{"envelope_id": envelopeID, "type": typ, "payload": payload, "accepts_response_payload": typ == "slash_commands"})
			f.Mu.Unlock()
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

func (f *Server) Slash(envelopeID, user, text string) {
	f.Send(envelopeID, "slash_commands", map[string]any{"command": "/site", "text": text, "user_id": user, "channel_id": "CCMD", "team_id": "T1", "trigger_id": "tr-" + envelopeID})
}

// drop closes the socket from the server side, as Slack does on refresh.
func (f *Server) Drop() {
	f.Mu.Lock()
	c := f.Conn
	f.Conn = nil
	f.Mu.Unlock()
	if c != nil {
		_ = c.Close()
	}
}

func (f *Server) Snapshot() (posts, updates, ephemeral []Post) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return append([]Post(nil), f.Posts...), append([]Post(nil), f.Updates...), append([]Post(nil), f.Ephemeral...)
}

func (f *Server) AckDelay(envelopeID string) (time.Duration, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	a, ok := f.acks[envelopeID]
	return a.Sub(f.sent[envelopeID]), ok
}

func (f *Server) WaitFor(what string, cond func() bool) {
	f.t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			posts, updates, eph := f.Snapshot()
			f.t.Fatalf("timed out waiting for %s\nposts: %s\nupdates: %d\nephemeral: %s", what, Dump(posts), len(updates), Dump(eph))
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func Dump(ps []Post) string {
	var b strings.Builder
	for _, p := range ps {
		fmt.Fprintf(&b, "\n  [%s ts=%s thread=%s] %s", p.Channel, p.TS, p.ThreadTS, p.Text)
	}
	return b.String()
}
