package slackbot

import (
	"context"
	"errors"
	"sort"
	"strings"
	"time"

	"github.com/slack-go/slack"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/releases"
)

// A release's notice is kept true: when the live release changes (a
// deploy from any door) or retention prunes, every notice whose message
// would now read differently is updated with chat.update. The notice's
// place (channel and ts) and the state it shows are kept in the store as
// the release's "slack" link, "CHANNEL TS STATE", so a restart keeps them
// and an unchanged notice costs no call. Pruned notices are final, so the
// notices updated on a live change are those retention still keeps.

// noticeLink is where a notice is and what it shows.
type noticeLink struct{ channel, ts, state string }

func parseNoticeLink(s string) (noticeLink, bool) {
	f := strings.Fields(s)
	if len(f) != 3 {
		return noticeLink{}, false
	}
	return noticeLink{f[0], f[1], f[2]}, true
}

func (l noticeLink) String() string { return l.channel + " " + l.ts + " " + l.state }

// RefreshNotices updates the site's notices that no longer say what is
// true; it implements server.Notifier's LiveChanged and runs after every
// deploy and prune. It returns at once; the updates run in the
// background, in order per call.
func (s *Slack) RefreshNotices(ctx context.Context, site releases.Site) {
	s.noticesStale.Store(true)
	s.background(ctx, func(ctx context.Context) { s.refreshNotices(ctx, site) })
}

func (s *Slack) refreshNotices(ctx context.Context, site releases.Site) {
	s.noticeMu.Lock()
	defer s.noticeMu.Unlock()
	// A refresh asked for while this one runs (another deploy) makes it
	// start over from what is live then: at 20 updates a minute, a prune
	// that retired hundreds of notices must not hold a deploy's two
	// changes back behind its own.
	for again := true; again; {
		s.noticesStale.Store(false)
		again = s.refreshNoticesOnce(ctx, site)
	}
}

// noticeChange is one notice to update, and how soon.
type noticeChange struct {
	version string
	link    noticeLink
	rel     releases.Release
	st      bot.NoticeState
	rank    int // 0: goes live or stops being live; 1: older or newer; 2: pruned
}

// refreshNoticesOnce updates, most urgent first, the notices whose class
// changed; true when it stopped for a newer refresh.
func (s *Slack) refreshNoticesOnce(ctx context.Context, site releases.Site) bool {
	links, err := s.Bot.Service.ReleaseLinks(ctx, site.Name)
	if err != nil {
		s.Logger.Warn("slack: reading the release notices", "site", site.Name, "err", err)
		return false
	}
	live := s.Bot.LiveNow(ctx, site)
	s.supersedeLiveReplies(ctx, site, live.Version())
	var work []noticeChange
	for version, ls := range links {
		l, ok := parseNoticeLink(ls["slack"])
		if !ok || l.state == "pruned" || l.state == noticeGone {
			continue
		}
		r, err := s.Bot.Service.Release(ctx, site.Name, version)
		if err != nil {
			continue
		}
		st := bot.NoticeStateOf(r, live)
		key := st.Key(version)
		if key == l.state {
			continue
		}
		rank := 1
		switch {
		case key == "live" || l.state == "live":
			rank = 0
		case key == "pruned":
			rank = 2
		}
		work = append(work, noticeChange{version: version, link: l, rel: r, st: st, rank: rank})
	}
	sort.Slice(work, func(i, j int) bool {
		if work[i].rank != work[j].rank {
			return work[i].rank < work[j].rank
		}
		return work[i].version < work[j].version
	})
	for _, c := range work {
		if s.noticesStale.Load() {
			return true
		}
		if s.notices != nil {
			if err := s.notices.Wait(ctx); err != nil {
				return false
			}
		}
		s.updateNotice(ctx, site, c)
	}
	return false
}

// noticeGone is the state of a notice Slack will never let the bot
// update again (deleted, too old, its channel archived).
const noticeGone = "gone"

