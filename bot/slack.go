package bot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/slack-go/slack"
	"github.com/slack-go/slack/socketmode"
	"golang.org/x/sync/singleflight"

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

// Slack is the bot on Slack: socket mode in, Web API out.
type Slack struct {
	Bot    *Bot
	API    SlackAPI
	Socket *socketmode.Client
	Logger *slog.Logger
	// HTTP posts answers to response URLs; nil: http.DefaultClient.
	HTTP *http.Client
	// apiURL is the Slack Web API base the bot was given ("" for Slack's).
	apiURL string
	// Lost, when set, counts a post Slack never took after the retries
	// (what: reply, ephemeral, card, card_update, thread, notice,
	// prune_summary), for a metric; each is logged too.
	Lost func(what string)

	seen      dedupe
	channels  channelCheck
	noticeMu  sync.Mutex // one refresh of the notices at a time
	connected atomic.Bool
	work      sync.WaitGroup // Add only through begin
	workMu    sync.Mutex
	stopping  bool
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

func (s *Slack) drain() {
	s.workMu.Lock()
	s.stopping = true
	s.workMu.Unlock()
	s.work.Wait()
}

// NewSlack checks the tokens' shapes and builds the clients. apiURL, when
// set, replaces https://slack.com/api/ (tests).
func NewSlack(appToken, botToken, apiURL string, b *Bot, log *slog.Logger) (*Slack, error) {
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
	api := slack.New(botToken, opts...)
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Slack{Bot: b, API: api, Socket: socketmode.New(api), Logger: log, apiURL: apiURL}, nil
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
		req := Request{Cmd: Parse(cmd.Text, s.Bot.SiteNames()), UserID: cmd.UserID, Channel: cmd.ChannelID, ResponseURL: cmd.ResponseURL, Door: "slack"}
		// What needs no lookup is answered in the ack itself.
		if answer, ok := ackAnswer(s.Bot, req.Cmd); ok {
			s.ack(evt, answer)
			return
		}
		s.ack(evt)
		if !s.fresh(evt) {
			return
		}
		s.Logger.Info("slack: command", "user", cmd.UserID, "channel", cmd.ChannelID, "text", cmd.Text)
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
	default:
		if evt.Request != nil {
			s.ack(evt)
		}
	}
}

// ack answers the envelope at once, before any work: Slack redelivers
// envelopes not acknowledged within 3 seconds. A payload is the answer
// shown to the person (slash commands only).
func (s *Slack) ack(evt socketmode.Event, payload ...any) {
	if evt.Request != nil {
		if err := s.Socket.Ack(*evt.Request, payload...); err != nil {
			s.Logger.Warn("slack: ack failed", "err", err)
		}
	}
}

// fresh reports whether an envelope is seen for the first time; Slack
// redelivers when an ack is lost, and a click must run exactly once.
func (s *Slack) fresh(evt socketmode.Event) bool {
	if evt.Request == nil {
		return true
	}
	return s.seen.add(evt.Request.EnvelopeID, time.Now())
}

func (s *Slack) buttonRequest(cb slack.InteractionCallback, a *slack.BlockAction) (Request, bool) {
	site, version, ok := strings.Cut(a.Value, "/")
	if !ok {
		return Request{}, false
	}
	var name string
	confirmed := false
	reason := "clicked in Slack"
	switch a.ActionID {
	case ActionPromote:
		name = "promote"
	case ActionRollback:
		name = "rollback"
	case ActionConfirm:
		// The person confirmed a promote that goes backwards; its
		// reason rode in the block id.
		name, confirmed = "promote", true
		if r, ok := strings.CutPrefix(a.BlockID, "r:"); ok && r != "" {
			reason = r
		} else {
			reason = "confirmed in Slack"
		}
	case ActionCancel:
		return Request{Cmd: Command{Action: Cancel, Name: "cancel", Site: site, Version: version}, UserID: cb.User.ID,
			Channel: cb.Channel.ID, ResponseURL: cb.ResponseURL, Door: "slack"}, true
	default:
		return Request{}, false
	}
	thread := cb.Message.ThreadTimestamp
	if thread == "" {
		thread = cb.Message.Timestamp
	}
	if thread == "" {
		thread = cb.Container.MessageTs
	}
	if confirmed {
		// Answered from an ephemeral message, which has no thread: the
		// deploy reports in the site's channel.
		thread = ""
	}
	return Request{Cmd: Command{Action: Run, Name: name, Site: site, Version: version, Reason: reason}, Confirmed: confirmed,
		UserID: cb.User.ID, Channel: cb.Channel.ID, Thread: thread, ResponseURL: cb.ResponseURL, Door: "slack"}, true
}

