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
	"time"

	"github.com/gorilla/websocket"
	"github.com/slack-go/slack/slacktest"
)

// fakeSlack is Slack as the tests need it: slacktest's server with a
// socket-mode /ws endpoint of our own, and the Web API methods it lacks
// (chat.update, usergroups.users.list) or that we must observe closely.
type Server struct {
	t   TB
	srv *slacktest.Server

	Mu sync.Mutex
	// Conn is the latest socket-mode connection; live are all that are
	// open. An app may hold several at once (up to 10), and Slack sends
	// each envelope to one of them
	// (https://api.slack.com/apis/connections/socket, "Using multiple
	// connections"): Send takes them in turn, so a test with two
	// replicas sees both get envelopes. Conns counts connections made.
	Conn      *websocket.Conn
	live      []*websocket.Conn
	next      int
	Conns     int
	acks      map[string]time.Time
	ackCount  map[string]int
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
	// Unavailable makes the next n chat.postMessage calls fail as Slack
	// does when it cannot take a message for a while: ok false, error
	// service_unavailable
	// (https://api.slack.com/methods/chat.postMessage#errors).
	Unavailable int
	// DMs are the direct messages (D...) the bot is in: a DM is between
	// its two people, and an app is in one only when it was added to it
	// (its own DM with a person; https://api.slack.com/scopes/im:read,
	// "direct messages that your Slack app has been added to"; opening
	// one takes im:write, https://api.slack.com/scopes/im:write). In any
	// other DM, such as one between two people where someone typed a
	// slash command, chat.postMessage and chat.postEphemeral answer
	// channel_not_found ("Value passed for channel was invalid",
	// https://api.slack.com/methods/chat.postMessage#errors); the
	// command's response_url is how an app answers there
	// (https://api.slack.com/interactivity/handling#message_responses).
	DMs map[string]bool
	// Channels are the conversations conversations.info knows.
	Channels map[string]Channel
	// GroupCalls counts usergroups.users.list calls.
	GroupCalls int
	// origins of envelopes, for the answers in their acks; responses are
	// the response URLs handed out.
	origins   map[string]origin
	responses map[string]*responseURL
	// ResponsesRefused counts answers a response_url refused (used five
	// times, expired, unknown).
	ResponsesRefused int
	// rateLimitUpdates makes the next n chat.update calls answer 429.
	RateLimitUpdates int
	Limited          int
	// PerMinute, when set for a method, is its budget: Slack's Web API
	// methods are limited per app and workspace by tier (chat.update is
	// Tier 3, about 50 calls a minute; chat.postMessage is special, about
	// one message a second per channel with short bursts;
	// https://api.slack.com/apis/rate-limits), and a call past it is
	// answered 429 with Retry-After in seconds (RetryAfter here; Slack's
	// says when the window frees). Unset: unlimited, as most tests want.
	PerMinute  map[string]int
	RetryAfter int
	// calls are the times each method was called, refused or not.
	calls map[string][]time.Time
	// deleted are the messages someone deleted (Delete).
	deleted map[string]bool
	// AcksDropped counts socket-mode responses Slack never took: 20 KB
	// or more (MaxResponse).
	AcksDropped int
}

// TB is what the fake needs of a test (testing.TB has it); a benchmark
// program gives its own.
type TB interface {
	Helper()
	Fatal(args ...any)
	Fatalf(format string, args ...any)
	Cleanup(func())
}

// Delete deletes a message, as a person may in Slack.
func (f *Server) Delete(ts string) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if f.deleted == nil {
		f.deleted = map[string]bool{}
	}
	f.deleted[ts] = true
}

type Post struct {
	// TS is the message's ts; an ephemeral message has one too, which a
	// click on it names (the container's message_ts).
	Channel, TS, ThreadTS, Text, User string
	Blocks                            json.RawMessage
	// Broadcast: a thread reply also shown in the channel, posted with
	// reply_broadcast, which Slack heeds only with thread_ts
	// (https://api.slack.com/methods/chat.postMessage#arg_reply_broadcast:
	// "Used in conjunction with thread_ts and indicates whether reply
	// should be made visible to everyone in the channel or conversation").
	Broadcast bool
	// Via is how it was sent: chat.postMessage, chat.postEphemeral,
	// chat.update, ack (a socket-mode ack's payload), response_url;
	// response_url (replace_original) once a click's response replaced it.
	Via string
	// Deleted: a click's response deleted it (delete_original).
	Deleted bool
}

// origin is who typed a command and where, for its answers.
type origin struct{ user, channel string }

func New(t TB) *Server {
	f := &Server{t: t, acks: map[string]time.Time{}, ackCount: map[string]int{}, sent: map[string]time.Time{}, Groups: map[string][]string{}, NotIn: map[string]bool{}, DMs: map[string]bool{}, Channels: map[string]Channel{},
		origins: map[string]origin{}, responses: map[string]*responseURL{}}
	f.srv = slacktest.NewTestServer(func(c slacktest.Customize) {
		c.Handle("/apps.connections.open", func(w http.ResponseWriter, r *http.Request) {
			f.json(w, map[string]any{"ok": true, "url": "ws://" + r.Host + "/ws"})
		})
		c.Handle("/ws", f.ws)
		c.Handle("/chat.postMessage", f.postMessage)
		c.Handle("/chat.update", f.update)
		c.Handle("/chat.postEphemeral", f.postEphemeral)
		c.Handle("/respond/", f.respond)
		c.Handle("/chat.getPermalink", f.permalink)
		c.Handle("/conversations.info", f.conversationInfo)
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

// find is the message with ts, posted or ephemeral; nil if none. f.Mu is
// held.
func (f *Server) find(ts string) *Post {
	for _, l := range [][]Post{f.Posts, f.Ephemeral} {
		for i := range l {
			if l[i].TS == ts {
				return &l[i]
			}
		}
	}
	return nil
}

// Message is the message with ts as it is now (replaced, or deleted).
func (f *Server) Message(ts string) (Post, bool) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if p := f.find(ts); p != nil {
		return *p, true
	}
	return Post{}, false
}

func (f *Server) Snapshot() (posts, updates, ephemeral []Post) {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return append([]Post(nil), f.Posts...), append([]Post(nil), f.Updates...), append([]Post(nil), f.Ephemeral...)
}

// Acks is how many acks of envelopeID arrived: one per delivery of it
// that the app read (a redelivered envelope is acked again).
func (f *Server) Acks(envelopeID string) int {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return f.ackCount[envelopeID]
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
		broadcast := ""
		if p.Broadcast {
			broadcast = " broadcast"
		}
		fmt.Fprintf(&b, "\n  [%s ts=%s thread=%s via=%s%s] %s", p.Channel, p.TS, p.ThreadTS, p.Via, broadcast, p.Text)
	}
	return b.String()
}

// HasText reports whether a post's text contains sub.
func HasText(ps []Post, sub string) bool {
	for _, p := range ps {
		if strings.Contains(p.Text, sub) {
			return true
		}
	}
	return false
}
