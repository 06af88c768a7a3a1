package cli

import (
	"context"
	"fmt"
	"strings"

	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

func runFreeze(ctx context.Context, env Env, args []string) error {
	call, err := siteCommandAll(ctx, env, "freeze", "DURATION|UNTIL REASON...", args, nil, true)
	if err != nil {
		return err
	}
	defer call.Close()
	if len(call.args) < 2 {
		return usagef("freeze takes how long (2h, 3d) or until when (2026-12-24, 2026-12-24T18:00Z), then a REASON")
	}
	fz, err := call.Freeze(ctx, releases.FreezeRequest{Site: call.site, All: call.site == server.AllSites, Until: call.args[0],
		Reason: strings.TrimSpace(strings.Join(call.args[1:], " ")), Actor: actor(env)})
	for _, f := range fz {
		fmt.Fprintf(env.Stdout, "froze %s until %s: %s; promotes are refused (rollbacks are not) until then or `deploybot unfreeze --site %s`\n",
			f.Site, f.Until.UTC().Format("2006-01-02 15:04Z"), f.Reason, f.Site)
	}
	return err
}

func runUnfreeze(ctx context.Context, env Env, args []string) error {
	call, err := siteCommandAll(ctx, env, "unfreeze", "", args, nil, true)
	if err != nil {
		return err
	}
	defer call.Close()
	if len(call.args) != 0 {
		return usagef("unfreeze takes no arguments")
	}
	lifted, err := call.Unfreeze(ctx, call.site, call.site == server.AllSites, actor(env))
	if err != nil {
		return err
	}
	if len(lifted) == 0 {
		fmt.Fprintln(env.Stdout, "no freeze to lift (freezes in the configuration stay until they end)")
	}
	for _, f := range lifted {
		fmt.Fprintf(env.Stdout, "unfroze %s (frozen by %s until %s: %s)\n", f.Site, f.By, f.Until.UTC().Format("2006-01-02 15:04Z"), f.Reason)
	}
	return nil
}
