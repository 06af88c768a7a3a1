package slackbot

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"time"

	"github.com/slack-go/slack"
	"golang.org/x/sync/singleflight"

	"github.com/deploybot/deploybot/releases"
)

// UserGroups tells the service who is in a Slack user group (S...) named
// in a site's deployers, approvers or previewers: members are fetched with
// usergroups.users.list and cached for a minute; lookups of one group that
// run at once share one call.
type UserGroups struct {
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

var _ releases.Directory = (*UserGroups)(nil)

// InGroup implements releases.Directory.
func (d *UserGroups) InGroup(ctx context.Context, group, user string) (bool, error) {
	members, err := d.members(ctx, group)
	if err != nil {
		return false, err
	}
	return members[user], nil
}

func (d *UserGroups) now() time.Time {
	if d.Now != nil {
		return d.Now()
	}
	return time.Now()
}

func (d *UserGroups) ttl() time.Duration {
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
func (d *UserGroups) members(ctx context.Context, group string) (map[string]bool, error) {
	d.mu.Lock()
	if g, ok := d.groups[group]; ok && d.now().Sub(g.fetched) < d.ttl() {
		d.mu.Unlock()
		return g.users, nil
	}
	d.mu.Unlock()
	v, err, _ := d.flight.Do(group, func() (any, error) {
		var ids []string
		err := func() (err error) {
			ids, err = d.API.GetUserGroupMembersContext(ctx, group)
			return err
		}()
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
func (d *UserGroups) tell(group, why string) {
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