func (s *Slack) spawn(ctx context.Context, req Request) {
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

// retry calls fn again after Slack's Retry-After when it is rate limited
// (429), a few times; other errors are returned at once.
func retry(ctx context.Context, fn func() error) error {
	for attempt := 0; ; attempt++ {
		err := fn()
		var rl *slack.RateLimitedError
		if !errors.As(err, &rl) || attempt == 5 {
			return err
		}
		wait := min(max(rl.RetryAfter, 100*time.Millisecond), 30*time.Second)
		select {
		case <-ctx.Done():
			return err
		case <-time.After(wait):
		}
	}
}

// msgOptions is a message as chat.postMessage and chat.update take it,
// within Slack's limits (fit): every post goes through here.
func msgOptions(m Message) []slack.MsgOption {
	m = fit(m)
	opts := []slack.MsgOption{slack.MsgOptionText(string(m.Text), false)}
	if len(m.Blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(m.Blocks...))
	}
	return opts
}

// slackOut answers a request in Slack. Posting uses a context that
// outlives a shutdown, so the thread still says what happened.
type slackOut struct{ s *Slack }

// Private answers through the request's response_url, which works in
// every conversation; without one (a request from elsewhere),
// chat.postEphemeral in the channel it came from.
func (o *slackOut) Private(ctx context.Context, req Request, text Mrkdwn) {
	ctx = context.WithoutCancel(ctx)
	var err error
	if req.ResponseURL != "" {
		err = o.s.respond(ctx, req.ResponseURL, Message{Text: text}, false)
	} else {
		err = retry(ctx, func() error {
			_, err := o.s.API.PostEphemeralContext(ctx, req.Channel, req.UserID, slack.MsgOptionText(cutMrkdwn(string(text), maxMessageText), false))
			return err
		})
	}
	if err != nil {
		o.s.Logger.Error("slack: ephemeral reply failed", "user", req.UserID, "err", err)
		o.s.lost("ephemeral")
	}
}

// Public answers where the command was typed, for everyone there: in the
// thread of a clicked message, else through the command's response_url
// (in_channel), which works where the bot is not a member.
func (o *slackOut) Public(ctx context.Context, req Request, m Message) {
	ctx = context.WithoutCancel(ctx)
	var err error
	if req.Thread == "" && req.ResponseURL != "" {
		err = o.s.respond(ctx, req.ResponseURL, m, true)
	} else {
		opts := msgOptions(m)
		if req.Thread != "" {
			opts = append(opts, slack.MsgOptionTS(req.Thread))
		}
		err = retry(ctx, func() error {
			_, _, err := o.s.API.PostMessageContext(ctx, req.Channel, opts...)
			return err
		})
	}
	if err != nil {
		o.s.Logger.Error("slack: reply failed", "channel", req.Channel, "err", err)
		o.s.lost("reply")
	}
}

func (o *slackOut) Deploy(ctx context.Context, req Request, site releases.Site) DeployView {
	channel := site.Channel
	thread := req.Thread
	if channel == "" || (thread != "" && req.Channel != "") {
		channel = req.Channel
	}
	v := &slackDeploy{s: o.s, ctx: context.WithoutCancel(ctx), channel: channel, thread: thread, req: req, site: site,
		events: make(chan releases.Event, 256), done: make(chan struct{})}
	go v.loop()
	return v
}

// slackDeploy posts one deploy's card and thread from its own goroutine,
// in order, so a slow or rate-limited Slack never holds the flip back.
type slackDeploy struct {
	s       *Slack
	ctx     context.Context
	channel string
	thread  string // thread root; the card's ts when the deploy has no thread of its own
	cardTS  string
	card    CardState
	started time.Time
	events  chan releases.Event
	done    chan struct{}
	once    sync.Once
	// gone: the channel cannot be posted to; the view posts nothing more.
	gone bool
	// req is who started the deploy and from where, to be told where its
	// thread is, or why there is none.
	req  Request
	site releases.Site
}

