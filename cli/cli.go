// Package cli is deploybot's command line. Run is what main calls, and what
// tests call with their own arguments, streams and environment.
package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"log/slog"
	"net"
	"os"
	"os/user"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// Env is the process's outside world.
type Env struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer
	Getenv func(string) string
	// Command is the command being run (set by Run).
	Command string
}

// Exit statuses, as the contract gives them.
const (
	ExitOK     = 0
	ExitFailed = 1 // the operation failed
	ExitUsage  = 2 // usage or configuration error
)

// usageError is a mistake in the command line itself.
type usageError struct{ msg string }

func (e *usageError) Error() string { return e.msg }

func usagef(format string, args ...any) error { return &usageError{fmt.Sprintf(format, args...)} }

type command struct {
	name    string
	summary string
	run     func(ctx context.Context, env Env, args []string) error
}

func commands() []command {
	cs := []command{
		{"publish", "upload DIR as a release and commit its manifest", runPublish},
		{"versions", "list releases, newest first, live one marked", runVersions},
		{"status", "live release, deploy in progress, lock", runStatus},
		{"history", "the audit log: every operation from every door, refusals included", runHistory},
		{"promote", "make a release live", runPromote},
		{"rollback", "go back to the previous live release (or VERSION)", runRollback},
		{"verify", "check every file of a release is in the bucket with the right size", runVerify},
		{"diff", "files added, removed and changed between two releases", runDiff},
		{"preview", "a link that shows a release before it is promoted (strategy kvs)", runPreview},
		{"kvs-setup", "move a site onto strategy kvs: its CloudFront Functions, key and distribution (--apply)", runKVSSetup},
		{"setup", "a site's AWS side from an empty account: bucket, origin access control, distribution, bucket policy, functions (plan; --apply does it)", runSetup},
		{"check", "every assumption about a site's AWS side, checked read-only; exit 1 naming the fix", runCheck},
		{"routing-setup", "directory index, SPA fallback, 404 page and release header of an origin-path site on CloudFront (--apply)", runRoutingSetup},
		{"lock", "refuse promotes and rollbacks of a site until unlocked, saying why", runLock},
		{"unlock", "release a site's lock (a manual or auto-rollback lock)", runUnlock},
		{"rollout", "pause, resume, advance or abort a site's gradual promote (promote --gradual)", runRollout},
		{"approve", "approve a promote waiting for approval; the last approval needed runs it", runApprove},
		{"reject", "reject (or withdraw) a promote waiting for approval", runReject},
		{"rebuild", "fill the store from the sites' buckets and distributions (what serve does when it finds the store empty)", runRebuild},
		{"freeze", "refuse promotes (not rollbacks) of a site, or all, for a while, saying why", runFreeze},
		{"unfreeze", "lift a site's (or all sites') run-time freeze", runUnfreeze},
		{"iam-policy", "print the least-privilege IAM policy of the bot or of CI, from the configuration", runIAMPolicy},
		{"recover", "finish a deploy whose process is gone (what serve does when it starts)", runRecover},
		{"prune", "apply the retention policy now", runPrune},
		{"pin", "keep a release forever", runPin},
		{"unpin", "release a pin", runUnpin},
		{"serve", "the bot: CI hook, API, health and metrics, reconcile, recovery", runServe},
		{"backup", "write a consistent snapshot of the store", runBackup},
	}
	cs = append(cs, standinCommands()...)
	return append(cs, command{"version", "print the version, the commit and the Go it was built with (also --version)", runVersion})
}

// summaryOf is the one line saying what command name does.
func summaryOf(name string) string {
	for _, c := range commands() {
		if c.name == name {
			return c.summary
		}
	}
	return ""
}

// Run runs one command line and returns the exit status.
func Run(ctx context.Context, args []string, env Env) int {
	if env.Getenv == nil {
		env.Getenv = func(string) string { return "" }
	}
	if len(args) == 1 && (args[0] == "--version" || args[0] == "-version") {
		fmt.Fprintln(env.Stdout, versionText())
		return ExitOK
	}
	if len(args) == 0 || args[0] == "help" || args[0] == "-h" || args[0] == "--help" {
		usage(env.Stdout)
		if len(args) == 0 {
			return ExitUsage
		}
		return ExitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			env.Command = c.name
			// Operations from a terminal are the cli door's; with
			// --server the API records its own.
			ctx = releases.WithDoor(ctx, releases.DoorCLI)
			return report(env, c.run(ctx, env, args[1:]))
		}
	}
	fmt.Fprintf(env.Stderr, "deploybot: unknown command %q (see deploybot help)\n", args[0])
	return ExitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "usage: deploybot COMMAND [flags] [args]")
	fmt.Fprintln(w)
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-14s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w)
	fmt.Fprintln(w, "Every command takes --config FILE (default deploybot.yaml, or $DEPLOYBOT_CONFIG).")
	fmt.Fprintln(w, "deploybot COMMAND -h shows its flags.")
}

