package slackbot

import (
	"context"

	"github.com/deploybot/deploybot/releases"
)

// RefreshNoticesNow is refreshNotices for tests: it runs in the caller,
// after any refresh under way.
func (s *Slack) RefreshNoticesNow(ctx context.Context, site releases.Site) {
	s.refreshNotices(ctx, site)
}