// tell answers the person who started the deploy, privately, through
// their command's response_url (nothing without one).
func (v *slackDeploy) tell(text Mrkdwn) {
	if v.req.ResponseURL == "" {
		return
	}
	if err := v.s.respond(v.ctx, v.req.ResponseURL, Message{Text: text}, false); err != nil {
		v.s.Logger.Warn("slack: telling the person where the deploy reports failed", "user", v.req.UserID, "err", err)
		v.s.lost("ephemeral")
	}
}

// channelRef shows a channel: a mention for a channel id, else the name
// as written.
func channelRef(ch string) Mrkdwn {
	if channelID.MatchString(ch) {
		return Mrkdwn("<#" + ch + ">")
	}
	return md("%s", ch)
}

var channelID = regexp.MustCompile(`^[CGD][A-Z0-9]{2,20}$`)

// slackError is the error code Slack answered, or the error.
func slackError(err error) string {
	var r slack.SlackErrorResponse
	if errors.As(err, &r) {
		return r.Err
	}
	return err.Error()
}

// unpostable reports whether Slack refused a post for the channel itself
// (https://api.slack.com/methods/chat.postMessage#errors): the bot is not
// in it (a private channel answers channel_not_found), it is archived, or
// posting there is restricted.
func unpostable(err error) bool {
	var r slack.SlackErrorResponse
	if !errors.As(err, &r) {
		return false
	}
	switch r.Err {
	case "channel_not_found", "not_in_channel", "is_archived", "restricted_action", "restricted_action_read_only_channel", "team_access_not_granted":
		return true
	}
	return false
}

func (v *slackDeploy) Event(e releases.Event) {
	select {
	case v.events <- e:
	default:
		v.s.Logger.Warn("slack: deploy view is behind; an event was not posted", "deploy_id", e.Deploy.ID, "type", e.Type)
	}
}

func (v *slackDeploy) Done(*releases.Outcome, error) {
	// What is live may have changed: the notices say so.
	v.s.RefreshNotices(v.ctx, v.site)
	v.once.Do(func() { close(v.events) })
	select {
	case <-v.done:
	case <-time.After(2 * time.Minute):
		v.s.Logger.Warn("slack: gave up waiting for the deploy thread to be posted")
	}
}

func (v *slackDeploy) loop() {
	defer close(v.done)
	for e := range v.events {
		v.post(e)
	}
}

