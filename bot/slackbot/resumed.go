package slackbot

import (
	"context"
	"strings"
	"sync"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/releases"
)

// Resumed is the progress of the deploys this process's recovery resumes
// (an interrupted deploy when serve starts again, or one whose replica
// died): each goes on in the card and thread it started in, whichever
// process posted them, found through the card link the deploy shared.
// A deploy without one (started from the command line, or its card never
// posted) stays out of the chat, as it was. end closes the views once
// recovery returns, waiting for their last posts.
func (s *Slack) Resumed(ctx context.Context) (progress releases.Progress, end func()) {
	var mu sync.Mutex
	ended := false
	// Recovery finishes one site's deploys one after the other, and an
	// automatic rollback it starts has no card of its own: it follows in
	// the card of the deploy it undoes, as when that runs uninterrupted.
	// Another resumed deploy of the site has a card of its own.
	type shown struct {
		resumed string // the resumed deploy's id
		view    *slackDeploy
	}
	views := map[string]shown{}
	var all []*slackDeploy
	progress = func(e releases.Event) {
		mu.Lock()
		if ended {
			mu.Unlock()
			return
		}
		sh, ok := views[e.Deploy.Site]
		if !ok || e.Type == releases.EventDeployResumed && sh.resumed != e.Deploy.ID {
			sh = shown{resumed: e.Deploy.ID, view: s.resumedView(ctx, e.Deploy)}
			views[e.Deploy.Site] = sh
			if sh.view != nil {
				all = append(all, sh.view)
			}
		}
		mu.Unlock()
		if sh.view != nil {
			sh.view.Event(e)
		}
	}
	end = func() {
		mu.Lock()
		ended = true
		closing := all
		all = nil
		mu.Unlock()
		// Each waits for its last posts; together, not one after another.
		var wg sync.WaitGroup
		for _, v := range closing {
			wg.Add(1)
			go func() {
				defer wg.Done()
				v.Done(nil, nil)
			}()
		}
		wg.Wait()
	}
	return progress, end
}

// resumedView is the view of a deploy whose card is posted already, nil
// when its card is not known here.
func (s *Slack) resumedView(ctx context.Context, d releases.Deploy) *slackDeploy {
	links, err := s.Bot.Service.DeployLinks(ctx, d.Site, d.ID)
	if err != nil {
		s.Logger.Warn("slack: reading a resumed deploy's card", "deploy_id", d.ID, "err", err)
		return nil
	}
	f := strings.Fields(links[releases.DeployLinkCard])
	if len(f) != 3 {
		return nil
	}
	site, err := s.Bot.Service.Site(d.Site)
	if err != nil {
		return nil
	}
	// The link may come from the bucket: the bot posts only where the
	// deploy's card can be, the site's channel (when the configuration
	// names it by id), never a DM.
	if isDM(f[0]) || bot.IsChannelID(site.Channel) && f[0] != site.Channel {
		s.Logger.Warn("slack: a resumed deploy's card is not in its site's channel; the deploy goes on without it", "deploy_id", d.ID, "channel", f[0])
		return nil
	}
	v := &slackDeploy{s: s, ctx: context.WithoutCancel(ctx), channel: f[0], cardTS: f[1], thread: f[2], threaded: f[2] != f[1], linked: d.ID,
		req: bot.Request{}, site: site, events: newEventQueue(), done: make(chan struct{})}
	go func() {
		// This process's status links to the thread too, as the one
		// that started the deploy did.
		v.recordPermalink(d)
		v.loop()
	}()
	return v
}
