package slackbot

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/slack-go/slack"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
)

// groupsAPI answers usergroups.users.list from a table: members, Slack's
// own refusal, or a failure to reach Slack.
type groupsAPI struct {
	SlackAPI
	members map[string][]string
	refused map[string]string
	down    map[string]bool
	calls   atomic.Int32
	delay   time.Duration
}

func (g *groupsAPI) GetUserGroupMembersContext(_ context.Context, group string, _ ...slack.GetUserGroupMembersOption) ([]string, error) {
	g.calls.Add(1)
	time.Sleep(g.delay)
	switch {
	case g.refused[group] != "":
		return nil, slack.SlackErrorResponse{Err: g.refused[group]}
	case g.down[group]:
		return nil, errors.New("dial tcp: connection refused")
	}
	return g.members[group], nil
}

// isDeployer asks the service's access rules, with groups as the
// directory, whether a Slack user deploys site.
func isDeployer(groups *UserGroups) func(context.Context, releases.Site, string) (bool, error) {
	a := &releases.Access{Directory: groups}
	return func(ctx context.Context, site releases.Site, user string) (bool, error) {
		return a.Holds(ctx, site, releases.Principal{Kind: releases.PrincipalSlack, ID: user}, releases.RoleDeployer)
	}
}

// One user group Slack will not list (a typo, a plan without user groups)
// does not lock out the members of the others; it is logged once per
// TTL. A group Slack cannot be reached for is an error only when no other
// group lets the user in.
func TestDeployersWithABadGroup(t *testing.T) {
	api := &groupsAPI{members: map[string][]string{"SGOOD": {"UBOB"}}, refused: map[string]string{"SBAD": "no_such_subteam"}, down: map[string]bool{"SDOWN": true}}
	var logs bytes.Buffer
	clock := testclock.New(testclock.At(9, 0))
	d := isDeployer(&UserGroups{API: api, Logger: slog.New(slog.NewTextHandler(&logs, nil)), Now: clock.Now})
	ctx := context.Background()
	site := releases.Site{Name: "www", Deployers: []string{"SBAD", "SDOWN", "SGOOD"}}
	for i := 0; i < 3; i++ {
		if ok, err := d(ctx, site, "UBOB"); !ok || err != nil {
			t.Fatalf("a member of the good group behind a bad one: %v %v", ok, err)
		}
	}
	if n := strings.Count(logs.String(), "SBAD"); n != 1 {
		t.Fatalf("the bad group was logged %d times in one TTL:\n%s", n, logs.String())
	}
	if ok, err := d(ctx, site, "UEVE"); ok || err == nil || !strings.Contains(err.Error(), "SDOWN") {
		t.Fatalf("a user in no group while one could not be asked: %v %v", ok, err)
	}
	onlyBad := releases.Site{Name: "www", Deployers: []string{"SBAD"}}
	if ok, err := d(ctx, onlyBad, "UEVE"); ok || err != nil {
		t.Fatalf("a group Slack refuses is an empty group, not an outage: %v %v", ok, err)
	}
	clock.Add(2 * time.Minute)
	if _, err := d(ctx, onlyBad, "UEVE"); err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(logs.String(), "SBAD"); n != 2 {
		t.Fatalf("after the TTL the bad group is logged again: %d times", n)
	}
}

// Lookups of a group that run at once share one call to Slack.
func TestDeployersCollapseConcurrentLookups(t *testing.T) {
	api := &groupsAPI{members: map[string][]string{"SGOOD": {"UBOB"}}, delay: 50 * time.Millisecond}
	d := isDeployer(&UserGroups{API: api})
	site := releases.Site{Name: "www", Deployers: []string{"SGOOD"}}
	var wg sync.WaitGroup
	for i := 0; i < 20; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			if ok, err := d(context.Background(), site, "UBOB"); !ok || err != nil {
				t.Errorf("%v %v", ok, err)
			}
		}()
	}
	wg.Wait()
	if n := api.calls.Load(); n != 1 {
		t.Fatalf("20 concurrent lookups made %d calls", n)
	}
}
