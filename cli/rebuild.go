package cli

import (
	"context"
	"fmt"
	"io"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// A store that is empty (a lost volume, a new machine, a second cluster)
// is rebuilt from the sites' buckets and distributions before anything
// reads it, by serve and by every command that opens it: what was
// recorded comes back, see releases.Rebuild.

// rebuildIfEmpty rebuilds every site into an empty store and says so on
// w. A site that cannot be rebuilt now (AWS unreachable) is said and left:
// the command goes on, and the next one tries again.
func rebuildIfEmpty(ctx context.Context, svc *releases.Service, w io.Writer) error {
	empty, err := svc.Store.Empty(ctx)
	if err != nil || !empty {
		return err
	}
	for _, site := range svc.Sites {
		rep, err := svc.RebuildLost(ctx, site.Name)
		if cloud.NoSuchBucket(err) {
			// Not created yet (setup --apply creates it): nothing to
			// rebuild, nothing to say.
			continue
		}
		if err != nil {
			fmt.Fprintf(w, "deploybot: the store is empty and %s could not be rebuilt from its bucket now: %s\n", site.Name, releases.ErrorMessage(err))
			continue
		}
		if rep.Releases+rep.Deploys+rep.Audit > 0 {
			fmt.Fprintf(w, "deploybot: the store was empty; rebuilt %s\n", rebuiltText(rep))
		}
	}
	return nil
}

func rebuiltText(rep *releases.RebuildReport) string {
	s := fmt.Sprintf("%s from its bucket: %d release(s), %d deploy(s), %d audit entries, %d pin(s)", rep.Site, rep.Releases, rep.Deploys, rep.Audit, rep.Pins)
	if rep.Lock != nil {
		s += fmt.Sprintf(", locked by %s", rep.Lock.Holder)
	}
	if rep.Freeze != nil {
		s += fmt.Sprintf(", frozen by %s until %s", rep.Freeze.By, rep.Freeze.Until.UTC().Format("2006-01-02 15:04Z"))
	}
	if rep.Live != "" {
		s += ", live " + rep.Live
	}
	// What was left out is said, each with why: the bucket is outside
	// input, and one bad object never stops the rest.
	for _, sk := range rep.Skipped {
		s += fmt.Sprintf("\n  skipped %s: %s", sk.Key, sk.Why)
	}
	return s
}

// pushHistory writes what this command recorded to the bucket before it
// exits, bounded; what does not make it is said, and stays pending for
// the next command or serve.
func pushHistory(svc *releases.Service, w io.Writer) {
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	if _, err := svc.PushHistory(ctx); err != nil {
		n, _ := svc.HistoryPending(context.Background())
		fmt.Fprintf(w, "deploybot: %d history record(s) are not yet in the bucket (%s); the next command or serve writes them\n", n, releases.ErrorMessage(err))
	}
}

func runRebuild(ctx context.Context, env Env, args []string) error {
	var asJSON *bool
	call, err := siteCommandAll(ctx, env, "rebuild", "", args, func(fs *flagSetT) {
		asJSON = fs.Bool("json", false, "print what was found as JSON")
	}, true)
	if err != nil {
		return err
	}
	defer call.Close()
	if len(call.args) != 0 {
		return usagef("rebuild takes no arguments")
	}
	lb, ok := call.backend.(localBackend)
	if !ok {
		return usagef("rebuild works on the store file; stop serve, or run it where the store is, without --server")
	}
	var sites []string
	if call.site == "all" {
		for _, s := range lb.Sites {
			sites = append(sites, s.Name)
		}
	} else {
		sites = []string{call.site}
	}
	var reps []*releases.RebuildReport
	for _, s := range sites {
		rep, err := lb.Rebuild(ctx, s)
		if err != nil {
			return err
		}
		reps = append(reps, rep)
	}
	if *asJSON {
		return writeJSON(env.Stdout, reps)
	}
	for _, rep := range reps {
		fmt.Fprintf(env.Stdout, "rebuilt %s (%.1fs)\n", rebuiltText(rep), rep.Seconds)
	}
	return nil
}
