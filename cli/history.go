package cli

import (
	"context"
	"fmt"
	"io"
	"text/tabwriter"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

// runHistory prints a site's audit log, newest first: every operation
// from every door (slack, cli, api, schedule, console), refusals included.
func runHistory(ctx context.Context, env Env, args []string) error {
	var asJSON *bool
	var limit *int
	call, err := siteCommand(ctx, env, "history", "", args, func(fs *flagSetT) {
		asJSON = fs.Bool("json", false, "print JSON: an array of {time, site, actor, action, result, detail, door}")
		limit = fs.Int("limit", 50, "at most `N` records (1 to 10000)")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 0 {
		return usagef("history takes no arguments")
	}
	if *limit < 1 || *limit > 10000 {
		return usagef("--limit must be 1 to 10000 (got %d)", *limit)
	}
	h, err := b.History(ctx, site, *limit)
	if err != nil {
		return err
	}
	if *asJSON {
		if h == nil {
			return writeJSON(env.Stdout, []any{})
		}
		return writeJSON(env.Stdout, h)
	}
	return printHistory(env.Stdout, site, h)
}

// printHistory is the audit log as a table.
func printHistory(w io.Writer, site string, h []releases.AuditEntry) error {
	if len(h) == 0 {
		fmt.Fprintf(w, "%s has no history yet\n", site)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "TIME (UTC)\tDOOR\tACTOR\tACTION\tRESULT\tDETAIL")
	for _, e := range h {
		door := e.Door
		if door == "" {
			door = "-"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format("2006-01-02 15:04:05"), door, e.Actor, e.Action, e.Result, present.Short(e.Detail, 120))
	}
	return tw.Flush()
}
