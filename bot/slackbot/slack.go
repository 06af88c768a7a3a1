// Package slackbot is the Slack adapter of the chat door: socket mode in
// (slash commands, button clicks), the Web API and response URLs out,
// Block Kit within Slack's limits, release notices kept true, the channel
// checks, and the deployers check by user and user group. What a command
// does and what its answers say is package bot's.
package slackbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"golang.org/x/time/rate"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/releases"
)

// SlackAPI is the part of the Slack Web API client the bot uses, with
// slack-go's own signatures.
type SlackAPI interface {
	PostMessageContext(ctx context.Context, channelID string, options ...slack.MsgOption) (string, string, error)
	UpdateMessageContext(ctx context.Context, channelID, timestamp string, options ...slack.MsgOption) (string, string, string, error)
	PostEphemeralContext(ctx context.Context, channelID, userID string, options ...slack.MsgOption) (string, error)
	GetUserGroupMembersContext(ctx context.Context, userGroup string, options ...slack.GetUserGroupMembersOption) ([]string, error)
	AuthTestContext(ctx context.Context) (*slack.AuthTestResponse, error)
	GetPermalinkContext(ctx context.Context, params *slack.PermalinkParameters) (string, error)
	GetConversationInfoContext(ctx context.Context, input *slack.GetConversationInfoInput) (*slack.Channel, error)
}

var _ SlackAPI = (*slack.Client)(nil)

// acker acknowledges socket-mode envelopes, with slack-go's signature.
type acker interface {
	Ack(req socketmode.Request, payload ...any) error
}

// Slack is the bot on Slack: socket mode in, Web API out.
type Slack struct {
	Bot    *bot.Bot
	API    SlackAPI
	Socket *socketmode.Client
	Logger *slog.Logger
	// HTTP posts answers to response URLs; nil: http.DefaultClient.
	HTTP *http.Client
	// apiURL is the Slack Web API base the bot was given ("" for Slack's).
	apiURL string
	// Lost, when set, counts a post Slack never took after the retries
	// (what: reply, ephemeral, card, card_update, thread, notice,
	// prune_summary, approval, approval_update, approval_decided), for a
	// metric; each is logged too.
	Lost func(what string)
	// Connections, when set, hears the number of socket-mode connections
	// the app has open, as Slack counts them in each hello: Slack sends
	// each envelope to one of them, so every replica must answer any.
	Connections func(n int)

	// acker acknowledges envelopes; nil: Socket (a test's stand-in may
	// refuse).
	acker    acker
	seen     dedupe
	channels channelCheck
	// notices paces notice upkeep (see pace.go); nil: unpaced.
	notices *rate.Limiter
	// noticesStale: a refresh of the notices was asked for since the
	// running one read what is live.
	noticesStale atomic.Bool
	noticeMu     sync.Mutex // one refresh of the notices at a time
	approvalMu   sync.Mutex // one approval card change at a time
	connected    atomic.Bool
	work         sync.WaitGroup // Add only through begin
	workMu       sync.Mutex
	stopping     bool
}

// begin registers work Run waits for before it returns; false once Run
// is stopping.
func (s *Slack) begin() bool {
	s.workMu.Lock()
	defer s.workMu.Unlock()
	if s.stopping {
		return false
	}
	s.work.Add(1)
	return true
}

func (s *Slack) lost(what string) {
	if s.Lost != nil {
		s.Lost(what)
	}
}

// background runs fn as work Run waits for, on a context that outlives
// ctx's cancellation (what happened is still posted during a shutdown);
// nothing runs once Run is stopping.
func (s *Slack) background(ctx context.Context, fn func(ctx context.Context)) {
	ctx = context.WithoutCancel(ctx)
	if !s.begin() {
		return
	}
	go func() {
		defer s.work.Done()
		fn(ctx)
	}()
}

func (s *Slack) drain() {
	s.workMu.Lock()
	s.stopping = true
	s.workMu.Unlock()
	s.work.Wait()
}

