// Package slackfake is Slack for tests: slacktest's server with a
// socket-mode /ws endpoint of its own and the Web API methods slacktest
// lacks (chat.update, usergroups.users.list), recording what the bot
// posts.
package slackfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
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

// limited counts a call of method and answers 429 when it is past the
// method's budget for the last minute; false when it may go on.
func (f *Server) limited(w http.ResponseWriter, method string) bool {
	f.Mu.Lock()
	now := time.Now()
	if f.calls == nil {
		f.calls = map[string][]time.Time{}
	}
	f.calls[method] = append(f.calls[method], now)
	budget := f.PerMinute[method]
	if budget <= 0 {
		f.Mu.Unlock()
		return false
	}
	n := 0
	for _, at := range f.calls[method] {
		if now.Sub(at) < time.Minute {
			n++
		}
	}
	retryAfter := max(f.RetryAfter, 1)
	if n <= budget {
		f.Mu.Unlock()
		return false
	}
	f.Limited++
	f.Mu.Unlock()
	w.Header().Set("Retry-After", strconv.Itoa(retryAfter))
	w.WriteHeader(http.StatusTooManyRequests)
	return true
}

// Calls returns when each call of method came, refused ones included.
func (f *Server) Calls(method string) []time.Time {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	return append([]time.Time(nil), f.calls[method]...)
}

// MaxResponse is the size from which Slack drops a socket-mode response
// (an envelope's ack, with its payload) without a word: the envelope
// stays unacknowledged and the payload is never shown. Slack's socket
// mode pages do not state the limit; slack-go measured it against Slack
// and refuses to send such a response
// (https://github.com/slack-go/slack/issues/1196, socketmode.go's
// maxResponseSize), and the fake drops it as Slack does.
const MaxResponse = 20 * 1024

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

// responseURL is one command's or click's response_url: Slack takes five
// answers within 30 minutes
// (https://api.slack.com/interactivity/handling#message_responses).
// A click's names the message clicked (source), which an answer with
// replace_original replaces and one with delete_original deletes,
// ephemeral or not (https://api.slack.com/messaging/modifying, "Updating
// messages using response_url").
type responseURL struct {
	origin
	uses    int
	created time.Time
	source  string // the clicked message's ts; "" for a command's
}

