package slackbot

import (
	"context"
	"strings"

	"github.com/slack-go/slack"

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

// Links kept with a request (under its id, beside bot.ApprovalLink):
// which decision the person who asked was told of in the card's thread,
// and that the card says how the approved deploy ended. Each makes its
// post once, whatever number of times the card is refreshed.
const (
	approvalToldLink  = "slack-approval-told"
	approvalEndedLink = "slack-approval-ended"
)

func (s *Slack) refreshApproval(ctx context.Context, site releases.Site, id string) {
	s.approvalMu.Lock()
	defer s.approvalMu.Unlock()
	log := s.Logger.With("site", site.Name, "request", id)
	a, err := s.Bot.Service.Approval(ctx, site.Name, id)
	if err != nil {
		log.Warn("slack: reading an approval request", "err", err)
		return
	}
	links, err := s.Bot.Service.DeployLinks(ctx, site.Name, id)
	if err != nil {
		log.Warn("slack: reading where an approval card is", "err", err)
		return
	}
	view := bot.ApprovalView{Site: site, Request: a, Approvers: s.Bot.ApproverIDs(site, a.Actor)}
	if a.State == releases.ApprovalApproved {
		// The approved promote's id is the request's.
		if d, err := s.Bot.Service.Deploy(ctx, site.Name, id); err == nil && d.Phase.Final() {
			view.Deploy = &d
			if l, ok, err := s.Bot.Service.Live(ctx, site.Name); err == nil && ok {
				view.Live = l.Version
			}
		}
	}
	m := view.Message()
	var cardChannel, cardTS string
	if f := strings.Fields(links[bot.ApprovalLink]); len(f) == 2 {
		cardChannel, cardTS = f[0], f[1]
		err := func() error {
			_, _, _, err := s.API.UpdateMessageContext(ctx, cardChannel, cardTS, msgOptions(m)...)
			return err
		}()
		if err != nil {
			log.Warn("slack: updating an approval card failed", "err", err)
			s.lost("approval_update")
		}
		// Said, or never to be said (the card was deleted, its channel
		// archived): approvalsEnded leaves the card alone from now on.
		if (err == nil || neverUpdatable(err)) && view.Deploy != nil && links[approvalEndedLink] == "" {
			if err := s.Bot.Service.SetDeployLink(ctx, site.Name, id, approvalEndedLink, string(view.Deploy.Phase)); err != nil {
				log.Warn("slack: recording that an approval card says how its deploy ended", "err", err)
			}
		}
	} else {
		if err := func() (err error) {
			cardChannel, cardTS, err = s.API.PostMessageContext(ctx, site.Channel, msgOptions(m)...)
			return err
		}(); err != nil {
			log.Error("slack: posting an approval card failed", "err", err)
			s.lost("approval")
			return
		}
		if cardChannel == "" {
			cardChannel = site.Channel
		}
		if err := s.Bot.Service.SetDeployLink(ctx, site.Name, id, bot.ApprovalLink, cardChannel+" "+cardTS); err != nil {
			log.Warn("slack: recording an approval card", "err", err)
		}
	}
	s.tellAsker(ctx, site, a, links[approvalToldLink], cardChannel, cardTS)
}

// tellAsker mentions the person who asked in the card's thread once the
// request is decided (approved, rejected, expired, failed), once per
// decision (told is the one told of already): a card's update notifies
// nobody.
func (s *Slack) tellAsker(ctx context.Context, site releases.Site, a releases.ApprovalRequest, told, channel, ts string) {
	if a.State == releases.ApprovalPending || string(a.State) == told {
		return
	}
	m := bot.ApprovalDecidedMessage(site, a, s.Bot.MentionOf(a.Actor))
	if m.Text != "" {
		if err := func() error {
			_, _, err := s.API.PostMessageContext(ctx, channel, append(msgOptions(m), slack.MsgOptionTS(ts))...)
			return err
		}(); err != nil {
			s.Logger.Warn("slack: telling the person who asked how their approval request ended failed", "site", site.Name, "request", a.ID, "err", err)
			s.lost("approval_decided")
			return
		}
	}
	if err := s.Bot.Service.SetDeployLink(ctx, site.Name, a.ID, approvalToldLink, string(a.State)); err != nil {
		s.Logger.Warn("slack: recording that the person who asked was told", "site", site.Name, "request", a.ID, "err", err)
	}
}

// approvedDeployEnded refreshes the card of the request a deploy ran for,
// if any, so it says how the deploy ended.
func (s *Slack) approvedDeployEnded(ctx context.Context, site releases.Site, deployID string) {
	if site.Channel == "" || deployID == "" {
		return
	}
	s.background(ctx, func(ctx context.Context) {
		if _, _, ok, err := s.Bot.ApprovalCard(ctx, site, deployID); err == nil && ok {
			s.refreshApproval(ctx, site, deployID)
		}
	})
}

// approvalsEnded brings the cards of the site's newest approved requests
// up to date once their deploys have ended, when a deploy ran elsewhere
// (the API, another process): LiveChanged calls it. It reads the store
// only, and updates a card once.
func (s *Slack) approvalsEnded(ctx context.Context, site releases.Site) {
	if site.Channel == "" {
		return
	}
	s.background(ctx, func(ctx context.Context) {
		as, err := s.Bot.Service.Approvals(ctx, site.Name, 5)
		if err != nil {
			return
		}
		for _, a := range as {
			if a.State != releases.ApprovalApproved {
				continue
			}
			links, err := s.Bot.Service.DeployLinks(ctx, site.Name, a.ID)
			if err != nil || links[bot.ApprovalLink] == "" || links[approvalEndedLink] != "" {
				continue
			}
			if d, err := s.Bot.Service.Deploy(ctx, site.Name, a.ID); err == nil && d.Phase.Final() {
				s.refreshApproval(ctx, site, a.ID)
			}
		}
	})
}
