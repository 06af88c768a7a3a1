package cli

import (
	"context"
	"fmt"
	"io"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

func runVersions(ctx context.Context, env Env, args []string) error {
	var asJSON, sync *bool
	call, err := siteCommand(ctx, env, "versions", "", args, func(fs *flagSetT) {
		asJSON = fs.Bool("json", false, "print JSON")
		sync = fs.Bool("sync", false, "list the bucket for releases first (without it: serve's reconcile and CI notices keep the list; the command line alone lists the bucket at most once per reconcile.interval)")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 0 {
		return usagef("versions takes no arguments")
	}
	switch lb, local := b.(localBackend); {
	case *sync:
		_, err = b.Sync(ctx, site)
	case local:
		_, err = lb.SyncIfStale(ctx, site, lb.app.cfg.Reconcile.Interval.Duration)
	}
	if err != nil {
		return err
	}
	vs, err := b.Versions(ctx, site)
	if err != nil {
		return err
	}
	if *asJSON {
		if vs == nil {
			vs = []releases.VersionInfo{}
		}
		return writeJSON(env.Stdout, vs)
	}
	return printVersions(env.Stdout, site, vs)
}

// printVersions is versions' table, then the pins with who and why.
func printVersions(w io.Writer, site string, vs []releases.VersionInfo) error {
	if len(vs) == 0 {
		fmt.Fprintf(w, "site %s has no releases yet (publish one with deploybot publish)\n", site)
		return nil
	}
	tw := tabwriter.NewWriter(w, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "VERSION\tSTATE\tPUBLISHED\tFILES\tSIZE\tCOMMIT\tMESSAGE")
	var pinned []releases.VersionInfo
	for _, v := range vs {
		var state []string
		switch {
		case v.Live:
			state = append(state, "live")
		case v.Pruned:
			state = append(state, "pruned")
		}
		if v.Pin != nil {
			state = append(state, "pinned")
			pinned = append(pinned, v)
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%d\t%s\t%s\t%s\n", v.Version, strings.Join(state, ","), v.PublishedAt.UTC().Format("2006-01-02 15:04Z"),
			v.Files, present.HumanBytes(v.Bytes), present.Short(v.Commit, 12), present.Short(v.Message, 50))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range pinned {
		fmt.Fprintf(w, "%s pinned by %s since %s: %s\n", v.Version, v.Pin.By, v.Pin.At.UTC().Format("2006-01-02 15:04Z"), present.Short(reasonOr(v.Pin.Reason), 200))
	}
	return nil
}

func reasonOr(r string) string {
	if r == "" {
		return "(no reason given)"
	}
	return r
}

func runStatus(ctx context.Context, env Env, args []string) error {
	var asJSON *bool
	call, err := siteCommand(ctx, env, "status", "", args, func(fs *flagSetT) {
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 0 {
		return usagef("status takes no arguments")
	}
	st, err := b.Status(ctx, site)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, st)
	}
	printStatus(env.Stdout, st)
	return nil
}

// printStatus is status for people: what is live and served, the deploy
// running, the lock, the last deploy.
func printStatus(w io.Writer, st *releases.Status) {
	fmt.Fprintf(w, "site:        %s\n", st.Site)
	switch {
	case st.Live != nil && st.LiveSince != nil:
		fmt.Fprintf(w, "live:        %s (since %s)\n", *st.Live, st.LiveSince.UTC().Format(time.RFC3339))
	case st.Live != nil:
		fmt.Fprintf(w, "live:        %s\n", *st.Live)
	default:
		fmt.Fprintf(w, "live:        none (%s is not a release of this site)\n", present.ServedFrom(st))
	}
	fmt.Fprintf(w, "served from: %s\n", present.ServedFrom(st))
	if st.Drift {
		fmt.Fprintf(w, "warning:     the store says %q is live, the distribution serves %q (changed outside deploybot?)\n", st.Recorded, st.OriginPath)
	}
	if d := st.Deploy; d != nil {
		fmt.Fprintf(w, "deploy:      %s %s %s -> %s by %s, phase %s since %s\n", d.ID, d.Kind, present.OrNone(d.From), d.To, d.Actor, d.Phase, d.StartedAt.UTC().Format(time.RFC3339))
		if st.RunnerGone {
			fmt.Fprintf(w, "             its process is gone, so it will not finish by itself: run deploybot recover --site %s\n", st.Site)
		}
	} else {
		fmt.Fprintf(w, "deploy:      none running\n")
	}
	if l := st.Lock; l != nil {
		fmt.Fprintf(w, "lock:        held by %s since %s: %s\n", l.Holder, l.Since.UTC().Format(time.RFC3339), l.Reason)
	} else {
		fmt.Fprintf(w, "lock:        free\n")
	}
	if f := st.Freeze; f != nil {
		fmt.Fprintf(w, "freeze:      %s (rollbacks are allowed)\n", present.FreezeText(f))
	}
	if win := st.Window; win != nil {
		fmt.Fprintf(w, "window:      %s\n", present.WindowText(win))
	}
	if d := st.LastDeploy; d != nil && d.Phase.Final() {
		fmt.Fprintf(w, "last deploy: %s %s %s -> %s by %s: %s", d.ID, d.Kind, present.OrNone(d.From), d.To, d.Actor, d.Phase)
		if d.Error != "" {
			fmt.Fprintf(w, " (%s)", d.Error)
		}
		fmt.Fprintln(w)
	}
}

func runVerify(ctx context.Context, env Env, args []string) error {
	call, err := bucketCommand(ctx, env, "verify", "VERSION", 1, args)
	if err != nil {
		return err
	}
	svc, s, pos, asJSON := call.Inspect, call.site, call.args, call.json
	rep, err := svc.Verify(ctx, s, pos[0])
	if err != nil {
		return err
	}
	if asJSON {
		if err := writeJSON(env.Stdout, rep); err != nil {
			return err
		}
	} else {
		fmt.Fprintf(env.Stdout, "%s %s: %s\n", s.Name, pos[0], rep.Summary())
		for _, m := range rep.Missing {
			fmt.Fprintf(env.Stdout, "  missing: %s\n", m)
		}
		for _, w := range rep.Wrong {
			fmt.Fprintf(env.Stdout, "  wrong size: %s (%d bytes, manifest says %d)\n", w.Path, w.Have, w.Want)
		}
	}
	if !rep.OK() {
		return releases.Errorf(releases.ECONFLICT, "%s %s: %s", s.Name, pos[0], rep.Summary())
	}
	return nil
}

func runDiff(ctx context.Context, env Env, args []string) error {
	call, err := bucketCommand(ctx, env, "diff", "A B", 2, args)
	if err != nil {
		return err
	}
	svc, s, pos, asJSON := call.Inspect, call.site, call.args, call.json
	d, err := svc.Diff(ctx, s, pos[0], pos[1])
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(env.Stdout, d)
	}
	fmt.Fprintln(env.Stdout, present.DiffSummary(d))
	for _, f := range d.Added {
		fmt.Fprintf(env.Stdout, "  + %s (%s)\n", f.Path, present.HumanBytes(f.Size))
	}
	for _, f := range d.Removed {
		fmt.Fprintf(env.Stdout, "  - %s (%s)\n", f.Path, present.HumanBytes(f.Size))
	}
	for _, f := range d.Changed {
		fmt.Fprintf(env.Stdout, "  ~ %s (%s → %s)\n", f.Path, present.HumanBytes(f.OldSize), present.HumanBytes(f.Size))
	}
	return nil
}

func runPreview(ctx context.Context, env Env, args []string) error {
	var ttl *time.Duration
	var asJSON *bool
	call, err := siteCommand(ctx, env, "preview", "VERSION", args, func(fs *flagSetT) {
		ttl = fs.Duration("ttl", releases.DefaultPreviewTTL, "`DURATION` the link works (at most 24h)")
		asJSON = fs.Bool("json", false, "print the link as JSON")
	})
	if err != nil {
		return err
	}
	b, site, pos := call.backend, call.site, call.args
	defer b.Close()
	if len(pos) != 1 {
		return usagef("preview takes one VERSION (got %d arguments)", len(pos))
	}
	if err := releases.ValidateVersion(pos[0]); err != nil {
		return err
	}
	p, err := b.Preview(ctx, site, pos[0], actor(env), *ttl)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, p)
	}
	fmt.Fprintln(env.Stdout, p.String())
	return nil
}
