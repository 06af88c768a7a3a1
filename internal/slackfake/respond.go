// response_url: the answers a command or click may post, and a click's
// replace_original and delete_original.

package slackfake

import (
	"encoding/json"
	"net/http"
	"strings"
	"time"
)

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

// ResponseURL hands out a response_url for answers to user in channel.
func (f *Server) ResponseURL(id, user, channel string) string {
	f.Mu.Lock()
	defer f.Mu.Unlock()
	f.origins[id] = origin{user: user, channel: channel}
	f.responses[id] = &responseURL{origin: origin{user: user, channel: channel}, created: time.Now()}
	return f.srv.GetAPIURL() + "respond/" + id
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
