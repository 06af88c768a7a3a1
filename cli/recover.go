package cli

import (
	"context"
	"fmt"

	"github.com/deploybot/deploybot/internal/present"
)

// runRecover is `deploybot recover --site S`: finish, from what AWS serves,
// a deploy whose process is gone (killed, the machine rebooted, Ctrl-C),
// which `deploybot serve` would otherwise finish when it starts. People who
// deploy from the command line alone have no serve to do it. A deploy that
// is still running elsewhere is refused, not touched.
func runRecover(ctx context.Context, env Env, args []string) error {
	cfg, s, err := localSite(env, "recover", args, nil)
	if err != nil {
		return err
	}
	a, err := newApp(ctx, env, cfg, true)
	if err != nil {
		return err
	}
	defer a.Close()
	done, err := a.svc.RecoverSite(ctx, s.Name, printer(env.Stdout))
	if err != nil {
		return err
	}
	if len(done) == 0 {
		fmt.Fprintf(env.Stdout, "nothing to recover: no deploy of %s was left unfinished\n", s.Name)
		return nil
	}
	for _, d := range done {
		fmt.Fprintf(env.Stdout, "deploy %s (%s %s -> %s by %s) recovered: %s\n", d.ID, d.Kind, present.OrNone(d.From), d.To, d.Actor, d.Phase)
	}
	return nil
}
