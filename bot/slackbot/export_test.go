package slackbot

import (
	"context"
	"errors"

	"github.com/slack-go/slack/socketmode"
	"golang.org/x/time/rate"

	"github.com/deploybot/deploybot/releases"
)

// RefreshNoticesNow is refreshNotices for tests: it runs in the caller,
// after any refresh under way.
func (s *Slack) RefreshNoticesNow(ctx context.Context, site releases.Site) {
	s.refreshNotices(ctx, site)
}

// PaceNotices sets how many notice posts and updates a minute the bot
// allows itself (tests that are not about the pace lift it).
func (s *Slack) PaceNotices(perMinute float64, burst int) {
	s.notices = rate.NewLimiter(rate.Limit(perMinute/60), burst)
}

// RefuseAckPayloads makes s's acks that carry an answer fail, as
// slack-go's do for a response of 20 KB or more, and acks without one go
// out as usual: the answer must then come some other way. Call it before
// Run.
func RefuseAckPayloads(s *Slack) { s.acker = refusingAcker{s.Socket} }

type refusingAcker struct{ c *socketmode.Client }

func (r refusingAcker) Ack(req socketmode.Request, payload ...any) error {
	if len(payload) > 0 && payload[0] != nil {
		return errors.New("socket mode response meets or exceeds Slack's 20480-byte WebSocket limit and would be silently dropped")
	}
	return r.c.Ack(req)
}