// updateNotice re-renders one notice and records what it shows.
func (s *Slack) updateNotice(ctx context.Context, site releases.Site, c noticeChange) {
	m := bot.NoticeMessage(site, c.rel, nil, c.st)
	l := c.link
	l.state = c.st.Key(c.version)
	if _, _, _, err := s.API.UpdateMessageContext(ctx, l.channel, l.ts, msgOptions(m)...); err != nil {
		if !neverUpdatable(err) {
			s.Logger.Warn("slack: updating a release notice failed", "site", site.Name, "version", c.version, "err", err)
			s.lost("notice_update")
			return
		}
		// Asking again would fail again, on every refresh, for ever.
		s.Logger.Info("slack: a release notice can no longer be updated; it is left as it is", "site", site.Name, "version", c.version, "why", slackError(err))
		l.state = noticeGone
	}
	if err := s.Bot.Service.SetReleaseLink(ctx, site.Name, c.version, "slack", l.String()); err != nil {
		s.Logger.Warn("slack: recording a release notice", "site", site.Name, "version", c.version, "err", err)
	}
}

// neverUpdatable reports whether chat.update refused a message for good
// (https://api.slack.com/methods/chat.update#errors): it was deleted, it
// is too old or not the bot's to edit, or its channel is archived.
func neverUpdatable(err error) bool {
	var r slack.SlackErrorResponse
	if !errors.As(err, &r) {
		return false
	}
	switch r.Err {
	case "message_not_found", "cant_update_message", "edit_window_closed", "is_archived", "channel_not_found":
		return true
	}
	return false
}

// liveReplyLink names, among a deploy's links, its "is live" thread reply
// (channel and ts), while that reply still has a Rollback button.
const liveReplyLink = "slack_live"

// liveRepliesChecked is how many of the newest deploys are looked at for
// a live reply to supersede: each later deploy superseded the ones before
// it, so only the last few can still have a button.
const liveRepliesChecked = 10

// supersedeLiveReplies takes the Rollback button off the live replies of
// deploys that no longer made what is live: the newest finished deploy to
// the live release keeps its button, every other loses it (clicked, it
// would be refused as stale anyway; gone, nobody is misled).
func (s *Slack) supersedeLiveReplies(ctx context.Context, site releases.Site, live string) {
	ds, err := s.Bot.Service.Deploys(ctx, site.Name, liveRepliesChecked)
	if err != nil {
		return
	}
	current := true
	for _, d := range ds {
		if d.Phase != releases.PhaseDone {
			if !d.FlippedAt.IsZero() {
				current = false // a failed deploy moved the site on
			}
			continue
		}
		if current && d.To == live {
			current = false
			continue
		}
		current = false
		links, err := s.Bot.Service.DeployLinks(ctx, site.Name, d.ID)
		if err != nil || links[liveReplyLink] == "" {
			continue
		}
		channel, ts, ok := strings.Cut(links[liveReplyLink], " ")
		if !ok {
			continue
		}
		m := bot.SupersededMessage(d, live)
		if err := func() error {
			_, _, _, err := s.API.UpdateMessageContext(ctx, channel, ts, msgOptions(m)...)
			return err
		}(); err != nil {
			s.Logger.Warn("slack: taking the Rollback button off a superseded deploy failed", "site", site.Name, "deploy_id", d.ID, "err", err)
			continue
		}
		if err := s.Bot.Service.SetDeployLink(ctx, site.Name, d.ID, liveReplyLink, ""); err != nil {
			s.Logger.Warn("slack: recording a superseded live reply", "site", site.Name, "deploy_id", d.ID, "err", err)
		}
	}
}

// LiveChanged implements server.Notifier: the notices are refreshed, and
// the cards of approved requests whose deploys ended say so.
func (s *Slack) LiveChanged(ctx context.Context, site releases.Site) {
	s.RefreshNotices(ctx, site)
	s.approvalsEnded(ctx, site)
}

// RetryNotices posts again the site's notices whose post failed, or
// whose poster stopped between its claim and its post (see
// releases.UnpostedNotices); serve calls it on the holder of the site's
// lease, at each reconcile. It implements server.NoticeRetrier.
func (s *Slack) RetryNotices(ctx context.Context, site releases.Site) {
	if site.Channel == "" {
		return
	}
	rs, err := s.Bot.Service.UnpostedNotices(ctx, site.Name, "slack")
	if err != nil {
		s.Logger.Warn("slack: looking for notices to post again", "site", site.Name, "err", err)
		return
	}
	for _, r := range rs {
		s.Logger.Info("slack: posting a release notice again", "site", site.Name, "version", r.Version)
		s.ReleaseRecorded(ctx, site, r, "retry")
	}
}

