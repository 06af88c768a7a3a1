package cli

import (
	"context"
	"fmt"
	"runtime/debug"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/hook"
	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
)

func runPublish(ctx context.Context, env Env, args []string) error {
	f, err := parsePublishFlags(env, args)
	if err != nil {
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
	cfg, err := loadConfig(f.cfgPath)
	if err != nil {
		return err
	}
	s, err := siteOf(cfg, f.site)
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
	inputs := publish.Inputs{Exclude: append(slices.Clone(sc.Exclude), f.excludes...), IncludeHidden: f.hidden, FollowExternalLinks: f.external}
	// The commit's history, when the build sits in a git checkout: how
	// many commits a release is ahead of live.
	var ancestors []string
	if !f.dry {
		ancestors = publish.GitAncestors(ctx, f.dir, f.commit)
	}
	res, err := p.Publish(ctx, publish.Request{Site: s, Version: f.version, Commit: f.commit, Message: f.message, Build: f.build, Ancestors: ancestors, Dir: f.dir,
		Concurrency: f.conc, Rules: rules, SkewReleases: *sc.SkewProtection, DryRun: f.dry, Inputs: inputs})
	if err != nil {
		return err
	}
	if !f.asJSON {
		for _, x := range res.Excluded {
			fmt.Fprintf(env.Stdout, "left out: %s: %s\n", x.Path, x.Reason)
		}
	}
	if f.dry {
		return printPublishPlan(env, res, f.asJSON)
	}
	return reportPublished(ctx, env, cfg, s, res, f)
}

// publishFlags are publish's command line.
type publishFlags struct {
	cfgPath, site, version, commit, message, dir string
	build                                        releases.Build
	asJSON, dry, hidden, external                bool
	conc                                         int
	excludes                                     []string
}

func parsePublishFlags(env Env, args []string) (publishFlags, error) {
	fs, cfgPath := flagSet(env, "publish", "DIR")
	site := fs.String("site", "", "the `SITE` to publish to (may be left out when only one is configured)")
	version := fs.String("version", "", "release `VERSION` (letters, digits, . _ -)")
	commit := fs.String("commit", "", "the commit `SHA` the release was built from (default: from the CI's environment)")
	message := fs.String("message", "", "release `MESSAGE` (shown in Slack and versions)")
	branch := fs.String("branch", "", "the `BRANCH` the release was built from (default: from the CI's environment)")
	ciURL := fs.String("ci-url", "", "`URL` of the CI run that built it (default: from the CI's environment)")
	pullRequest := fs.String("pull-request", "", "`NUMBER` of the pull request it was built for (default: from the CI's environment)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	conc := fs.Int("concurrency", 16, "`N` uploads and copies in flight")
	dry := fs.Bool("dry-run", false, "show what each file would get (action, cache rule, headers), what is left out and why, and send nothing")
	var excludes multiFlag
	fs.Var(&excludes, "exclude", "`PATTERN` of paths to leave out (a name at any depth, or a path with /; a trailing / for folders); repeatable, added to the site's exclude")
	hidden := fs.Bool("include-hidden", false, "publish .git/, .DS_Store and .env* too (left out by default)")
	external := fs.Bool("follow-external-links", false, "publish what symbolic links that leave DIR point at (refused by default)")
	pos, err := parse(fs, args)
	if err != nil {
		return publishFlags{}, err
	}
	if len(pos) != 1 {
		return publishFlags{}, usagef("publish takes one directory (got %d arguments)", len(pos))
	}
	if *version == "" {
		return publishFlags{}, usagef("--version is required")
	}
	if err := releases.ValidateVersion(*version); err != nil {
		return publishFlags{}, err
	}
	// What CI knows: the flags, else the CI's own environment variables.
	ci := publish.DetectCI(env.Getenv)
	build := releases.Build{Branch: or(*branch, ci.Branch), CIURL: or(*ciURL, ci.CIURL), PullRequest: strings.TrimPrefix(or(*pullRequest, ci.PullRequest), "#")}
	if err := build.Check(); err != nil {
		return publishFlags{}, usagef("%s", releases.ErrorMessage(err))
	}
	return publishFlags{cfgPath: *cfgPath, site: *site, version: *version, commit: or(*commit, ci.Commit), message: *message, dir: pos[0],
		build: build, asJSON: *asJSON, dry: *dry, hidden: *hidden, external: *external, conc: *conc, excludes: excludes}, nil
}

// printPublishPlan prints what a dry run would do with each file.
func printPublishPlan(env Env, res *publish.Result, asJSON bool) error {
	if asJSON {
		return writeJSON(env.Stdout, res)
	}
	tw := tabwriter.NewWriter(env.Stdout, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "PATH\tACTION\tSIZE\tRULE\tCACHE-CONTROL\tCONTENT-TYPE\tENCODING")
	for _, f := range res.Plan {
		action := f.Action
		if f.From != "" {
			action += " from " + f.From
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\t%s\n", f.Path, action, present.HumanBytes(f.Size), f.Rule, f.CacheControl, f.ContentType, f.ContentEncoding)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "dry run: %d files (%d to upload, %s; %d to copy; %d carried); nothing was sent\n",
		res.Files, res.Uploaded, present.HumanBytes(res.BytesUploaded), res.Copied, res.Carried)
	return nil
}

// reportPublished notifies serve through the hook and says what was
// published.
func reportPublished(ctx context.Context, env Env, cfg *config.Config, s releases.Site, res *publish.Result, f publishFlags) error {
	if res.CopiesRefused > 0 {
		fmt.Fprintf(env.Stderr, "deploybot: note: the bucket refuses conditional server-side copies (a bucket policy that enforces conditional writes; see docs/aws.md): %d files that would have been copied were sent instead\n", res.CopiesRefused)
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
		if err := sender.Send(ctx, hook.Notice{Site: s.Name, Version: res.Version, Commit: f.commit, Message: f.message}); err != nil {
			out.NotifyError = err.Error()
			fmt.Fprintf(env.Stderr, "deploybot: warning: the release is published, but notifying %s failed (deploybot's reconcile will find it): %v\n", cfg.Hook.URL, err)
		} else {
			out.Notified = true
		}
	}
	if f.asJSON {
		return writeJSON(env.Stdout, out)
	}
	fmt.Fprintf(env.Stdout, "published %s %s: %d files, %s in %.1fs (%d uploaded, %s sent; %d copied; %d carried) (s3://%s/%s)\n",
		s.Name, res.Version, res.Files, present.HumanBytes(res.Bytes), res.Seconds, res.Uploaded, present.HumanBytes(res.BytesUploaded),
		res.Copied, res.Carried, s.Bucket, s.ReleasePath(res.Version))
	return nil
}

type multiFlag []string

func (m *multiFlag) String() string { return strings.Join(*m, ",") }

func (m *multiFlag) Set(v string) error { *m = append(*m, v); return nil }

// or is a, or b when a is empty.
func or(a, b string) string {
	if a != "" {
		return a
	}
	return b
}