// New checks the tokens' shapes and builds the clients. apiURL, when
// set, replaces https://slack.com/api/ (tests).
func New(appToken, botToken, apiURL string, b *bot.Bot, log *slog.Logger) (*Slack, error) {
	if !strings.HasPrefix(appToken, "xapp-") {
		return nil, errors.New("slack.app_token must be an app-level token (xapp-...) with connections:write")
	}
	if !strings.HasPrefix(botToken, "xoxb-") {
		return nil, errors.New("slack.bot_token must be a bot token (xoxb-...)")
	}
	opts := []slack.Option{slack.OptionAppLevelToken(appToken)}
	if apiURL != "" {
		if !strings.HasSuffix(apiURL, "/") {
			apiURL += "/"
		}
		opts = append(opts, slack.OptionAPIURL(apiURL))
	}
	// Every Web API call waits out a 429 on its method, whoever got it,
	// and is sent again by slack-go as retryConfig says (pace.go).
	opts = append(opts, slack.OptionHTTPClient(&gatedClient{next: &http.Client{Timeout: 30 * time.Second}, gates: &gates{}}),
		slack.OptionRetryConfig(retryConfig()))
	api := slack.New(botToken, opts...)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Slack{Bot: b, API: api, Socket: socketmode.New(api), Logger: log, apiURL: apiURL, notices: noticePace()}, nil
}

// Connected reports whether the socket is up (for /readyz).
func (s *Slack) Connected() bool { return s.connected.Load() }

// Run checks the bot token, then serves socket-mode events until ctx is
// done and every command it started has finished. Commands run on ctx, so
// a server's shutdown interrupts their deploys at a safe point.
func (s *Slack) Run(ctx context.Context) error {
	auth, err := s.API.AuthTestContext(ctx)
	if err != nil {
		return fmt.Errorf("slack: checking the bot token (auth.test): %w", err)
	}
	s.Logger.Info("slack: authenticated", "team", auth.Team, "bot_user", auth.UserID)
	for _, why := range s.ChannelProblems(ctx) {
		s.Logger.Warn("slack: the bot cannot post to a site's channel; its deploys run without a thread", "problem", why)
	}
	runErr := make(chan error, 1)
	go func() { runErr <- s.Socket.RunContext(ctx) }()
	for {
		select {
		case <-ctx.Done():
			s.connected.Store(false)
			s.drain()
			return nil
		case err := <-runErr:
			s.connected.Store(false)
			s.drain()
			if ctx.Err() != nil {
				return nil
			}
			return fmt.Errorf("slack: socket mode stopped: %w", err)
		case evt, ok := <-s.Socket.Events:
			if !ok {
				s.drain()
				return nil
			}
			s.event(ctx, evt)
		}
	}
}

