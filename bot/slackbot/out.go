package slackbot

import (
	"context"
	"errors"
	"log/slog"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/releases"
)

// msgOptions is a message as chat.postMessage and chat.update take it,
// within Slack's limits (fit): every post goes through here.
func msgOptions(m bot.Message) []slack.MsgOption {
	p := encode(m)
	opts := []slack.MsgOption{slack.MsgOptionText(p.text, false)}
	if len(p.blocks) > 0 {
		opts = append(opts, slack.MsgOptionBlocks(p.blocks...))
	}
	return opts
}

// slackOut answers a request in Slack. Posting uses a context that
// outlives a shutdown, so the thread still says what happened.
type slackOut struct{ s *Slack }

// Private answers through the request's response_url, which works in
// every conversation; without one (a request from elsewhere),
// chat.postEphemeral in the channel it came from.
func (o *slackOut) Private(ctx context.Context, req bot.Request, text bot.Mrkdwn) {
	ctx = context.WithoutCancel(ctx)
	var err error
	if req.ResponseURL != "" {
		err = o.s.respond(ctx, req.ResponseURL, bot.Message{Text: text}, false)
	} else {
		err = func() error {
			_, err := o.s.API.PostEphemeralContext(ctx, req.Channel, req.UserID, slack.MsgOptionText(cutMrkdwn(string(text), maxMessageText), false))
			return err
		}()
	}
	if err != nil {
		o.s.Logger.Error("slack: ephemeral reply failed", "user", req.UserID, "err", err)
		o.s.lost("ephemeral")
	}
}

// Public answers where the command was typed, for everyone there: in the
// thread of a clicked message, else through the command's response_url
// (in_channel), which works where the bot is not a member.
func (o *slackOut) Public(ctx context.Context, req bot.Request, m bot.Message) {
	ctx = context.WithoutCancel(ctx)
	var err error
	if req.Thread == "" && req.ResponseURL != "" {
		err = o.s.respond(ctx, req.ResponseURL, m, true)
	} else {
		opts := msgOptions(m)
		if req.Thread != "" {
			opts = append(opts, slack.MsgOptionTS(req.Thread))
		}
		err = func() error {
			_, _, err := o.s.API.PostMessageContext(ctx, req.Channel, opts...)
			return err
		}()
	}
	if err != nil {
		o.s.Logger.Error("slack: reply failed", "channel", req.Channel, "err", err)
		o.s.lost("reply")
	}
}

func (o *slackOut) Deploy(ctx context.Context, req bot.Request, site releases.Site) bot.DeployView {
	channel := site.Channel
	thread := req.Thread
	if channel == "" || (thread != "" && req.Channel != "") {
		channel = req.Channel
	}
	v := &slackDeploy{s: o.s, ctx: context.WithoutCancel(ctx), channel: channel, thread: thread, req: req, site: site,
		events: newEventQueue(), done: make(chan struct{})}
	if isDM(channel) {
		// A site without a channel, its deploy typed in a DM: the bot
		// is not in that DM (it would need im:write to open one, which
		// the manifest does not ask for), and chat.postMessage there
		// answers channel_not_found. The person hears through their
		// command's response_url how it starts and ends instead.
		v.gone, v.direct = true, true
	}
	go v.loop()
	return v
}

// isDM reports whether ch is a direct message's id (D...).
func isDM(ch string) bool { return strings.HasPrefix(ch, "D") && bot.IsChannelID(ch) }

// slackDeploy posts one deploy's card and thread from its own goroutine,
// in order, so a slow or rate-limited Slack never holds the flip back.
type slackDeploy struct {
	s       *Slack
	ctx     context.Context
	channel string
	thread  string // thread root; the card's ts when the deploy has no thread of its own
	cardTS  string
	card    bot.CardState
	// linked is the deploy whose card link was recorded last.
	linked string
	// cardDirty: the card changed since it was last posted or updated
	// (at cardAt); noteAt is when a phase note last went to the thread.
	cardDirty bool
	cardAt    time.Time
	noteAt    time.Time
	started   time.Time
	events    *eventQueue
	done      chan struct{}
	// gone: the channel cannot be posted to; the view posts nothing more.
	gone bool
	// direct: the deploy was typed in a DM and has nowhere else to
	// report (gone is set): its start and its end are told to the person
	// who typed it; told once the start is.
	direct, told bool
	// threaded: the card itself is a reply in someone else's thread (a
	// notice's, an approval card's, a deploy's), where the channel does
	// not see it change.
	threaded bool
	// req is who started the deploy and from where, to be told where its
	// thread is, or why there is none.
	req  bot.Request
	site releases.Site
}

