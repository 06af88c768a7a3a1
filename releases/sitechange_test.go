package releases_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// A change to a site's AWS side is one record: ok with what changed,
// failed with the error and what changed before it, refused (the change
// not run) for a principal who is not a deployer; the verified principal
// is the actor and what the caller typed its label.
func TestChangeSiteIsOneRecord(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = &releases.Access{AWSDeploys: true}
	ctx := releases.WithDoor(context.Background(), releases.DoorCLI)
	ops := releases.WithPrincipal(ctx, releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:iam::1:user/ops", Label: "ops@laptop"})
	outsider := releases.WithPrincipal(ctx, releases.Principal{Kind: releases.PrincipalSlack, ID: "UEVE"})
	calls := 0
	change := func(summary string, err error) func(context.Context) (string, error) {
		return func(context.Context) (string, error) { calls++; return summary, err }
	}
	for _, c := range []struct {
		name   string
		ctx    context.Context
		req    releases.SiteChange
		change func(context.Context) (string, error)
		calls  int
		want   releases.AuditEntry
	}{
		{"ok", ops, releases.SiteChange{Site: "www", Action: releases.ActionSetup, Actor: "ops"}, change("create bucket b", nil), 1,
			releases.AuditEntry{Actor: "arn:aws:iam::1:user/ops", Action: "setup", Result: "ok", Detail: "create bucket b", Door: "cli", Label: "ops@laptop"}},
		{"failed", ops, releases.SiteChange{Site: "www", Action: releases.ActionKVSSetup}, change("function www created", releases.Errorf(releases.EINVALID, "the distribution runs another function")), 1,
			releases.AuditEntry{Actor: "arn:aws:iam::1:user/ops", Action: "kvs-setup", Result: "failed", Detail: "the distribution runs another function (it got as far as: function www created)", Door: "cli", Label: "ops@laptop"}},
		{"failed, nothing said", ops, releases.SiteChange{Site: "www", Action: releases.ActionRoutingSetup}, change("", errors.New("AccessDenied")), 1,
			releases.AuditEntry{Actor: "arn:aws:iam::1:user/ops", Action: "routing-setup", Result: "failed", Detail: "AccessDenied", Door: "cli", Label: "ops@laptop"}},
		{"not a deployer", outsider, releases.SiteChange{Site: "www", Action: releases.ActionSetup}, change("create bucket b", nil), 0,
			releases.AuditEntry{Actor: "UEVE", Action: "setup", Result: "refused", Door: "cli"}},
		{"no such change", ops, releases.SiteChange{Site: "www", Action: "promote"}, change("", nil), 0,
			releases.AuditEntry{Actor: "arn:aws:iam::1:user/ops", Action: "promote", Result: "refused", Door: "cli", Label: "ops@laptop"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			calls = 0
			err := h.svc.ChangeSite(c.ctx, c.req, c.change)
			if (c.want.Result == "ok") != (err == nil) || calls != c.calls {
				t.Fatalf("err %v, change ran %d time(s), want %d", err, calls, c.calls)
			}
			e := lastAudit(t, h)
			if c.want.Result == "refused" {
				c.want.Detail = e.Detail
				if !strings.Contains(e.Detail, releases.ErrorMessage(err)) {
					t.Errorf("refused with detail %q, error %v", e.Detail, err)
				}
			}
			c.want.Time, c.want.Site = e.Time, "www"
			if e != c.want {
				t.Fatalf("record %+v\nwant   %+v", e, c.want)
			}
		})
	}
}