func New(t TB) *Server {
	f := &Server{t: t, acks: map[string]time.Time{}, sent: map[string]time.Time{}, Groups: map[string][]string{}, NotIn: map[string]bool{}, DMs: map[string]bool{}, Channels: map[string]Channel{},
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
	p.Broadcast = p.ThreadTS != "" && r.Form.Get("reply_broadcast") == "true"
	return p
}

// notIn reports whether the bot cannot post in channel: NotIn names it,
// or it is a direct message (D...) the bot was not added to (DMs). f.Mu
// is held.
func (f *Server) notIn(channel string) bool {
	return f.NotIn[channel] || strings.HasPrefix(channel, "D") && !f.DMs[channel]
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
	p.Via = "chat.postMessage"
	if f.limited(w, "chat.postMessage") {
		return
	}
	f.Mu.Lock()
	// A channel may be named (#deploys); Slack answers with its id.
	if name, ok := strings.CutPrefix(p.Channel, "#"); ok {
		for id, c := range f.Channels {
			if c.Name == name {
				p.Channel = id
			}
		}
	}
	notIn := f.notIn(p.Channel) || strings.HasPrefix(p.Channel, "#")
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
	p.Via = "chat.update"
	// chat.update takes the channel's id only
	// (https://api.slack.com/methods/chat.update).
	if strings.HasPrefix(p.Channel, "#") {
		f.json(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	if f.limited(w, "chat.update") || f.refuse(w, p) {
		return
	}
	f.Mu.Lock()
	// Only a message that is there can be updated
	// (https://api.slack.com/methods/chat.update#errors:
	// message_not_found).
	found := false
	for _, m := range f.Posts {
		found = found || m.Channel == p.Channel && m.TS == p.TS && !f.deleted[p.TS]
	}
	if !found {
		f.Mu.Unlock()
		f.json(w, map[string]any{"ok": false, "error": "message_not_found"})
		return
	}
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
	p.Via = "chat.postEphemeral"
	f.Mu.Lock()
	notIn := f.notIn(p.Channel)
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

// ResponseURL hands out a response_url for answers to user in channel.
func (f *Server) ResponseURL(id, user, channel string) string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.origins[id] = origin{user: user, channel: channel}
	f.responses[id] = &responseURL{origin: origin{user: user, channel: channel}, created: time.Now()}
	return f.srv.GetAPIURL() + "respond/" + id
}

// permalink answers chat.getPermalink for a message the fake holds
// (https://api.slack.com/methods/chat.getPermalink).
func (f *Server) permalink(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	ch, ts := r.Form.Get("channel"), r.Form.Get("message_ts")
	f.Mu.Lock()
	found := false
	for _, p := range f.Posts {
		if p.Channel == ch && p.TS == ts {
			found = true
		}
	}
	f.Mu.Unlock()
	if !found {
		f.json(w, map[string]any{"ok": false, "error": "message_not_found"})
		return
	}
	f.json(w, map[string]any{"ok": true, "channel": ch, "permalink": f.srv.GetAPIURL() + "archives/" + ch + "/p" + strings.ReplaceAll(ts, ".", "")})
}

// Channel is a conversation as conversations.info describes it.
type Channel struct {
	ID, Name                  string
	Private, Member, Archived bool
}

// conversationInfo answers conversations.info from Channels: a private
// channel the bot is not in is channel_not_found, as Slack hides it
// (https://api.slack.com/methods/conversations.info).
func (f *Server) conversationInfo(w http.ResponseWriter, r *http.Request) {
	_ = r.ParseForm()
	id := r.Form.Get("channel")
	f.Mu.Lock()
	c, ok := f.Channels[id]
	f.Mu.Unlock()
	if !ok || (c.Private && !c.Member) {
		f.json(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	f.json(w, map[string]any{"ok": true, "channel": map[string]any{"id": c.ID, "name": c.Name, "is_channel": !c.Private, "is_group": c.Private,
		"is_private": c.Private, "is_member": c.Member, "is_archived": c.Archived}})
}

// respond takes an answer posted to a response_url.
func (f *Server) respond(w http.ResponseWriter, r *http.Request) {
	id := strings.TrimPrefix(r.URL.Path, "/respond/")
	var m struct {
		ResponseType    string          `json:"response_type"`
		Text            string          `json:"text"`
		Blocks          json.RawMessage `json:"blocks"`
		ReplaceOriginal bool            `json:"replace_original"`
		DeleteOriginal  bool            `json:"delete_original"`
	}
	if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
		http.Error(w, "invalid_payload", http.StatusBadRequest)
		return
	}
	f.Mu.Lock()
	ru := f.responses[id]
	switch {
	case ru == nil:
		f.ResponsesRefused++
		f.Mu.Unlock()
		http.Error(w, "invalid_url", http.StatusNotFound)
		return
	case ru.uses >= 5 || time.Since(ru.created) > 30*time.Minute:
		f.ResponsesRefused++
		f.Mu.Unlock()
		http.Error(w, "used_url", http.StatusNotFound)
		return
	}
	ru.uses++
	f.Mu.Unlock()
	blocks := []byte(m.Blocks)
	if string(blocks) == "null" {
		blocks = nil
	}
	if !m.DeleteOriginal {
		if code, _ := ValidateMessage(m.Text, blocks); code != "" {
			http.Error(w, code, http.StatusBadRequest)
			return
		}
	}
	f.Mu.Lock()
	defer f.Mu.Unlock()
	if ru.source != "" && (m.ReplaceOriginal || m.DeleteOriginal) {
		orig := f.find(ru.source)
		if orig == nil || orig.Deleted {
			http.Error(w, "message_not_found", http.StatusNotFound)
			return
		}
		if m.DeleteOriginal {
			orig.Deleted = true
		} else {
			orig.Text, orig.Blocks, orig.Via = m.Text, blocks, "response_url (replace_original)"
		}
		_, _ = w.Write([]byte("ok"))
		return
	}
	post := Post{Channel: ru.channel, User: ru.user, Text: m.Text, Blocks: blocks, Via: "response_url", TS: f.nextTS()}
	if m.ResponseType == "in_channel" {
		f.Posts = append(f.Posts, post)
	} else {
		f.Ephemeral = append(f.Ephemeral, post)
	}
	_, _ = w.Write([]byte("ok"))
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