// tell answers the person who started the deploy, privately, through
// their command's response_url (nothing without one).
func (v *slackDeploy) tell(text bot.Mrkdwn) {
	if v.req.ResponseURL == "" {
		return
	}
	if err := v.s.respond(v.ctx, v.req.ResponseURL, bot.Message{Text: text}, false); err != nil {
		v.s.Logger.Warn("slack: telling the person where the deploy reports failed", "user", v.req.UserID, "err", err)
		v.s.lost("ephemeral")
	}
}

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

// Event queues e for the view's goroutine without waiting for Slack.
func (v *slackDeploy) Event(e releases.Event) { v.events.push(e) }

func (v *slackDeploy) Done(*releases.Outcome, error) {
	// What is live may have changed: the notices say so, and an approved
	// promote's card says how it ended (its id is the request's).
	v.s.RefreshNotices(v.ctx, v.site)
	if v.req.Cmd.Name == "approve" {
		v.s.approvedDeployEnded(v.ctx, v.site, v.req.Cmd.Version)
	}
	v.events.close()
	select {
	case <-v.done:
	case <-time.After(2 * time.Minute):
		v.s.Logger.Warn("slack: gave up waiting for the deploy thread to be posted")
	}
}

// How often a deploy's card and thread change. The card follows the
// deploy at most every cardEvery (its end at once); a phase's notes (the
// visible phase's tally, each round) go on the card, and into the thread
// at most every noteEvery. A promote makes some ten thread replies and a
// handful of card updates however long its phases poll, well inside
// Slack's rate limits even with several deploys at once.
const (
	cardEvery = 2 * time.Second
	noteEvery = 30 * time.Second
)

func (v *slackDeploy) loop() {
	defer close(v.done)
	for {
		wait := time.Duration(-1)
		if v.cardDirty {
			wait = max(0, cardEvery-time.Since(v.cardAt))
		}
		e, got, closed := v.events.popWithin(wait)
		switch {
		case got:
			v.post(e)
		case closed:
			v.flushCard()
			return
		default:
			v.flushCard() // the pause is over: the card catches up
		}
	}
}

// final reports whether an event ends the deploy (or this view of it).
func final(t releases.EventType) bool {
	return t == releases.EventDeployFinished || t == releases.EventDeployFailed || t == releases.EventDeployInterrupted
}

// flushCard updates the card to the latest state if it changed since.
func (v *slackDeploy) flushCard() {
	if !v.cardDirty || v.cardTS == "" || v.gone {
		return
	}
	v.cardDirty, v.cardAt = false, time.Now()
	if _, _, _, err := v.s.API.UpdateMessageContext(v.ctx, v.channel, v.cardTS, msgOptions(bot.Card(v.card))...); err != nil {
		v.s.Logger.Warn("slack: updating the status card failed", "deploy_id", v.card.Deploy.ID, "err", err)
		v.s.lost("card_update")
	}
}

func (v *slackDeploy) post(e releases.Event) {
	if v.direct {
		v.postDirect(e)
		return
	}
	if v.gone {
		return
	}
	log := v.s.Logger.With("deploy_id", e.Deploy.ID, "site", e.Deploy.Site)
	v.updateCard(e)
	if v.cardTS == "" {
		if !v.postCard(e, log) {
			return
		}
	} else {
		if e.Deploy.ID != v.linked {
			// A second deploy in this card (deploybot's automatic
			// rollback): whoever resumes it goes on here too.
			v.linkCard(e, log)
		}
		// Updated by the loop at most every cardEvery; the end at once,
		// before the thread says it.
		v.cardDirty = true
		if final(e.Type) {
			v.flushCard()
		}
	}
	v.postThreadLine(e, log)
}