// report prints err and maps it to an exit status.
func report(env Env, err error) int {
	if err == nil {
		return ExitOK
	}
	if errors.Is(err, flag.ErrHelp) {
		return ExitOK
	}
	var ue *usageError
	var ce config.Errors
	switch {
	case errors.As(err, &ue):
		fmt.Fprintf(env.Stderr, "deploybot: %s\n", ue.msg)
		return ExitUsage
	case errors.As(err, &ce):
		fmt.Fprintf(env.Stderr, "deploybot: %v\n", err)
		return ExitUsage
	case releases.ErrorCode(err) == releases.EINVALID:
		fmt.Fprintf(env.Stderr, "deploybot: %s\n", errorText(err))
		return ExitUsage
	}
	fmt.Fprintf(env.Stderr, "deploybot: %s\n", errorText(err))
	return ExitFailed
}

type flagSetT = flag.FlagSet

func newFlagSet(env Env, name, args string) *flag.FlagSet {
	fs := flag.NewFlagSet(name, flag.ContinueOnError)
	fs.SetOutput(env.Stderr)
	fs.Usage = func() {
		fmt.Fprintf(env.Stderr, "deploybot %s: %s\n\nusage: %s\n", name, summaryOf(name), strings.TrimSpace("deploybot "+name+" [flags] "+args))
		fs.PrintDefaults()
	}
	return fs
}

// flagSet returns a FlagSet with --config.
func flagSet(env Env, name, args string) (*flag.FlagSet, *string) {
	fs := newFlagSet(env, name, args)
	def := env.Getenv("DEPLOYBOT_CONFIG")
	if def == "" {
		def = "deploybot.yaml"
	}
	cfg := fs.String("config", def, "configuration `FILE`")
	return fs, cfg
}

// parse parses flags that may come before, between or after positional
// arguments ("pin --site S v1 --reason R"), returning the positionals.
func parse(fs *flag.FlagSet, args []string) ([]string, error) {
	var pos []string
	for {
		if err := fs.Parse(args); err != nil {
			if errors.Is(err, flag.ErrHelp) {
				return nil, err
			}
			return nil, &usageError{err.Error()}
		}
		rest := fs.Args()
		if len(rest) == 0 {
			return pos, nil
		}
		pos = append(pos, rest[0])
		args = rest[1:]
	}
}

func loadConfig(path string) (*config.Config, error) {
	cfg, err := config.Load(path)
	if err != nil {
		var ce config.Errors
		if errors.As(err, &ce) {
			return nil, err
		}
		return nil, &usageError{err.Error()}
	}
	return cfg, nil
}

func siteOf(cfg *config.Config, name string) (releases.Site, error) {
	if name == "" {
		if len(cfg.Sites) == 1 {
			return cfg.Sites[0].ReleasesSite(), nil
		}
		return releases.Site{}, usagef("--site is required (configured: %s)", siteNames(cfg))
	}
	s, ok := cfg.Site(name)
	if !ok {
		return releases.Site{}, usagef("unknown site %q (configured: %s)", name, siteNames(cfg))
	}
	return s.ReleasesSite(), nil
}