func (v *slackDeploy) post(e releases.Event) {
	if v.gone {
		return
	}
	log := v.s.Logger.With("deploy_id", e.Deploy.ID, "site", e.Deploy.Site)
	if v.started.IsZero() {
		v.started = e.Deploy.StartedAt
	}
	v.card.Deploy = e.Deploy
	v.card.Elapsed = time.Since(v.started)
	switch e.Type {
	case releases.EventDeployStarted, releases.EventDeployResumed:
		// A second deploy in one view is deploybot's automatic rollback:
		// the card follows it from the start.
		v.card.Phase, v.card.Result, v.card.Error = "starting", "", ""
	case releases.EventPhaseStarted:
		v.card.Phase = phaseName(e.Phase, e.Title)
	case releases.EventDeployFinished:
		v.card.Result = "done"
	case releases.EventDeployFailed:
		v.card.Result, v.card.Error = "failed", releases.ErrorMessage(e.Err)
	case releases.EventDeployInterrupted:
		v.card.Result = "interrupted"
	}
	if v.cardTS == "" {
		opts := msgOptions(Card(v.card))
		if v.thread != "" {
			opts = append(opts, slack.MsgOptionTS(v.thread))
		}
		var channelID string
		err := retry(v.ctx, func() (err error) {
			channelID, v.cardTS, err = v.s.API.PostMessageContext(v.ctx, v.channel, opts...)
			return err
		})
		if err != nil {
			v.s.lost("card")
			if unpostable(err) {
				// Every later post would fail the same way: the deploy
				// goes on, recorded, without a thread, and whoever
				// started it hears why and what to do.
				v.gone = true
				log.Error("slack: the bot cannot post in the site's channel; the deploy runs without a card or thread (invite the bot to the channel)", "channel", v.channel, "err", err)
				v.tell(md(":warning: The %s of *%s* runs, but I cannot post in %s (Slack says %s), so there is no thread: invite me there with `/invite @deploybot`. `%s status %s` follows it.",
					string(e.Deploy.Kind), e.Deploy.Site, channelRef(v.channel), slackError(err), v.s.Bot.Command, e.Deploy.Site))
				return
			}
			log.Error("slack: posting the status card failed", "err", err)
			return
		}
		// chat.update takes the channel's id, which chat.postMessage
		// returns also when it was given a name (#deploys).
		if channelID != "" {
			v.channel = channelID
		}
		if v.thread == "" {
			v.thread = v.cardTS
		}
		// status links to the thread while the deploy runs.
		permalink := "https://slack.com/archives/" + v.channel + "/p" + strings.ReplaceAll(v.thread, ".", "")
		if p, err := v.s.API.GetPermalinkContext(v.ctx, &slack.PermalinkParameters{Channel: v.channel, Ts: v.thread}); err == nil && p != "" {
			permalink = p
		}
		if err := v.s.Bot.Service.SetDeployLink(v.ctx, e.Deploy.Site, e.Deploy.ID, "slack", permalink); err != nil {
			log.Warn("recording the deploy's thread", "err", err)
		}
		// Typed somewhere else (a DM, another channel): say where the
		// deploy reports.
		if v.req.Thread == "" && v.req.Channel != v.channel {
			v.tell(md("Started: the %s of *%s* reports in %s.", string(e.Deploy.Kind), e.Deploy.Site, link(permalink, "its thread")))
		}
	} else if e.Type != releases.EventPhaseFinished {
		// The card changes with phases, not with every poll, which keeps
		// chat.update well inside Slack's rate limits.
		err := retry(v.ctx, func() error {
			_, _, _, err := v.s.API.UpdateMessageContext(v.ctx, v.channel, v.cardTS, msgOptions(Card(v.card))...)
			return err
		})
		if err != nil {
			log.Warn("slack: updating the status card failed", "err", err)
			v.s.lost("card_update")
		}
	}
	var m Message
	if e.Type == releases.EventDeployFinished {
		m = LiveMessage(e.Deploy, e.Elapsed)
	} else if line := ThreadLine(e); line != "" {
		m = Message{Text: line}
	} else {
		return
	}
	opts := append(msgOptions(m), slack.MsgOptionTS(v.thread))
	if err := retry(v.ctx, func() error {
		_, _, err := v.s.API.PostMessageContext(v.ctx, v.channel, opts...)
		return err
	}); err != nil {
		log.Error("slack: thread reply failed", "err", err, "type", e.Type)
		v.s.lost("thread")
	}
}

// ReleaseRecorded posts a new release's notice with a Promote button; it
// implements server.Notifier.
func (s *Slack) ReleaseRecorded(ctx context.Context, site releases.Site, r releases.Release, source string) {
	if site.Channel == "" {
		return
	}
	ctx = context.WithoutCancel(ctx)
	if !s.begin() {
		return
	}
	go func() {
		defer s.work.Done()
		s.postNotice(ctx, site, r)
	}()
}

// Deployers authorizes by the site's deployers list: Slack user ids, or
// user-group ids (S...) whose members are fetched with
// usergroups.users.list and cached for a minute. Lookups of one group
// that run at once share one call.
type Deployers struct {
	API SlackAPI
	TTL time.Duration
	// Logger hears of user groups Slack will not list (once per group
	// per TTL); nil: discarded.
	Logger *slog.Logger
	// Now is the clock of the cache; nil: time.Now.
	Now func() time.Time

	flight singleflight.Group
	mu     sync.Mutex
	// groups caches members per user group; told when a bad group was
	// last logged.
	groups map[string]groupMembers
	told   map[string]time.Time
}

type groupMembers struct {
	users   map[string]bool
	fetched time.Time
}

var _ Authorizer = (*Deployers)(nil)

// IsDeployer implements Authorizer. A site with no deployers cannot be
// changed from Slack at all: failing closed is the safe default.
func (d *Deployers) IsDeployer(ctx context.Context, site releases.Site, user string) (bool, error) {
	return d.isMember(ctx, site.Deployers, user)
}