// linkCard records where e's deploy is shown (the card and its thread),
// for whichever process finishes the deploy (this one after a restart,
// another replica).
func (v *slackDeploy) linkCard(e releases.Event, log *slog.Logger) {
	v.linked = e.Deploy.ID
	if err := v.s.Bot.Service.SetDeployLink(v.ctx, e.Deploy.Site, e.Deploy.ID, releases.DeployLinkCard, v.channel+" "+v.cardTS+" "+v.thread); err != nil {
		log.Warn("recording the deploy's card", "err", err)
	}
}

// updateCard brings the card's state up to e.
func (v *slackDeploy) updateCard(e releases.Event) {
	if v.started.IsZero() {
		v.started = e.Deploy.StartedAt
	}
	if v.card.Deploy.ID != e.Deploy.ID {
		// A new deploy in this view (the first, or the automatic
		// rollback): the card links what CI told about its release.
		v.card.Links = v.links(e.Deploy)
	}
	v.card.Deploy = e.Deploy
	v.card.Elapsed = time.Since(v.started)
	switch e.Type {
	case releases.EventDeployStarted, releases.EventDeployResumed:
		// A second deploy in one view is deploybot's automatic rollback:
		// the card follows it from the start.
		v.card.Phase, v.card.Result, v.card.Error = "starting", "", ""
	case releases.EventPhaseStarted:
		v.card.Phase, v.card.Note = bot.PhaseName(e.Phase, e.Title), ""
	case releases.EventPhaseNote:
		v.card.Note = e.Title
	case releases.EventDeployFinished:
		v.card.Result = "done"
	case releases.EventDeployFailed:
		v.card.Result, v.card.Error = "failed", bot.ErrorMessage(e.Err)
	case releases.EventDeployInterrupted:
		v.card.Result = "interrupted"
	}
}

// postCard posts the card, in the request's thread when it has one, and
// makes its thread the deploy's; false when it could not be posted.
func (v *slackDeploy) postCard(e releases.Event, log *slog.Logger) bool {
	opts := msgOptions(bot.Card(v.card))
	if v.thread != "" {
		opts = append(opts, slack.MsgOptionTS(v.thread))
		v.threaded = true
	}
	var channelID string
	err := func() (err error) {
		channelID, v.cardTS, err = v.s.API.PostMessageContext(v.ctx, v.channel, opts...)
		return err
	}()
	if err != nil {
		v.s.lost("card")
		if unpostable(err) {
			// Every later post would fail the same way: the deploy
			// goes on, recorded, without a thread, and whoever
			// started it hears why and what to do.
			v.gone = true
			log.Error("slack: the bot cannot post in the site's channel; the deploy runs without a card or thread (invite the bot to the channel)", "channel", v.channel, "err", err)
			v.tell(bot.Md(":warning: The %s of *%s* runs, but I cannot post in %s (Slack says %s), so there is no thread: invite me there with `/invite @deploybot`. `%s status %s` follows it.",
				string(e.Deploy.Kind), e.Deploy.Site, bot.ChannelMention(v.channel), slackError(err), v.s.Bot.Command, e.Deploy.Site))
			return false
		}
		log.Error("slack: posting the status card failed", "err", err)
		return false
	}
	// chat.update takes the channel's id, which chat.postMessage
	// returns also when it was given a name (#deploys).
	if channelID != "" {
		v.channel = channelID
	}
	if v.thread == "" {
		v.thread = v.cardTS
	}
	v.linkCard(e, log)
	v.linkThread(e)
	return true
}

// linkThread records the thread for status and tells the person who
// typed the command elsewhere where the deploy reports.
func (v *slackDeploy) linkThread(e releases.Event) {
	permalink := v.recordPermalink(e.Deploy)
	// Typed somewhere else (a DM, another channel, an approve typed
	// anywhere but its card's thread): say where the deploy reports.
	if (v.req.Thread == "" && v.req.Channel != v.channel) || v.req.Elsewhere {
		v.tell(bot.Md("Started: the %s of *%s* reports in %s.", string(e.Deploy.Kind), e.Deploy.Site, bot.Link(permalink, "its thread")))
	}
}

