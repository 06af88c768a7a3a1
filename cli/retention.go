package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

func runPrune(ctx context.Context, env Env, args []string) error {
	var dry, asJSON *bool
	call, err := siteCommand(ctx, env, "prune", "", args, func(fs *flagSetT) {
		dry = fs.Bool("dry-run", false, "list what would be deleted, delete nothing")
		asJSON = fs.Bool("json", false, "print the report as JSON")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 0 {
		return usagef("prune takes no arguments")
	}
	rep, err := b.Prune(ctx, releases.PruneRequest{Site: site, DryRun: *dry, Actor: actor(env)})
	if rep != nil {
		if *asJSON {
			if jerr := writeJSON(env.Stdout, rep); jerr != nil {
				return jerr
			}
		} else {
			fmt.Fprint(env.Stdout, PruneSummary(rep))
		}
	}
	return err
}

// PruneSummary renders a prune report for a terminal.
func PruneSummary(rep *releases.PruneReport) string {
	var b strings.Builder
	verb := "deleted"
	if rep.DryRun {
		verb = "would delete"
	}
	if rep.Skipped != "" {
		fmt.Fprintf(&b, "prune of %s skipped: %s\n", rep.Site, rep.Skipped)
		return b.String()
	}
	fmt.Fprintf(&b, "prune of %s: %s %d release(s), %d objects, %s (%.1fs)\n", rep.Site, verb, len(rep.Deleted), rep.Objects, present.HumanBytes(rep.Bytes), rep.Seconds)
	for _, d := range rep.Deleted {
		what := "release"
		if d.Abandoned {
			what = "abandoned upload"
		}
		line := fmt.Sprintf("  - %-24s %s, %d objects, %s", d.Version, what, d.Objects, present.HumanBytes(d.Bytes))
		if d.Error != "" {
			line += " FAILED: " + d.Error
		}
		fmt.Fprintln(&b, line)
	}
	for _, k := range rep.Kept {
		fmt.Fprintf(&b, "  = %-24s kept: %s\n", k.Version, k.Reason)
	}
	return b.String()
}

func runPin(ctx context.Context, env Env, args []string) error {
	var reason *string
	call, err := siteCommand(ctx, env, "pin", "VERSION", args, func(fs *flagSetT) {
		reason = fs.String("reason", "", "`TEXT` saying why the release is kept")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 1 {
		return usagef("pin takes one VERSION (got %d arguments)", len(pos))
	}
	if err := releases.ValidateVersion(pos[0]); err != nil {
		return err
	}
	p, err := b.PinRelease(ctx, site, pos[0], actor(env), *reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "pinned %s %s: retention never deletes it\n", p.Site, p.Version)
	return nil
}

func runUnpin(ctx context.Context, env Env, args []string) error {
	call, err := siteCommand(ctx, env, "unpin", "VERSION", args, nil)
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 1 {
		return usagef("unpin takes one VERSION (got %d arguments)", len(pos))
	}
	if err := releases.ValidateVersion(pos[0]); err != nil {
		return err
	}
	if err := b.UnpinRelease(ctx, site, pos[0], actor(env)); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "unpinned %s %s: retention applies to it again\n", site, pos[0])
	return nil
}
