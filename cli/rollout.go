package cli

import (
	"context"
	"fmt"

	"github.com/deploybot/deploybot/releases"
)

// runRollout is deploybot rollout ACTION: pause, resume, advance or abort
// the site's running gradual promote, from anywhere (the control is in
// the shared state the runner reads).
func runRollout(ctx context.Context, env Env, args []string) error {
	var reason *string
	call, err := siteCommand(ctx, env, "rollout", "pause|resume|advance|abort", args, func(fs *flagSetT) {
		reason = fs.String("reason", "", "`TEXT` saying why (recorded; an abort's is the site's lock reason)")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 1 {
		return usagef("rollout takes one action: pause, resume, advance or abort")
	}
	switch pos[0] {
	case releases.RolloutPause, releases.RolloutResume, releases.RolloutAdvance, releases.RolloutAbortIt:
	default:
		return usagef("rollout takes pause, resume, advance or abort, not %q", pos[0])
	}
	d, err := b.ControlRollout(ctx, releases.RolloutRequest{Site: site, Action: pos[0], Actor: actor(env), Reason: *reason})
	if err != nil {
		return err
	}
	if d.ID == "" {
		fmt.Fprintf(env.Stdout, "%s: no rollout runs; cleared the share of visitors a rollout of %s had left: everyone gets the live release\n", site, d.To)
		return nil
	}
	fmt.Fprintf(env.Stdout, "%s: rollout of %s (deploy %s) at %d%%: %s\n", site, d.To, d.ID, d.Rollout.Percent, rolloutDone(pos[0]))
	return nil
}

func rolloutDone(action string) string {
	switch action {
	case releases.RolloutPause:
		return "paused; its step holds until resumed"
	case releases.RolloutResume:
		return "resumed"
	case releases.RolloutAdvance:
		return "advancing to its next step"
	}
	return "aborted: every visitor is back on the live release, and the site stays locked"
}