// recordPermalink records the thread's permalink, which status links to
// while the deploy runs, and returns it.
func (v *slackDeploy) recordPermalink(d releases.Deploy) string {
	permalink := "https://slack.com/archives/" + v.channel + "/p" + strings.ReplaceAll(v.thread, ".", "")
	if p, err := v.s.API.GetPermalinkContext(v.ctx, &slack.PermalinkParameters{Channel: v.channel, Ts: v.thread}); err == nil && p != "" {
		permalink = p
	}
	if err := v.s.Bot.Service.SetDeployLink(v.ctx, d.Site, d.ID, "slack", permalink); err != nil {
		v.s.Logger.Warn("slack: recording the deploy's thread", "deploy_id", d.ID, "err", err)
	}
	return permalink
}

// postThreadLine says e in the deploy's thread, when it says anything.
func (v *slackDeploy) postThreadLine(e releases.Event, log *slog.Logger) {
	if e.Type == releases.EventPhaseNote {
		// On the card at once; in the thread, now and then.
		if !v.noteAt.IsZero() && time.Since(v.noteAt) < noteEvery {
			return
		}
		v.noteAt = time.Now()
	}
	var m bot.Message
	if e.Type == releases.EventDeployFinished {
		m = bot.LiveMessage(e.Deploy, e.Elapsed)
	} else if line := bot.ThreadLine(e); line != "" {
		m = bot.Message{Text: line}
	} else {
		return
	}
	opts := append(msgOptions(m), slack.MsgOptionTS(v.thread))
	if v.broadcast(e) {
		opts = append(opts, slack.MsgOptionBroadcast())
	}
	var ts string
	if err := func() (err error) {
		_, ts, err = v.s.API.PostMessageContext(v.ctx, v.channel, opts...)
		return err
	}(); err != nil {
		log.Error("slack: thread reply failed", "err", err, "type", e.Type)
		v.s.lost("thread")
		return
	}
	if e.Type == releases.EventDeployFinished && ts != "" {
		// Remembered so the reply loses its Rollback button once
		// another deploy moves the site on (supersedeLiveReplies).
		if err := v.s.Bot.Service.SetDeployLink(v.ctx, e.Deploy.Site, e.Deploy.ID, liveReplyLink, v.channel+" "+ts); err != nil {
			log.Warn("recording the deploy's live reply", "err", err)
		}
	}
}

// postDirect tells the person who typed a deploy in a DM, where nothing
// can be posted, that it started (once) and how it ended: at most three
// answers (a promote that fails and deploybot's rollback of it), within
// the five a response_url takes.
func (v *slackDeploy) postDirect(e releases.Event) {
	d := e.Deploy
	if !v.told {
		v.told = true
		v.tell(bot.Md(":information_source: The %s of *%s* runs, with no thread: *%s* has no channel of its own, and I cannot post in this conversation. `%s status %s` follows it; I will tell you here how it ends.",
			string(d.Kind), d.Site, d.Site, v.s.Bot.Command, d.Site))
	}
	switch e.Type {
	case releases.EventDeployFinished:
		v.tell(bot.LiveMessage(d, e.Elapsed).Text)
	case releases.EventDeployFailed:
		v.tell(bot.ThreadLine(e))
	}
}

// broadcast reports whether e's thread reply is also shown in the
// channel (reply_broadcast,
// https://api.slack.com/methods/chat.postMessage#arg_reply_broadcast):
// what people must not miss, and only that, never a phase's line. A
// deploy's failure (its last line, which says what is live now), the
// start of deploybot's own rollback (saying why), and the end of a deploy
// whose card is in a thread, where the channel does not see it change; a
// card in the channel shows its own end.
func (v *slackDeploy) broadcast(e releases.Event) bool {
	switch e.Type {
	case releases.EventDeployFailed:
		return true
	case releases.EventDeployStarted:
		return e.Deploy.Actor == releases.AutoActor && e.Deploy.Kind == releases.KindRollback
	case releases.EventDeployFinished:
		return v.threaded
	}
	return false
}

// links are what the card shows under a deploy: the release's commit,
// branch, pull request and CI run, and what changed since the release it
// replaces; "" when the store knows nothing of them.
func (v *slackDeploy) links(d releases.Deploy) bot.Mrkdwn {
	to, err := v.s.Bot.Service.Release(v.ctx, d.Site, d.To)
	if err != nil {
		return ""
	}
	var from *releases.Release
	if d.From != "" {
		if r, err := v.s.Bot.Service.Release(v.ctx, d.Site, d.From); err == nil {
			from = &r
		}
	}
	return bot.DeployLinks(v.site, to, from)
}
