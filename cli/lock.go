package cli

import (
	"context"
	"fmt"
	"strings"
)

func runLock(ctx context.Context, env Env, args []string) error {
	call, err := siteCommand(ctx, env, "lock", "REASON...", args, nil)
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	reason := strings.TrimSpace(strings.Join(pos, " "))
	if reason == "" {
		return usagef("lock takes a REASON (say why, for whoever finds the site locked)")
	}
	l, err := b.LockSite(ctx, site, actor(env), reason)
	if err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "locked %s: %s; promotes and rollbacks are refused until `deploybot unlock --site %s`\n", l.Site, l.Reason, l.Site)
	return nil
}

func runUnlock(ctx context.Context, env Env, args []string) error {
	call, err := siteCommand(ctx, env, "unlock", "", args, nil)
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 0 {
		return usagef("unlock takes no arguments")
	}
	l, err := b.UnlockSite(ctx, site, actor(env))
	if err != nil {
		return err
	}
	if l == nil {
		fmt.Fprintf(env.Stdout, "%s was not locked\n", site)
		return nil
	}
	fmt.Fprintf(env.Stdout, "unlocked %s (locked by %s since %s: %s)\n", site, l.Holder, l.Since.UTC().Format("2006-01-02 15:04Z"), l.Reason)
	return nil
}