// IsPreviewer implements Authorizer: deployers, and the users and user
// groups of the site's previewers.
func (d *Deployers) IsPreviewer(ctx context.Context, site releases.Site, user string) (bool, error) {
	if ok, err := d.IsDeployer(ctx, site, user); ok || err != nil {
		return ok, err
	}
	return d.isMember(ctx, site.Previewers, user)
}

// isMember reports whether user is one of ids, or in one of the user
// groups (S...) among them. A group that cannot be read does not stop
// the others from being checked: the answer is an error only when no
// group lets the user in and one could not be asked.
func (d *Deployers) isMember(ctx context.Context, ids []string, user string) (bool, error) {
	for _, id := range ids {
		if id == user {
			return true, nil
		}
	}
	var firstErr error
	for _, id := range ids {
		if !strings.HasPrefix(id, "S") {
			continue
		}
		members, err := d.members(ctx, id)
		if err != nil {
			if firstErr == nil {
				firstErr = err
			}
			continue
		}
		if members[user] {
			return true, nil
		}
	}
	return false, firstErr
}

func (d *Deployers) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *Deployers) ttl() time.Duration {
	if d.TTL <= 0 {
		return time.Minute
	}
	return d.TTL
}

// members returns a group's members, from the cache when fresh. Slack's
// own refusal of a group (no_such_subteam, plan_upgrade_required,
// missing_scope: the configuration names a group the bot cannot list)
// is an answer, cached as an empty group and logged once per TTL; only a
// failure to reach Slack is an error.
func (d *Deployers) members(ctx context.Context, group string) (map[string]bool, error) {
	d.mu.Lock()
	if g, ok := d.groups[group]; ok && d.now().Sub(g.fetched) < d.ttl() {
		d.mu.Unlock()
		return g.users, nil
	}
	d.mu.Unlock()
	v, err, _ := d.flight.Do(group, func() (any, error) {
		var ids []string
		err := retry(ctx, func() (err error) {
			ids, err = d.API.GetUserGroupMembersContext(ctx, group)
			return err
		})
		var refused slack.SlackErrorResponse
		if errors.As(err, &refused) {
			d.tell(group, refused.Err)
			ids, err = nil, nil
		}
		if err != nil {
			return nil, fmt.Errorf("usergroups.users.list %s: %w", group, err)
		}
		users := make(map[string]bool, len(ids))
		for _, id := range ids {
			users[id] = true
		}
		d.mu.Lock()
		if d.groups == nil {
			d.groups = map[string]groupMembers{}
		}
		d.groups[group] = groupMembers{users: users, fetched: d.now()}
		d.mu.Unlock()
		return users, nil
	})
	if err != nil {
		return nil, err
	}
	return v.(map[string]bool), nil
}

// tell logs a group Slack will not list, once per TTL.
func (d *Deployers) tell(group, why string) {
	d.mu.Lock()
	defer d.mu.Unlock()
	if at, ok := d.told[group]; ok && d.now().Sub(at) < d.ttl() {
		return
	}
	if d.told == nil {
		d.told = map[string]time.Time{}
	}
	d.told[group] = d.now()
	if d.Logger != nil {
		d.Logger.Warn("slack will not list a user group in deployers or previewers; it counts as empty", "group", group, "error", why)
	}
}

// PruneFinished posts a retention run's summary to the site's channel; it
// implements server.Notifier.
func (s *Slack) PruneFinished(ctx context.Context, site releases.Site, rep *releases.PruneReport, err error) {
	if site.Channel == "" || rep == nil {
		return
	}
	ctx = context.WithoutCancel(ctx)
	m := PruneMessage(rep, err)
	s.RefreshNotices(ctx, site)
	if !s.begin() {
		return
	}
	go func() {
		defer s.work.Done()
		if err := retry(ctx, func() error {
			_, _, err := s.API.PostMessageContext(ctx, site.Channel, msgOptions(m)...)
			return err
		}); err != nil {
			s.Logger.Error("slack: prune summary failed", "site", site.Name, "err", err)
			s.lost("prune_summary")
		}
	}()
}