func (s *Slack) event(ctx context.Context, evt socketmode.Event) {
	switch evt.Type {
	case socketmode.EventTypeConnecting:
		s.Logger.Info("slack: connecting")
	case socketmode.EventTypeConnected:
		s.connected.Store(true)
		s.Logger.Info("slack: connected")
	case socketmode.EventTypeConnectionError, socketmode.EventTypeDisconnect:
		s.connected.Store(false)
		s.Logger.Warn("slack: disconnected; the client reconnects", "type", evt.Type)
	case socketmode.EventTypeSlashCommand:
		cmd, ok := evt.Data.(slack.SlashCommand)
		if !ok || cmd.Command != s.Bot.Command {
			s.ack(evt)
			return
		}
		text := commandText(cmd.Text)
		req := bot.Request{Cmd: bot.Parse(text, s.Bot.SiteNames()), UserID: cmd.UserID, Channel: cmd.ChannelID, ResponseURL: cmd.ResponseURL, Door: "slack"}
		// What needs no lookup is answered in the ack itself. Should
		// that ack be refused, the envelope is acknowledged without it
		// and the answer goes through the command's response_url.
		if answer, ok := ackAnswer(s.Bot, req.Cmd); ok {
			if err := s.acks().Ack(*evt.Request, answer); err != nil {
				s.Logger.Warn("slack: the ack with the answer failed; answering through the response_url", "err", err)
				s.ack(evt)
				if s.fresh(evt) {
					s.spawn(ctx, req)
				}
			}
			return
		}
		s.ack(evt)
		if !s.fresh(evt) {
			return
		}
		s.Logger.Info("slack: command", "user", cmd.UserID, "channel", cmd.ChannelID, "text", text)
		s.spawn(ctx, req)
	case socketmode.EventTypeInteractive:
		cb, ok := evt.Data.(slack.InteractionCallback)
		s.ack(evt)
		if !ok || !s.fresh(evt) || cb.Type != slack.InteractionTypeBlockActions {
			return
		}
		for _, a := range cb.ActionCallback.BlockActions {
			req, ok := s.buttonRequest(cb, a)
			if ok {
				s.Logger.Info("slack: button", "user", cb.User.ID, "action", a.ActionID, "value", a.Value)
				s.spawn(ctx, req)
			}
		}
	case socketmode.EventTypeHello, socketmode.EventTypeIncomingError, socketmode.EventTypeInvalidAuth:
		if evt.Type == socketmode.EventTypeInvalidAuth {
			s.Logger.Error("slack: the app token was refused")
		}
		if evt.Type == socketmode.EventTypeHello && evt.Request != nil {
			// https://api.slack.com/apis/socket-mode: hello carries
			// num_connections, this app's open connections.
			s.Logger.Info("slack: connected", "num_connections", evt.Request.NumConnections)
			if s.Connections != nil {
				s.Connections(evt.Request.NumConnections)
			}
		}
	default:
		if evt.Request != nil {
			s.ack(evt)
		}
	}
}

// ack answers the envelope at once, before any work: Slack redelivers
// envelopes not acknowledged within 3 seconds.
func (s *Slack) ack(evt socketmode.Event) {
	if evt.Request != nil {
		if err := s.acks().Ack(*evt.Request); err != nil {
			s.Logger.Warn("slack: ack failed", "err", err)
		}
	}
}

func (s *Slack) acks() acker {
	if s.acker != nil {
		return s.acker
	}
	return s.Socket
}

// commandText is a slash command's text as the person typed it. Slack
// sends &, < and > as &amp;, &lt; and &gt;, as in all text it sends
// (https://api.slack.com/interactivity/slash-commands,
// https://api.slack.com/reference/surfaces/formatting#escaping): exactly
// those three are decoded, once, so "R&D fix" is the reason "R&D fix"
// (not "R&amp;D fix", 4 characters longer, shown as such once escaped
// again), and "&amp;lt;" typed as such stays "&lt;". Every answer escapes
// what it quotes again (bot.Md).
func commandText(s string) string { return commandEntities.Replace(s) }

// commandEntities decodes in one pass: a replaced entity is not read
// again.
var commandEntities = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")

// fresh reports whether an envelope is seen for the first time; Slack
// redelivers when an ack is lost, and a click must run exactly once.
func (s *Slack) fresh(evt socketmode.Event) bool {
	if evt.Request == nil {
		return true
	}
	return s.seen.add(evt.Request.EnvelopeID, time.Now())
}