// postNotice posts a release's notice and remembers where it is.
func (s *Slack) postNotice(ctx context.Context, site releases.Site, r releases.Release) {
	if s.notices != nil {
		if err := s.notices.Wait(ctx); err != nil {
			return
		}
	}
	// Every replica that takes the hook or finds the release in the
	// bucket gets here; one posts.
	claim, err := s.Bot.Service.ClaimNotice(ctx, site.Name, r.Version, "slack")
	if err != nil {
		s.Logger.Warn("slack: claiming a release notice; it is not posted", "site", site.Name, "version", r.Version, "err", err)
		s.lost("notice")
		return
	}
	if claim == "" {
		return
	}
	st := bot.NoticeStateOf(r, s.Bot.LiveNow(ctx, site))
	m := bot.NoticeMessage(site, r, s.Bot.DiffFromLive(ctx, site, r.Version), st)
	var channel, ts string
	if err := func() (err error) {
		channel, ts, err = s.API.PostMessageContext(ctx, site.Channel, msgOptions(m)...)
		return err
	}(); err != nil {
		s.Logger.Error("slack: release notice failed", "site", site.Name, "version", r.Version, "err", err)
		s.lost("notice")
		s.noticeRefused(ctx, site, r, claim, err)
		return
	}
	if channel == "" {
		channel = site.Channel
	}
	l := noticeLink{channel: channel, ts: ts, state: st.Key(r.Version)}
	// Posted: a link not recorded would have it posted again once the
	// claim runs out, so the record is tried a few times.
	for try := 1; ; try++ {
		err := s.Bot.Service.SetReleaseLink(ctx, site.Name, r.Version, "slack", l.String())
		if err == nil {
			return
		}
		if try == 3 {
			s.Logger.Warn("slack: recording a release notice; it may be posted again", "site", site.Name, "version", r.Version, "err", err)
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(time.Duration(try) * time.Second):
		}
	}
}

// noticeRefused gives a notice's claim up when Slack said it did not take
// the post (an error answer, or a rate limit), so the next look for
// unposted notices (RetryNotices) posts it at once. One the channel
// itself refuses is tried again once the claim has run out, so a missing
// invite is not tried every minute; one lost in transit (Slack may have
// posted it) too, so a notice is not posted twice within minutes.
func (s *Slack) noticeRefused(ctx context.Context, site releases.Site, r releases.Release, claim string, err error) {
	var answer slack.SlackErrorResponse
	var limited *slack.RateLimitedError
	if unpostable(err) || !errors.As(err, &answer) && !errors.As(err, &limited) {
		return
	}
	if err := s.Bot.Service.AbandonReleaseClaim(ctx, site.Name, r.Version, "slack", claim); err != nil {
		s.Logger.Warn("slack: giving up the claim on a notice that failed; it is tried again once the claim runs out", "site", site.Name, "version", r.Version, "err", err)
	}
}

// Answered implements bot.Asker: the question (an ephemeral message) is
// replaced through the click's response_url, so its Confirm and Cancel
// are gone; without one, the answer comes as a new ephemeral message.
func (o *slackOut) Answered(ctx context.Context, req bot.Request, text bot.Mrkdwn) {
	if req.ResponseURL == "" {
		o.Private(ctx, req, text)
		return
	}
	ctx = context.WithoutCancel(ctx)
	if err := o.s.replaceOriginal(ctx, req.ResponseURL, bot.Message{Text: text, Blocks: []bot.Block{bot.Section{Text: text}}}); err != nil {
		o.s.Logger.Error("slack: replacing an answered question failed", "user", req.UserID, "err", err)
		o.s.lost("ephemeral")
	}
}

// Ask implements bot.Asker with an ephemeral message through the
// request's response URL.
func (o *slackOut) Ask(ctx context.Context, req bot.Request, question bot.Mrkdwn, then bot.Command) {
	ctx = context.WithoutCancel(ctx)
	m := bot.AskMessage(question, then)
	var err error
	if req.ResponseURL != "" {
		err = o.s.respond(ctx, req.ResponseURL, m, false)
	} else {
		err = func() error {
			_, err := o.s.API.PostEphemeralContext(ctx, req.Channel, req.UserID, msgOptions(m)...)
			return err
		}()
	}
	if err != nil {
		o.s.Logger.Error("slack: asking for a confirmation failed", "user", req.UserID, "err", err)
		o.s.lost("ephemeral")
	}
}
