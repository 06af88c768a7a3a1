package cli

import (
	"context"
	"fmt"
	"io"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

// printer renders deploy events as lines on stdout.
func printer(w io.Writer) releases.Progress {
	return func(e releases.Event) {
		d := e.Deploy
		switch e.Type {
		case releases.EventDeployStarted:
			fmt.Fprintf(w, "deploy %s: %s %s %s -> %s by %s", d.ID, d.Kind, d.Site, present.OrNone(d.From), d.To, d.Actor)
			if d.Reason != "" {
				fmt.Fprintf(w, " (%s)", d.Reason)
			}
			fmt.Fprintln(w)
		case releases.EventPhaseStarted:
			fmt.Fprintf(w, "  %-16s %s ...\n", e.Phase, e.Title)
		case releases.EventPhaseFinished:
			line := fmt.Sprintf("  %-16s done in %.1fs", e.Phase, e.Elapsed.Seconds())
			if v := present.VisibleText(d); e.Phase == releases.PhaseVisible && v != "" {
				line += ": " + v
			}
			fmt.Fprintln(w, line)
		case releases.EventPhaseFailed:
			fmt.Fprintf(w, "  %-16s FAILED after %.1fs: %s\n", e.Phase, e.Elapsed.Seconds(), errorText(e.Err))
		case releases.EventPhaseNote:
			fmt.Fprintf(w, "  %-16s %s\n", e.Phase, e.Title)
		case releases.EventDeployFinished:
			fmt.Fprintf(w, "%s is live on %s (deploy %s, %.1fs)\n", d.To, d.Site, d.ID, e.Elapsed.Seconds())
		case releases.EventDeployFailed:
			fmt.Fprintf(w, "deploy %s failed\n", d.ID)
		case releases.EventDeployInterrupted:
			fmt.Fprintf(w, "deploy %s interrupted in phase %s; deploybot recover --site %s, or the next start of deploybot serve, finishes it\n", d.ID, d.Phase, d.Site)
		case releases.EventDeployResumed:
			fmt.Fprintf(w, "resuming deploy %s from phase %s\n", d.ID, d.Phase)
		}
	}
}

func runPromote(ctx context.Context, env Env, args []string) error {
	var reason, override *string
	var noVerify, noWait, back, gradual *bool
	call, err := siteCommand(ctx, env, "promote", "VERSION", args, func(fs *flagSetT) {
		reason = fs.String("reason", "", "`TEXT` saying why, recorded with the deploy (at most 500 characters)")
		noVerify = fs.Bool("no-verify", false, "skip checking that every file of the release is in the bucket")
		override = fs.String("override-freeze", "", "`REASON` to promote anyway in a freeze or outside the deploy windows (recorded)")
		noWait = fs.Bool("no-wait", false, "on a site that needs approval, print the request's id and return instead of waiting")
		back = fs.Bool("rollback", false, "promote a release older than the live one (refused without it); still a promote, with its approval and freeze rules")
		gradual = fs.Bool("gradual", false, "roll the release out: the share of visitors in sites[].rollout first, each step health-checked and held, then everyone (strategy kvs)")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 1 {
		return usagef("promote takes one VERSION (got %d arguments)", len(pos))
	}
	if err := releases.ValidateVersion(pos[0]); err != nil {
		return err
	}
	out, err := b.Promote(ctx, releases.PromoteRequest{Site: site, Version: pos[0], Actor: actor(env), Reason: *reason, NoVerify: *noVerify, Override: *override, Back: *back, Gradual: *gradual}, printer(env.Stdout))
	if err == nil && out.Approval != nil {
		a := *out.Approval
		fmt.Fprintf(env.Stdout, "the promote of %s on %s waits for %d approval(s) by an approver other than you, until %s: request %s\n"+
			"  approve: deploybot approve --site %s %s   (or the Approve button in Slack)\n  reject:  deploybot reject --site %s %s\n",
			a.Version, a.Site, a.Required, a.Expires.UTC().Format("2006-01-02 15:04Z"), a.ID, a.Site, a.ID, a.Site, a.ID)
		if *noWait {
			return nil
		}
		return waitForApproval(ctx, env, b, a)
	}
	return outcome(env, site, out, err)
}

func outcome(env Env, site string, out *releases.Outcome, err error) error {
	if err != nil {
		return err
	}
	if out.AlreadyLive {
		fmt.Fprintf(env.Stdout, "%s is already live on %s; nothing to do\n", out.Version, site)
	}
	return nil
}

func runRollback(ctx context.Context, env Env, args []string) error {
	var reason *string
	call, err := siteCommand(ctx, env, "rollback", "[VERSION]", args, func(fs *flagSetT) {
		reason = fs.String("reason", "", "`TEXT` saying why, recorded with the deploy (at most 500 characters)")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) > 1 {
		return usagef("rollback takes at most one VERSION (got %d arguments)", len(pos))
	}
	req := releases.RollbackRequest{Site: site, Actor: actor(env), Reason: *reason}
	if len(pos) == 1 {
		if err := releases.ValidateVersion(pos[0]); err != nil {
			return err
		}
		req.Version = pos[0]
	}
	out, err := b.Rollback(ctx, req, printer(env.Stdout))
	return outcome(env, site, out, err)
}
