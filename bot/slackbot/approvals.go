package slackbot

import (
	"context"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/releases"
)

// An approval request's card is posted in the site's channel when the
// request is made, whichever door made it, and updated on every change:
// an approval, the approval that starts the deploy (which then reports in
// the card's thread), a rejection, the expiry. Each change re-reads the
// request from the store under one lock, so cards show the latest state
// whatever order the changes' goroutines run in, and a restart loses
// nothing: the card's place is kept with the request (bot.ApprovalLink),
// and its buttons name the site and the request.

var _ releases.ApprovalNotifier = (*Slack)(nil)

// ApprovalChanged implements releases.ApprovalNotifier. It returns at
// once; the card is posted or updated in the background.
func (s *Slack) ApprovalChanged(ctx context.Context, site releases.Site, a releases.ApprovalRequest) {
	if site.Channel == "" {
		return
	}
	s.background(ctx, func(ctx context.Context) { s.refreshApproval(ctx, site, a.ID) })
}

func (s *Slack) refreshApproval(ctx context.Context, site releases.Site, id string) {
	s.approvalMu.Lock()
	defer s.approvalMu.Unlock()
	a, err := s.Bot.Service.Approval(ctx, site.Name, id)
	if err != nil {
		s.Logger.Warn("slack: reading an approval request", "site", site.Name, "request", id, "err", err)
		return
	}
	m := bot.ApprovalMessage(site, a)
	cardChannel, cardTS, posted, err := s.Bot.ApprovalCard(ctx, site, id)
	if err != nil {
		s.Logger.Warn("slack: reading where an approval card is", "site", site.Name, "request", id, "err", err)
		return
	}
	if posted {
		if err := func() error {
			_, _, _, err := s.API.UpdateMessageContext(ctx, cardChannel, cardTS, msgOptions(m)...)
			return err
		}(); err != nil {
			s.Logger.Warn("slack: updating an approval card failed", "site", site.Name, "request", id, "err", err)
			s.lost("approval_update")
		}
		return
	}
	var channel, ts string
	if err := func() (err error) {
		channel, ts, err = s.API.PostMessageContext(ctx, site.Channel, msgOptions(m)...)
		return err
	}(); err != nil {
		s.Logger.Error("slack: posting an approval card failed", "site", site.Name, "request", id, "err", err)
		s.lost("approval")
		return
	}
	if channel == "" {
		channel = site.Channel
	}
	if err := s.Bot.Service.SetDeployLink(ctx, site.Name, id, bot.ApprovalLink, channel+" "+ts); err != nil {
		s.Logger.Warn("slack: recording an approval card", "site", site.Name, "request", id, "err", err)
	}
}
