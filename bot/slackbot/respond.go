package slackbot

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/slack-go/slack"
)

// Answers to a person go through the command's (or click's) own
// response: the socket-mode ack payload for what is known at once (help,
// a command that does not parse), its response_url for later answers.
// Both work in every conversation, a DM or a private channel the bot is
// not in included, where chat.postEphemeral and chat.postMessage answer
// channel_not_found
// (https://api.slack.com/interactivity/handling#message_responses). A
// response_url takes five answers within 30 minutes; a command needs at
// most two (an answer, and "started: see the thread").

// errBadResponseURL: an envelope's response_url is not Slack's.
var errBadResponseURL = errors.New("the response_url is not an http(s) URL of the Slack the bot talks to")

// slackDomains are the domains of Slack's own response URLs: slack.com,
// and slack-gov.com for GovSlack, which "does not run on the slack.com
// domain" (https://api.slack-gov.com/gov-slack/about).
var slackDomains = []string{"slack.com", "slack-gov.com"}

// validResponseURL accepts Slack's own response URLs (https, a host of a
// Slack domain) and, when the bot talks to another Slack API (a test's
// fake), http(s) URLs on that API's host.
func (s *Slack) validResponseURL(raw string) bool {
	u, err := url.Parse(raw)
	if err != nil || u.Host == "" || (u.Scheme != "https" && u.Scheme != "http") {
		return false
	}
	host := strings.ToLower(u.Hostname())
	if u.Scheme == "https" {
		for _, d := range slackDomains {
			if host == d || strings.HasSuffix(host, "."+d) {
				return true
			}
		}
	}
	if api, err := url.Parse(s.apiURL); err == nil && s.apiURL != "" && api.Host != "" {
		return strings.EqualFold(u.Hostname(), api.Hostname())
	}
	return false
}

// respond posts an answer to a response_url: ephemeral (the person alone)
// unless inChannel.
func (s *Slack) respond(ctx context.Context, responseURL string, m bot.Message, inChannel bool) error {
	p := encode(m)
	msg := &slack.WebhookMessage{Text: p.text, ResponseType: slack.ResponseTypeEphemeral}
	if inChannel {
		msg.ResponseType = slack.ResponseTypeInChannel
	}
	if len(p.blocks) > 0 {
		msg.Blocks = &slack.Blocks{BlockSet: p.blocks}
	}
	return s.postResponse(ctx, responseURL, msg)
}

// replaceOriginal puts m in the place of the message a click came from,
// through the click's response_url (replace_original), ephemeral or not:
// chat.update cannot change an ephemeral message
// (https://api.slack.com/interactivity/handling#message_responses,
// https://api.slack.com/messaging/modifying).
func (s *Slack) replaceOriginal(ctx context.Context, responseURL string, m bot.Message) error {
	p := encode(m)
	msg := &slack.WebhookMessage{Text: p.text, ReplaceOriginal: true}
	if len(p.blocks) > 0 {
		msg.Blocks = &slack.Blocks{BlockSet: p.blocks}
	}
	return s.postResponse(ctx, responseURL, msg)
}

func (s *Slack) postResponse(ctx context.Context, responseURL string, msg *slack.WebhookMessage) error {
	if !s.validResponseURL(responseURL) {
		return errBadResponseURL
	}
	client := s.HTTP
	if client == nil {
		client = http.DefaultClient
	}
	return retryWebhook(ctx, func() error {
		return slack.PostWebhookCustomHTTPContext(ctx, responseURL, client, msg)
	})
}

// retryWebhook sends an answer to a response_url again after Slack's
// Retry-After when it is rate limited (429), a few times. A response_url
// is not a Web API method, so slack-go's retries (see pace.go) do not
// cover it.
func retryWebhook(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || attempt == 5 {
			return err
		}
		t := time.NewTimer(max(rl.RetryAfter, time.Second))
		select {
		case <-ctx.Done():
			t.Stop()
			return err
		case <-t.C:
		}
	}
}

// maxAckText is the longest answer an ack carries. Slack drops a
// socket-mode response of 20 KB or more without a word, and slack-go
// refuses to send one (socketmode's SendCtx: "meets or exceeds Slack's
// 20480-byte WebSocket limit"), leaving the envelope unacknowledged: the
// person sees Slack's own error. JSON takes at most 6 bytes per character
// (\u0026 for &, \u2028; an emoji is 4 bytes and counts 2), so 3,000
// characters are at most 18,000 bytes with room for the envelope. Help
// and parse errors, which quote little of the input (bot's maxQuoted),
// are well under it.
const maxAckText = 3000

// ackAnswer is an answer that goes in the ack itself: help, and a command
// that does not parse, which need nothing but the text.
func ackAnswer(b *bot.Bot, cmd bot.Command) (map[string]any, bool) {
	text, ok := b.TextAnswer(cmd)
	if !ok {
		return nil, false
	}
	return map[string]any{"response_type": slack.ResponseTypeEphemeral, "text": cutMrkdwn(string(text), maxAckText)}, true
}