func siteNames(cfg *config.Config) string {
	var names []string
	for _, s := range cfg.Sites {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return strings.Join(names, ", ")
}

// logger is the command line's log: none unless DEPLOYBOT_LOG_LEVEL asks
// for it. A command tells people what happened in its own output and its
// final message; log lines in between would repeat that in another form.
func logger(env Env) *slog.Logger {
	v := env.Getenv("DEPLOYBOT_LOG_LEVEL")
	if v == "" {
		return slog.New(slog.DiscardHandler)
	}
	var level slog.Level
	_ = level.UnmarshalText([]byte(v))
	return slog.New(slog.NewTextHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}

// app is what a command needs, wired from the configuration.
type app struct {
	cfg    *config.Config
	svc    *releases.Service
	bucket *cloud.S3Bucket
	cf     *cloudfront.Client
	s3     *s3.Client
	kvs    *cloudfrontkeyvaluestore.Client
	store  *store.DB
	stderr io.Writer
	// host is how this process names its machine in the locks of the
	// deploys it runs ($DEPLOYBOT_HOST; default the hostname).
	host string
}

// Close writes to the bucket what the command recorded (the history
// mirror), then closes the store.
func (a *app) Close() error {
	if a.store == nil {
		return nil
	}
	if a.svc != nil {
		pushHistory(a.svc, a.stderr)
	}
	return a.store.Close()
}

// newApp connects to AWS and, when withStore, opens the store. The command
// line opens the store per operation (transient), so that two commands run
// at once see each other's locks instead of waiting on the file.
func newApp(ctx context.Context, env Env, cfg *config.Config, withStore bool) (*app, error) {
	settings := cloud.Settings{Region: cfg.AWS.Region, Endpoint: cfg.AWS.Endpoint, Observe: callObserver(env, env.Command)}
	s3c, cfc, err := cloud.NewClients(ctx, settings)
	if err != nil {
		return nil, err
	}
	a := &app{cfg: cfg, host: env.Getenv("DEPLOYBOT_HOST"), bucket: cloud.NewS3Bucket(s3c, settings.Observe), cf: cfc, s3: s3c}
	// The key value store client only when a site flips by key: most
	// configurations never need it.
	for _, s := range cfg.Sites {
		if s.Strategy == cloud.StrategyKVS && a.kvs == nil {
			if a.kvs, err = cloud.NewKVSClient(ctx, settings); err != nil {
				return nil, err
			}
		}
	}
	if !withStore {
		return a, nil
	}
	db, err := store.Open(cfg.Store.Path, store.Options{Transient: true})
	if err != nil {
		return nil, err
	}
	a.store, a.stderr = db, env.Stderr
	a.svc = a.service(db, logger(env))
	// Nothing restarts a command: a deploy it runs that is stopped after
	// its flip ends its record there rather than lock the site for
	// recover (serve builds its service itself and resumes instead).
	a.svc.EndOnStop = true
	// The command line is one door with one caller: its AWS identity,
	// asked of STS the first time an operation needs it.
	stsc, err := cloud.NewSTSClient(ctx, settings)
	if err != nil {
		return nil, err
	}
	caller := &cloud.Caller{API: stsc, Label: env.Getenv("DEPLOYBOT_ACTOR")}
	a.svc.Caller = caller.Principal
	if err := rebuildIfEmpty(ctx, a.svc, env.Stderr); err != nil {
		return nil, err
	}
	return a, nil
}

// service wires the domain service over a store: the local one, whose
// locks and freezes are shared through the sites' buckets, so every
// process (serve's replicas, the command line anywhere) sees the same.
func (a *app) service(db *store.DB, log *slog.Logger) *releases.Service {
	var sites []releases.Site
	for _, s := range a.cfg.Sites {
		sites = append(sites, s.ReleasesSite())
	}
	d := a.cfg.Deploy
	return wiring.Service(wiring.Config{
		Sites: sites, Store: db, Bucket: a.bucket, CF: a.cf, KVS: a.kvs, Logger: log, Access: a.cfg.Access(), Host: a.host,
		Deploy: wiring.Deploy{Timeout: d.Timeout.Duration, PollInterval: d.PollInterval.Duration,
			VisibleTimeout: d.VisibleTimeout.Duration, KVSPropagation: d.KVSPropagation.Duration},
	})
}

// actor names who runs a command-line deploy: $DEPLOYBOT_ACTOR, else the
// local user and host.
func actor(env Env) string {
	if a := env.Getenv("DEPLOYBOT_ACTOR"); a != "" {
		return a
	}
	name := "unknown"
	if u, err := user.Current(); err == nil {
		name = u.Username
	}
	host, _ := os.Hostname()
	return "cli:" + name + "@" + host
}

// listen opens a TCP listener for the flag or key named what. An address
// that cannot be had (in use, not on this machine, malformed) is a mistake
// in the command line or the configuration, so it is a usage error (exit
// 2) that names what to change, not an internal error.
func listen(what, addr string) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		reason := err.Error()
		var oe *net.OpError
		if errors.As(err, &oe) && oe.Err != nil {
			reason = oe.Err.Error()
			var se *os.SyscallError
			if errors.As(oe.Err, &se) {
				reason = se.Err.Error()
			}
		}
		return nil, usagef("%s %s: cannot listen there (%s); choose another address (127.0.0.1:0 picks a free port)", what, addr, reason)
	}
	return ln, nil
}
