package cli

import (
	"context"
	"encoding/json"
	"fmt"
	"io"
	"os"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/hook"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

func runPublish(ctx context.Context, env Env, args []string) error {
	fs, cfgPath := flagSet(env, "publish", "DIR")
	site := fs.String("site", "", "the `SITE` to publish to (may be left out when only one is configured)")
	version := fs.String("version", "", "release `VERSION` (letters, digits, . _ -)")
	commit := fs.String("commit", "", "the commit `SHA` the release was built from")
	message := fs.String("message", "", "release `MESSAGE` (shown in Slack and versions)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	conc := fs.Int("concurrency", 16, "`N` uploads and copies in flight")
	dry := fs.Bool("dry-run", false, "show what each file would get (action, cache rule, headers), what is left out and why, and send nothing")
	var excludes multiFlag
	fs.Var(&excludes, "exclude", "`PATTERN` of paths to leave out (a name at any depth, or a path with /; a trailing / for folders); repeatable, added to the site's exclude")
	hidden := fs.Bool("include-hidden", false, "publish .git/, .DS_Store and .env* too (left out by default)")
	external := fs.Bool("follow-external-links", false, "publish what symbolic links that leave DIR point at (refused by default)")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 1 {
		return usagef("publish takes one directory (got %d arguments)", len(pos))
	}
	if *version == "" {
		return usagef("--version is required")
	}
	if err := releases.ValidateVersion(*version); err != nil {
		return err
	}
	if env.Getenv("GOGC") == "" {
		// Every upload leaves some 50 KiB of garbage (net/http's buffers
		// per connection, the SDK's request), while what publish keeps is
		// small (the file list, one buffer per worker). At the default 100
		// the collector ran dozens of times per 2,000 files; at 200 it runs
		// half as often, for 7-10% less CPU in the publish benchmark and a
		// few MiB more peak memory. GOGC in the environment still wins.
		defer debug.SetGCPercent(debug.SetGCPercent(200))
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return err
	}
	s, err := siteOf(cfg, *site)
	if err != nil {
		return err
	}
	sc, _ := cfg.Site(s.Name)
	var rules []publish.Rule
	for _, r := range sc.CacheRules {
		rules = append(rules, publish.Rule{Match: r.Match, CacheControl: r.CacheControl, ContentType: r.ContentType, ContentEncoding: r.ContentEncoding})
	}
	// publish runs on CI machines: it talks to S3 only, never the store.
	a, err := newApp(ctx, env, cfg, false)
	if err != nil {
		return err
	}
	p := &publish.Publisher{Bucket: a.bucket}
	inputs := publish.Inputs{Exclude: append(slices.Clone(sc.Exclude), excludes...), IncludeHidden: *hidden, FollowExternalLinks: *external}
	res, err := p.Publish(ctx, publish.Request{Site: s, Version: *version, Commit: *commit, Message: *message, Dir: pos[0],
		Concurrency: *conc, Rules: rules, SkewReleases: *sc.SkewProtection, DryRun: *dry, Inputs: inputs})
	if err != nil {
		return err
	}
	if !*asJSON {
		for _, x := range res.Excluded {
			fmt.Fprintf(env.Stdout, "left out: %s: %s\n", x.Path, x.Reason)
		}
	}
	if *dry {
		if *asJSON {
			return writeJSON(env.Stdout, res)
		}
		tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
		fmt.Fprintln(tw, "PATH\tACTION\tSIZE\tRULE\tCACHE-CONTROL\tCONTENT-TYPE\tENCODING")
		for _, f := range res.Plan {
			action := f.Action
			if f.From != "" {
				action += " from " + f.From
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Path, action, bot.HumanBytes(f.Size), f.Rule, f.CacheControl, f.ContentType, f.ContentEncoding)
		}
		if err := tw.Flush(); err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "dry run: %d files (%d to upload, %s; %d to copy; %d carried); nothing was sent\n",
			res.Files, res.Uploaded, bot.HumanBytes(res.BytesUploaded), res.Copied, res.Carried)
		return nil
	}
	// The notice is a courtesy: serve's reconcile finds the manifest anyway,
	// so a failed notice is reported but does not fail the publish.
	out := struct {
		*publish.Result
		Notified    bool   `json:"notified"`
		NotifyError string `json:"notify_error,omitempty"`
	}{Result: res}
	if cfg.Hook.URL != "" {
		sender := &hook.Sender{URL: cfg.Hook.URL, Secret: []byte(cfg.Hook.Secret)}
		if err := sender.Send(ctx, hook.Notice{Site: s.Name, Version: res.Version, Commit: *commit, Message: *message}); err != nil {
			out.NotifyError = err.Error()
			fmt.Fprintf(env.Stderr, "deploybot: warning: the release is published, but notifying %s failed (deploybot's reconcile will find it): %v\n", cfg.Hook.URL, err)
		} else {
			out.Notified = true
		}
	}
	if *asJSON {
		return writeJSON(env.Stdout, out)
	}
	fmt.Fprintf(env.Stdout, "published %s %s: %d files, %s in %.1fs (%d uploaded, %s sent; %d copied; %d carried) (s3://%s/%s)\n",
		s.Name, res.Version, res.Files, bot.HumanBytes(res.Bytes), res.Seconds, res.Uploaded, bot.HumanBytes(res.BytesUploaded),
		res.Copied, res.Carried, s.Bucket, s.ReleasePath(res.Version))
	return nil
}

// backend is where a site command runs: in this process on the store
// file, or in a running serve through its API (--server). The service and
// the API client have the same methods, so each is one with Close.
type backend interface {
	Versions(ctx context.Context, site string) ([]releases.VersionInfo, error)
	Status(ctx context.Context, site string) (*releases.Status, error)
	Promote(ctx context.Context, req releases.PromoteRequest, p releases.Progress) (*releases.Outcome, error)
	Rollback(ctx context.Context, req releases.RollbackRequest, p releases.Progress) (*releases.Outcome, error)
	Prune(ctx context.Context, req releases.PruneRequest) (*releases.PruneReport, error)
	PinRelease(ctx context.Context, site, version, actor, reason string) (*releases.Pin, error)
	UnpinRelease(ctx context.Context, site, version, actor string) error
	History(ctx context.Context, site string, limit int) ([]releases.AuditEntry, error)
	LockSite(ctx context.Context, site, actor, reason string) (*releases.Lock, error)
	UnlockSite(ctx context.Context, site, actor string) (*releases.Lock, error)
	Preview(ctx context.Context, site, version, actor string, ttl time.Duration) (*releases.Preview, error)
	Close() error
}

type localBackend struct {
	*releases.Service
	app *app
}

func (l localBackend) Close() error { return l.app.Close() }

type remoteBackend struct{ *server.Client }

func (remoteBackend) Close() error { return nil }

var (
	_ backend = localBackend{}
	_ backend = remoteBackend{}
)

// siteCommand parses the flags every site command shares and picks the
// backend: the server named by --server or $DEPLOYBOT_SERVER, else the
// store file of the configuration.
func siteCommand(ctx context.Context, env Env, name, posUsage string, args []string, extra func(fs *flagSetT)) (backend, string, []string, error) {
	fs, cfgPath := flagSet(env, name, posUsage)
	site := fs.String("site", "", "the `SITE` to act on (may be left out when only one is configured)")
	serverURL := fs.String("server", env.Getenv("DEPLOYBOT_SERVER"), "`URL` of a running deploybot serve to go through (token: $DEPLOYBOT_API_TOKEN or http.api_token)")
	if extra != nil {
		extra(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return nil, "", nil, err
	}
	if *serverURL != "" {
		return remoteCommand(ctx, env, *cfgPath, *serverURL, *site, pos)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return nil, "", nil, err
	}
	s, err := siteOf(cfg, *site)
	if err != nil {
		return nil, "", nil, err
	}
	a, err := newApp(ctx, env, cfg, true)
	if err != nil {
		return nil, "", nil, err
	}
	return localBackend{Service: a.svc, app: a}, s.Name, pos, nil
}

// remoteCommand sets up a --server command. The configuration file is
// optional there (the CLI may run where only the server's URL is known);
// when present it supplies the token and the default site.
func remoteCommand(ctx context.Context, env Env, cfgPath, url, site string, pos []string) (backend, string, []string, error) {
	token := env.Getenv("DEPLOYBOT_API_TOKEN")
	var cfg *config.Config
	if _, err := os.Stat(cfgPath); err == nil {
		if cfg, err = loadConfig(cfgPath); err != nil {
			return nil, "", nil, err
		}
		if token == "" {
			token = cfg.HTTP.APIToken
		}
	}
	if token == "" {
		return nil, "", nil, usagef("--server needs an API token: set DEPLOYBOT_API_TOKEN (or http.api_token in the configuration)")
	}
	c := &server.Client{URL: url, Token: token}
	if site == "" {
		if cfg != nil && len(cfg.Sites) == 1 {
			site = cfg.Sites[0].Name
		} else {
			names, err := c.Sites(ctx)
			if err != nil {
				return nil, "", nil, err
			}
			if len(names) != 1 {
				return nil, "", nil, usagef("--site is required (the server has: %s)", strings.Join(names, ", "))
			}
			site = names[0]
		}
	}
	return remoteBackend{c}, site, pos, nil
}

func runVersions(ctx context.Context, env Env, args []string) error {
	var asJSON *bool
	b, site, pos, err := siteCommand(ctx, env, "versions", "", args, func(fs *flagSetT) {
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
	defer b.Close()
	if len(pos) != 0 {
		return usagef("versions takes no arguments")
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
	if len(vs) == 0 {
		fmt.Fprintf(env.Stdout, "site %s has no releases yet (publish one with deploybot publish)\n", site)
		return nil
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
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
			v.Files, bot.HumanBytes(v.Bytes), bot.Short(v.Commit, 12), bot.Short(v.Message, 50))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, v := range pinned {
		fmt.Fprintf(env.Stdout, "%s pinned by %s since %s: %s\n", v.Version, v.Pin.By, v.Pin.At.UTC().Format("2006-01-02 15:04Z"), bot.Short(reasonOr(v.Pin.Reason), 200))
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
	b, site, pos, err := siteCommand(ctx, env, "status", "", args, func(fs *flagSetT) {
		asJSON = fs.Bool("json", false, "print JSON")
	})
	if err != nil {
		return err
	}
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
	w := env.Stdout
	fmt.Fprintf(w, "site:        %s\n", st.Site)
	switch {
	case st.Live != nil && st.LiveSince != nil:
		fmt.Fprintf(w, "live:        %s (since %s)\n", *st.Live, st.LiveSince.UTC().Format(time.RFC3339))
	case st.Live != nil:
		fmt.Fprintf(w, "live:        %s\n", *st.Live)
	default:
		fmt.Fprintf(w, "live:        none (%s is not a release of this site)\n", bot.ServedFrom(st))
	}
	fmt.Fprintf(w, "served from: %s\n", bot.ServedFrom(st))
	if st.Drift {
		fmt.Fprintf(w, "warning:     the store says %q is live, the distribution serves %q (changed outside deploybot?)\n", st.Recorded, st.OriginPath)
	}
	if d := st.Deploy; d != nil {
		fmt.Fprintf(w, "deploy:      %s %s %s -> %s by %s, phase %s since %s\n", d.ID, d.Kind, bot.OrNone(d.From), d.To, d.Actor, d.Phase, d.StartedAt.UTC().Format(time.RFC3339))
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
	if d := st.LastDeploy; d != nil && d.Phase.Final() {
		fmt.Fprintf(w, "last deploy: %s %s %s -> %s by %s: %s", d.ID, d.Kind, bot.OrNone(d.From), d.To, d.Actor, d.Phase)
		if d.Error != "" {
			fmt.Fprintf(w, " (%s)", d.Error)
		}
		fmt.Fprintln(w)
	}
	return nil
}

// printer renders deploy events as lines on stdout.
func printer(w io.Writer) releases.Progress {
	var start time.Time
	return func(e releases.Event) {
		d := e.Deploy
		switch e.Type {
		case releases.EventDeployStarted:
			start = d.StartedAt
			fmt.Fprintf(w, "deploy %s: %s %s %s -> %s by %s", d.ID, d.Kind, d.Site, bot.OrNone(d.From), d.To, d.Actor)
			if d.Reason != "" {
				fmt.Fprintf(w, " (%s)", d.Reason)
			}
			fmt.Fprintln(w)
		case releases.EventPhaseStarted:
			fmt.Fprintf(w, "  %-16s %s ...\n", e.Phase, e.Title)
		case releases.EventPhaseFinished:
			fmt.Fprintf(w, "  %-16s done in %.1fs\n", e.Phase, e.Elapsed.Seconds())
		case releases.EventPhaseFailed:
			fmt.Fprintf(w, "  %-16s FAILED after %.1fs: %s\n", e.Phase, e.Elapsed.Seconds(), releases.ErrorMessage(e.Err))
		case releases.EventPhaseNote:
			fmt.Fprintf(w, "  %-16s %s\n", e.Phase, e.Title)
		case releases.EventDeployFinished:
			fmt.Fprintf(w, "%s is live on %s (deploy %s, %.1fs)\n", d.To, d.Site, d.ID, d.FinishedAt.Sub(start).Seconds())
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
	var reason *string
	var noVerify *bool
	b, site, pos, err := siteCommand(ctx, env, "promote", "VERSION", args, func(fs *flagSetT) {
		reason = fs.String("reason", "", "`TEXT` saying why, recorded with the deploy")
		noVerify = fs.Bool("no-verify", false, "skip checking that every file of the release is in the bucket")
	})
	if err != nil {
		return err
	}
	defer b.Close()
	if len(pos) != 1 {
		return usagef("promote takes one VERSION (got %d arguments)", len(pos))
	}
	if err := releases.ValidateVersion(pos[0]); err != nil {
		return err
	}
	out, err := b.Promote(ctx, releases.PromoteRequest{Site: site, Version: pos[0], Actor: actor(env), Reason: *reason, NoVerify: *noVerify}, printer(env.Stdout))
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
	b, site, pos, err := siteCommand(ctx, env, "rollback", "[VERSION]", args, func(fs *flagSetT) {
		reason = fs.String("reason", "", "`TEXT` saying why, recorded with the deploy")
	})
	if err != nil {
		return err
	}
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

type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

func runPrune(ctx context.Context, env Env, args []string) error {
	var dry, asJSON *bool
	b, site, pos, err := siteCommand(ctx, env, "prune", "", args, func(fs *flagSetT) {
		dry = fs.Bool("dry-run", false, "list what would be deleted, delete nothing")
		asJSON = fs.Bool("json", false, "print the report as JSON")
	})
	if err != nil {
		return err
	}
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
	fmt.Fprintf(&b, "prune of %s: %s %d release(s), %d objects, %s (%.1fs)\n", rep.Site, verb, len(rep.Deleted), rep.Objects, bot.HumanBytes(rep.Bytes), rep.Seconds)
	for _, d := range rep.Deleted {
		what := "release"
		if d.Abandoned {
			what = "abandoned upload"
		}
		line := fmt.Sprintf("  - %-24s %s, %d objects, %s", d.Version, what, d.Objects, bot.HumanBytes(d.Bytes))
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
	b, site, pos, err := siteCommand(ctx, env, "pin", "VERSION", args, func(fs *flagSetT) {
		reason = fs.String("reason", "", "`TEXT` saying why the release is kept")
	})
	if err != nil {
		return err
	}
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
	b, site, pos, err := siteCommand(ctx, env, "unpin", "VERSION", args, nil)
	if err != nil {
		return err
	}
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

func runVerify(ctx context.Context, env Env, args []string) error {
	svc, s, pos, asJSON, err := bucketCommand(ctx, env, "verify", "VERSION", 1, args)
	if err != nil {
		return err
	}
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
	svc, s, pos, asJSON, err := bucketCommand(ctx, env, "diff", "A B", 2, args)
	if err != nil {
		return err
	}
	d, err := svc.Diff(ctx, s, pos[0], pos[1])
	if err != nil {
		return err
	}
	if asJSON {
		return writeJSON(env.Stdout, d)
	}
	fmt.Fprintln(env.Stdout, bot.DiffSummary(d))
	for _, f := range d.Added {
		fmt.Fprintf(env.Stdout, "  + %s (%s)\n", f.Path, bot.HumanBytes(f.Size))
	}
	for _, f := range d.Removed {
		fmt.Fprintf(env.Stdout, "  - %s (%s)\n", f.Path, bot.HumanBytes(f.Size))
	}
	for _, f := range d.Changed {
		fmt.Fprintf(env.Stdout, "  ~ %s (%s → %s)\n", f.Path, bot.HumanBytes(f.OldSize), bot.HumanBytes(f.Size))
	}
	return nil
}

func runLock(ctx context.Context, env Env, args []string) error {
	b, site, pos, err := siteCommand(ctx, env, "lock", "REASON...", args, nil)
	if err != nil {
		return err
	}
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
	b, site, pos, err := siteCommand(ctx, env, "unlock", "", args, nil)
	if err != nil {
		return err
	}
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

// localSite parses a command that acts on one site of the configuration
// here, never through --server: --config, --site and the flags extra adds,
// and no positional arguments.
func localSite(env Env, name string, args []string, extra func(fs *flagSetT)) (*config.Config, releases.Site, error) {
	fs, cfgPath := flagSet(env, name, "")
	siteName := fs.String("site", "", "the `SITE` to act on (may be left out when only one is configured)")
	if extra != nil {
		extra(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return nil, releases.Site{}, err
	}
	if len(pos) != 0 {
		return nil, releases.Site{}, usagef("%s takes no arguments", name)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return nil, releases.Site{}, err
	}
	s, err := siteOf(cfg, *siteName)
	return cfg, s, err
}

func runKVSSetup(ctx context.Context, env Env, args []string) error {
	var apply, asJSON *bool
	cfg, s, err := localSite(env, "kvs-setup", args, func(fs *flagSetT) {
		apply = fs.Bool("apply", false, "make the changes (without it: print them and the function's code)")
		asJSON = fs.Bool("json", false, "print what --apply did as JSON")
	})
	if err != nil {
		return err
	}
	if s.Strategy != cloud.StrategyKVS || s.KVSARN == "" {
		return usagef("site %s is not set up for strategy kvs: set strategy: kvs and kvs.arn in the configuration first", s.Name)
	}
	a, err := newApp(ctx, env, cfg, false)
	if err != nil {
		return err
	}
	setup := &cloud.KVSSetup{CF: a.cf, KVS: a.kvs, Pages: a.bucket, PollInterval: a.cfg.Deploy.PollInterval.Duration}
	if !*apply {
		code, err := cloud.FunctionCode(s, cloud.KVSID(s.KVSARN))
		if err != nil {
			return err
		}
		fmt.Fprintf(env.Stdout, "kvs-setup for site %s would (run again with --apply):\n", s.Name)
		for i, step := range setup.Steps(s) {
			fmt.Fprintf(env.Stdout, "  %d. %s\n", i+1, step)
		}
		fmt.Fprintf(env.Stdout, "\nThe function %s (%d bytes, %s):\n\n%s", cloud.FunctionName(s), len(code), cloud.FunctionRuntime, code)
		return nil
	}
	rep, err := setup.Apply(ctx, s)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, rep)
	}
	verb := map[bool]string{true: "created", false: "updated"}[rep.Created]
	fmt.Fprintf(env.Stdout, "function %s %s and published (%s)\n", rep.Function, verb, rep.FunctionARN)
	switch {
	case rep.KeyWritten:
		fmt.Fprintf(env.Stdout, "key %s = %s written (the live release, from origin path %q)\n", s.Name, rep.Key, rep.OldPath)
	case rep.Key == "":
		fmt.Fprintf(env.Stdout, "key %s not written: the site has no live release yet; the first promote writes it, and until then the site answers 503 \"no live release\"\n", s.Name)
	default:
		fmt.Fprintf(env.Stdout, "key %s = %s kept\n", s.Name, rep.Key)
	}
	if rep.Associated {
		fmt.Fprintf(env.Stdout, "distribution %s now runs the function on viewer requests, origin path cleared, and is Deployed\n", s.DistributionID)
	} else {
		fmt.Fprintf(env.Stdout, "distribution %s already runs the function\n", s.DistributionID)
	}
	if rep.ErrorPages {
		fmt.Fprintf(env.Stdout, "custom error responses for 403 and 404 now show %s\n", pageOrNone(cloud.NotFoundPagePath(s)))
	}
	return nil
}

func pageOrNone(p string) string {
	if p == "" {
		return "no page (CloudFront's own error)"
	}
	return p
}

func runRoutingSetup(ctx context.Context, env Env, args []string) error {
	var apply, asJSON *bool
	cfg, s, err := localSite(env, "routing-setup", args, func(fs *flagSetT) {
		apply = fs.Bool("apply", false, "make the changes (without it: print what differs, the steps and the function's code)")
		asJSON = fs.Bool("json", false, "print what --apply did as JSON")
	})
	if err != nil {
		return err
	}
	if s.Strategy == cloud.StrategyKVS {
		return usagef("site %s is on strategy kvs, whose function routes too: run deploybot kvs-setup --site %s --apply", s.Name, s.Name)
	}
	a, err := newApp(ctx, env, cfg, false)
	if err != nil {
		return err
	}
	setup := &cloud.RoutingSetup{CF: a.cf, PollInterval: a.cfg.Deploy.PollInterval.Duration}
	if !*apply {
		problems, err := setup.Check(ctx, s)
		if err != nil {
			return err
		}
		if len(problems) == 0 {
			fmt.Fprintf(env.Stdout, "site %s routes as configured; routing-setup --apply has nothing to do\n", s.Name)
			return nil
		}
		fmt.Fprintf(env.Stdout, "site %s does not route as configured:\n", s.Name)
		for _, p := range problems {
			fmt.Fprintf(env.Stdout, "  - %s\n", p)
		}
		fmt.Fprintf(env.Stdout, "\nrouting-setup would (run again with --apply):\n")
		for i, step := range setup.Steps(s) {
			fmt.Fprintf(env.Stdout, "  %d. %s\n", i+1, step)
		}
		if cloud.NeedsRouter(s) {
			code, err := cloud.RouterCode(s)
			if err != nil {
				return err
			}
			fmt.Fprintf(env.Stdout, "\nThe function %s (%d bytes, %s):\n\n%s", cloud.RouterName(s), len(code), cloud.FunctionRuntime, code)
		}
		return nil
	}
	rep, err := setup.Apply(ctx, s)
	if err != nil {
		return err
	}
	if *asJSON {
		return writeJSON(env.Stdout, rep)
	}
	if rep.Function != "" {
		verb := map[bool]string{true: "created", false: "updated"}[rep.Created]
		fmt.Fprintf(env.Stdout, "function %s %s and published (%s)\n", rep.Function, verb, rep.FunctionARN)
	}
	if rep.ErrorPages {
		fmt.Fprintf(env.Stdout, "custom error responses for 403 and 404 now show %s\n", pageOrNone(cloud.NotFoundPagePath(s)))
	}
	if rep.Updated {
		fmt.Fprintf(env.Stdout, "distribution %s updated and Deployed\n", s.DistributionID)
	} else {
		fmt.Fprintf(env.Stdout, "distribution %s already routes as configured\n", s.DistributionID)
	}
	return nil
}

func runPreview(ctx context.Context, env Env, args []string) error {
	var ttl *time.Duration
	var asJSON *bool
	b, site, pos, err := siteCommand(ctx, env, "preview", "VERSION", args, func(fs *flagSetT) {
		ttl = fs.Duration("ttl", releases.DefaultPreviewTTL, "`DURATION` the link works (at most 24h)")
		asJSON = fs.Bool("json", false, "print the link as JSON")
	})
	if err != nil {
		return err
	}
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

// bucketCommand parses a command that reads only the bucket (verify,
// diff: they run anywhere, CI included, and never need the store): --site,
// --json and n version arguments; it returns a service over the bucket.
func bucketCommand(ctx context.Context, env Env, name, posUsage string, n int, args []string) (releases.Inspect, releases.Site, []string, bool, error) {
	fs, cfgPath := flagSet(env, name, posUsage)
	siteName := fs.String("site", "", "the `SITE` to act on (may be left out when only one is configured)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return releases.Inspect{}, releases.Site{}, nil, false, err
	}
	if len(pos) != n {
		return releases.Inspect{}, releases.Site{}, nil, false, usagef("%s takes %s (got %d arguments)", name, posUsage, len(pos))
	}
	for _, v := range pos {
		if err := releases.ValidateVersion(v); err != nil {
			return releases.Inspect{}, releases.Site{}, nil, false, err
		}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return releases.Inspect{}, releases.Site{}, nil, false, err
	}
	s, err := siteOf(cfg, *siteName)
	if err != nil {
		return releases.Inspect{}, releases.Site{}, nil, false, err
	}
	a, err := newApp(ctx, env, cfg, false)
	if err != nil {
		return releases.Inspect{}, releases.Site{}, nil, false, err
	}
	return releases.Inspect{Bucket: a.bucket}, s, pos, *asJSON, nil
}