func (s *Slack) buttonRequest(cb slack.InteractionCallback, a *slack.BlockAction) (bot.Request, bool) {
	site, version, ok := strings.Cut(a.Value, "/")
	if !ok {
		return bot.Request{}, false
	}
	// A Rollback button names the deploy it was posted under too; one
	// without (posted by an earlier deploybot) cannot say whether the
	// site has moved since, so it is refused, saying what to type.
	version, fromDeploy, _ := strings.Cut(version, "/")
	if a.ActionID == bot.ActionRollback && fromDeploy == "" {
		return bot.Request{Cmd: bot.Command{Action: bot.Reject, Name: "rollback", Site: site, Version: version,
			Error: fmt.Sprintf("This Rollback button is from an earlier deploybot, which cannot tell whether %s has moved on since; nothing changed. Type `%s rollback %s %s` to go back to it now.", site, s.Bot.Command, site, version)},
			UserID: cb.User.ID, Channel: cb.Channel.ID, ResponseURL: cb.ResponseURL, Door: "slack"}, true
	}
	var name string
	confirmed := false
	reason := "clicked in Slack"
	switch a.ActionID {
	case bot.ActionPromote:
		name = "promote"
	case bot.ActionRollback:
		name = "rollback"
	case bot.ActionApprove:
		name, reason = "approve", ""
	case bot.ActionReject:
		name, reason = "reject", "rejected in Slack"
	case bot.ActionConfirm:
		// The person confirmed a promote that goes backwards; its
		// reason rode in the block id.
		name, confirmed = "promote", true
		if r, ok := strings.CutPrefix(a.BlockID, "r:"); ok && r != "" {
			reason = r
		} else {
			reason = "confirmed in Slack"
		}
	case bot.ActionCancel:
		return bot.Request{Cmd: bot.Command{Action: bot.Cancel, Name: "cancel", Site: site, Version: version}, UserID: cb.User.ID,
			Channel: cb.Channel.ID, ResponseURL: cb.ResponseURL, Door: "slack"}, true
	default:
		return bot.Request{}, false
	}
	thread := cb.Message.ThreadTimestamp
	if thread == "" {
		thread = cb.Message.Timestamp
	}
	if thread == "" {
		thread = cb.Container.MessageTs
	}
	cmd := bot.Command{Action: bot.Run, Name: name, Site: site, Version: version, Reason: reason}
	if confirmed {
		// Answered from an ephemeral message, which has no thread: the
		// deploy reports in the site's channel. The value's third part
		// is the live release the question was asked against.
		thread = ""
		cmd.From, fromDeploy = fromDeploy, ""
	}
	return bot.Request{Cmd: cmd, Confirmed: confirmed, FromDeploy: fromDeploy,
		UserID: cb.User.ID, Channel: cb.Channel.ID, Thread: thread, ResponseURL: cb.ResponseURL, Door: "slack"}, true
}

func (s *Slack) spawn(ctx context.Context, req bot.Request) {
	if !s.begin() {
		return
	}
	go func() {
		defer s.work.Done()
		s.Bot.Handle(ctx, req, &slackOut{s: s})
	}()
}

// dedupe remembers envelope ids for an hour.
type dedupe struct {
	mu   sync.Mutex
	seen map[string]time.Time
}

func (d *dedupe) add(id string, now time.Time) bool {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.seen == nil {
		d.seen = map[string]time.Time{}
	}
	for k, t := range d.seen {
		if now.Sub(t) > time.Hour {
			delete(d.seen, k)
		}
	}
	if _, ok := d.seen[id]; ok {
		return false
	}
	d.seen[id] = now
	return true
}

// ReleaseRecorded posts a new release's notice with a Promote button; it
// implements server.Notifier.
func (s *Slack) ReleaseRecorded(ctx context.Context, site releases.Site, r releases.Release, source string) {
	if site.Channel == "" {
		return
	}
	s.background(ctx, func(ctx context.Context) { s.postNotice(ctx, site, r) })
}

// PruneFinished posts a retention run's summary to the site's channel; it
// implements server.Notifier.
func (s *Slack) PruneFinished(ctx context.Context, site releases.Site, rep *releases.PruneReport, err error) {
	if site.Channel == "" || rep == nil {
		return
	}
	m := bot.PruneMessage(rep, err)
	s.RefreshNotices(ctx, site)
	s.background(ctx, func(ctx context.Context) {
		if err := func() error {
			_, _, err := s.API.PostMessageContext(ctx, site.Channel, msgOptions(m)...)
			return err
		}(); err != nil {
			s.Logger.Error("slack: prune summary failed", "site", site.Name, "err", err)
			s.lost("prune_summary")
		}
	})
}
