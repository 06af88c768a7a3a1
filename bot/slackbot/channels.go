package slackbot

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/slack-go/slack"
)

// channelCheck remembers a check that found every channel fine for a
// minute: /readyz may be asked every few seconds, and conversations.info
// is rate limited (Tier 3, 50+ a minute). A check that found a problem is
// not remembered, so inviting the bot shows at the next probe.
type channelCheck struct {
	mu       sync.Mutex
	at       time.Time
	problems map[string]string
}

// ChannelProblems checks each site's channel once (conversations.info)
// and says which the bot cannot post to, and why: not found (a private
// channel it was not invited to, or a wrong id) or archived. A public
// channel the bot is not in is fine: chat:write.public posts there.
// Channels given by name are not checked (conversations.info takes ids).
func (s *Slack) ChannelProblems(ctx context.Context) map[string]string {
	s.channels.mu.Lock()
	defer s.channels.mu.Unlock()
	if s.channels.problems != nil && len(s.channels.problems) == 0 && time.Since(s.channels.at) < time.Minute {
		return s.channels.problems
	}
	problems := map[string]string{}
	for _, site := range s.Bot.Service.Sites {
		ch := site.Channel
		if ch == "" || !bot.IsChannelID(ch) {
			continue
		}
		info, err := s.API.GetConversationInfoContext(ctx, &slack.GetConversationInfoInput{ChannelID: ch})
		var refused slack.SlackErrorResponse
		switch {
		case errors.As(err, &refused) && refused.Err == "channel_not_found":
			problems[ch] = fmt.Sprintf("site %s: the bot cannot see channel %s: invite it (/invite @deploybot) if the channel is private, or fix the id", site.Name, ch)
		case err != nil:
			problems[ch] = fmt.Sprintf("site %s: checking channel %s: %v", site.Name, ch, err)
		case info.IsArchived:
			problems[ch] = fmt.Sprintf("site %s: channel %s is archived", site.Name, ch)
		}
	}
	s.channels.problems, s.channels.at = problems, time.Now()
	return problems
}

// ChannelsReady is a readiness check: an error naming the channels the
// bot cannot post to.
func (s *Slack) ChannelsReady(ctx context.Context) error {
	p := s.ChannelProblems(ctx)
	if len(p) == 0 {
		return nil
	}
	var lines []string
	for _, why := range p {
		lines = append(lines, why)
	}
	sort.Strings(lines)
	return errors.New(strings.Join(lines, "; "))
}
