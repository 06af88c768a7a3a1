// The Web API methods the fake answers itself: chat.postMessage,
// chat.postEphemeral, chat.update, chat.getPermalink, conversations.info,
// and Slack's per-method rate limits.

package slackfake

import (
	"encoding/json"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

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
	if f.Unavailable > 0 {
		f.Unavailable--
		f.Mu.Unlock()
		f.json(w, map[string]any{"ok": false, "error": "service_unavailable"})
		return
	}
	// A channel may be named (#deploys); Slack answers with its id.
	if name, ok := strings.CutPrefix(p.Channel, "#"); ok {
		for id, c := range f.Channels {
			if c.Name == name {
				p.Channel = id
			}
		}
	}
	f.Mu.Unlock()
	if strings.HasPrefix(p.Channel, "#") {
		f.json(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return
	}
	if f.deliver(w, &p, &f.Posts) {
		f.json(w, map[string]any{"ok": true, "channel": p.Channel, "ts": p.TS})
	}
}

// deliver records p, with a new ts, in to; or answers channel_not_found
// when the bot cannot post in p's channel, or Slack's refusal of what p
// holds, and reports false.
func (f *Server) deliver(w http.ResponseWriter, p *Post, to *[]Post) bool {
	f.Mu.Lock()
	notIn := f.notIn(p.Channel)
	f.Mu.Unlock()
	if notIn {
		f.json(w, map[string]any{"ok": false, "error": "channel_not_found"})
		return false
	}
	if f.refuse(w, *p) {
		return false
	}
	f.Mu.Lock()
	p.TS = f.nextTS()
	*to = append(*to, *p)
	f.Mu.Unlock()
	return true
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
	if f.deliver(w, &p, &f.Ephemeral) {
		f.json(w, map[string]any{"ok": true, "message_ts": p.TS})
	}
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
