package slackbot

import (
	"context"

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
