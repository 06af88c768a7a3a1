package cli

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// approvalPoll is how often a waiting promote looks at its request and
// then at the deploy: a read of the store (or one API call) each time.
var approvalPoll = time.Second

// waitForApproval waits while a request is pending, says who approves as
// they do, and once it is approved follows the deploy the approval
// started (it runs in the approver's process) to its end. Interrupted, it
// leaves the request as it is.
func waitForApproval(ctx context.Context, env Env, b backend, a releases.ApprovalRequest) error {
	seen := 0
	tick := time.NewTicker(approvalPoll)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return releases.Errorf(releases.ECONFLICT, "stopped waiting; request %s is still %s (deploybot approve or reject --site %s %s)", a.ID, a.State, a.Site, a.ID)
		case <-tick.C:
		}
		now, err := b.Approval(ctx, a.Site, a.ID)
		if err != nil {
			if errors.Is(err, context.Canceled) {
				continue
			}
			return err
		}
		for _, v := range now.Approvals[min(seen, len(now.Approvals)):] {
			fmt.Fprintf(env.Stdout, "approved by %s (%d of %d)\n", v.By, seen+1, now.Required)
			seen++
		}
		switch now.State {
		case releases.ApprovalPending:
			continue
		case releases.ApprovalRejected:
			return releases.Errorf(releases.ECONFLICT, "request %s was rejected by %s%s; nothing changed", now.ID, now.DecidedBy, because(now.Why))
		case releases.ApprovalExpired:
			return releases.Errorf(releases.ECONFLICT, "request %s expired at %s: nobody approved in time; nothing changed", now.ID, now.Expires.UTC().Format("15:04Z"))
		}
		fmt.Fprintf(env.Stdout, "approved: deploy %s runs (started by %s's approval)\n", now.ID, now.DecidedBy)
		return followDeploy(ctx, env, b, now.Site, now.ID)
	}
}

func because(why string) string {
	if why == "" {
		return ""
	}
	return ": " + why
}

// followDeploy waits for deploy id of site to end and says how it ended.
func followDeploy(ctx context.Context, env Env, b backend, site, id string) error {
	tick := time.NewTicker(approvalPoll)
	defer tick.Stop()
	phase := releases.Phase("")
	for {
		st, err := b.Status(ctx, site)
		if err != nil && ctx.Err() == nil {
			return err
		}
		var d *releases.Deploy
		switch {
		case st == nil:
		case st.Deploy != nil && st.Deploy.ID == id:
			d = st.Deploy
		case st.LastDeploy != nil && st.LastDeploy.ID == id:
			d = st.LastDeploy
		}
		if d != nil && d.Phase != phase {
			phase = d.Phase
			switch {
			case d.Phase == releases.PhaseDone:
				fmt.Fprintf(env.Stdout, "%s is live on %s (deploy %s, approved by %s)\n", d.To, d.Site, d.ID, strings.Join(d.ApprovedBy, ", "))
				return nil
			case d.Phase.Final():
				return releases.Errorf(releases.EINTERNAL, "deploy %s ended %s: %s", d.ID, d.Phase, d.Error)
			default:
				fmt.Fprintf(env.Stdout, "  %s\n", d.Phase)
			}
		}
		select {
		case <-ctx.Done():
			return releases.Errorf(releases.ECONFLICT, "stopped following deploy %s; it runs on (deploybot status --site %s)", id, site)
		case <-tick.C:
		}
	}
}

func runApprove(ctx context.Context, env Env, args []string) error {
	call, err := siteCommand(ctx, env, "approve", "REQUEST_ID", args, nil)
	if err != nil {
		return err
	}
	defer call.Close()
	if len(call.args) != 1 {
		return usagef("approve takes the REQUEST_ID a waiting promote printed (got %d arguments)", len(call.args))
	}
	out, err := call.Approve(ctx, call.site, call.args[0], actor(env), printer(env.Stdout))
	if err == nil && out.Approval != nil {
		a := out.Approval
		fmt.Fprintf(env.Stdout, "approved %s (%d of %d); it waits for %d more\n", a.ID, len(a.Approvals), a.Required, a.Required-len(a.Approvals))
		return nil
	}
	return outcome(env, call.site, out, err)
}

func runReject(ctx context.Context, env Env, args []string) error {
	var reason *string
	call, err := siteCommand(ctx, env, "reject", "REQUEST_ID", args, func(fs *flagSetT) {
		reason = fs.String("reason", "", "`TEXT` saying why, for whoever asked")
	})
	if err != nil {
		return err
	}
	defer call.Close()
	if len(call.args) != 1 {
		return usagef("reject takes the REQUEST_ID a waiting promote printed (got %d arguments)", len(call.args))
	}
	a, err := call.Reject(ctx, call.site, call.args[0], actor(env), *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "rejected %s: the promote of %s on %s by %s will not run\n", a.ID, a.Version, a.Site, a.Actor)
	return nil
}
