package cli

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"log/slog"
	"os"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/bot/slackbot"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
	"github.com/deploybot/deploybot/store"
)

func runServe(ctx context.Context, env Env, args []string) error {
	cfg, listenWhat, listenAddr, err := serveArgs(env, args)
	if err != nil {
		return err
	}
	log := serveLogger(env)

	// serve holds the store for its whole life: bbolt allows one writer
	// process, and the command line goes through the API meanwhile.
	db, err := store.Open(cfg.Store.Path, store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	a, err := newApp(ctx, env, cfg, false)
	if err != nil {
		return err
	}
	a.store = db
	svc := a.service(db, log)
	// An empty store (a lost volume, a new cluster) comes back from the
	// buckets before anything reads it: serve's own job, as recovery is.
	if err := rebuildIfEmpty(releases.WithDoor(ctx, releases.DoorSchedule), svc, env.Stderr); err != nil {
		return err
	}
	chat, err := serveSlack(ctx, cfg, svc, log)
	if err != nil {
		return err
	}
	warnUnset(cfg, log)
	ln, err := listen(listenWhat, listenAddr)
	if err != nil {
		return err
	}
	srv := &server.Server{
		Service: svc, Store: db, Logger: log,
		HookSecret: []byte(cfg.Hook.Secret), APIToken: cfg.HTTP.APIToken, Tokens: apiTokens(cfg),
		ReconcileInterval: cfg.Reconcile.Interval.Duration,
	}
	if srv.Schedules, err = schedules(cfg, log); err != nil {
		return err
	}
	if chat != nil {
		attachSlack(srv, chat, log)
	}
	log.Info("deploybot serve starting", "pid", os.Getpid(), "store", cfg.Store.Path, "listen", ln.Addr().String(), "listen_from", listenWhat)
	// The checks end with serve: cancelled and waited for, so nothing is
	// logged after it returns.
	checkCtx, stopChecks := context.WithCancel(ctx)
	checked := make(chan struct{})
	go func() { defer close(checked); checkAtStart(checkCtx, a, cfg, log) }()
	defer func() { stopChecks(); <-checked }()
	return srv.Run(ctx, ln)
}

// serveArgs parses serve's command line and loads the configuration.
func serveArgs(env Env, args []string) (cfg *config.Config, listenWhat, listenAddr string, err error) {
	fs, cfgPath := flagSet(env, "serve", "")
	listenFlag := fs.String("listen", "", "`ADDR` (host:port) to serve HTTP on instead of http.listen, such as 0.0.0.0:8088 in a container (default $DEPLOYBOT_LISTEN, else http.listen)")
	pos, err := parse(fs, args)
	if err != nil {
		return nil, "", "", err
	}
	if len(pos) != 0 {
		return nil, "", "", usagef("serve takes no arguments")
	}
	if cfg, err = loadConfig(*cfgPath); err != nil {
		return nil, "", "", err
	}
	listenWhat, listenAddr = listenAddress(fs, *listenFlag, env, cfg)
	if listenAddr == "" {
		return nil, "", "", usagef("%s is empty: give an address such as 0.0.0.0:8088", listenWhat)
	}
	return cfg, listenWhat, listenAddr, nil
}

// serveLogger logs JSON at $DEPLOYBOT_LOG_LEVEL (default info).
func serveLogger(env Env) *slog.Logger {
	level := slog.LevelInfo
	if v := env.Getenv("DEPLOYBOT_LOG_LEVEL"); v != "" {
		_ = level.UnmarshalText([]byte(v))
	}
	return slog.New(slog.NewJSONHandler(env.Stderr, &slog.HandlerOptions{Level: level}))
}

// serveSlack connects the bot to Slack, or returns nil when the tokens
// are not set (serve runs everything else).
func serveSlack(ctx context.Context, cfg *config.Config, svc *releases.Service, log *slog.Logger) (*slackbot.Slack, error) {
	if cfg.Slack.AppToken == "" {
		log.Warn("slack tokens are not set: running without Slack (hook, API, reconcile and schedule only)")
		return nil, nil
	}
	b := &bot.Bot{Service: svc, Command: cfg.Slack.Command, Logger: log}
	chat, err := slackbot.New(cfg.Slack.AppToken, cfg.Slack.BotToken, cfg.Slack.APIURL, b, log)
	if err != nil {
		return nil, &usageError{err.Error()}
	}
	svc.Access.Directory = &slackbot.UserGroups{API: chat.API, Logger: log}
	svc.OnApproval = chat
	if _, err := chat.API.AuthTestContext(ctx); err != nil {
		return nil, fmt.Errorf("slack: the bot token was refused (auth.test): %w", err)
	}
	for _, s := range cfg.Sites {
		if len(s.Deployers) == 0 {
			log.Warn("site has no deployers: nobody can promote, roll back or lock it from Slack", "site", s.Name)
		}
	}
	return chat, nil
}

// warnUnset logs the doors a missing secret leaves shut.
func warnUnset(cfg *config.Config, log *slog.Logger) {
	if cfg.HTTP.APIToken == "" && len(cfg.HTTP.Tokens) == 0 {
		log.Warn("neither http.api_token nor http.tokens is set: the /api/v1 endpoints refuse every request")
	}
	if cfg.Hook.Secret == "" {
		log.Warn("hook.secret is not set: POST /hooks/release refuses every notice (reconcile still finds releases)")
	}
}

// schedules are the sites' retention schedules.
func schedules(cfg *config.Config, log *slog.Logger) ([]server.Schedule, error) {
	var out []server.Schedule
	for _, site := range cfg.Sites {
		if site.Retention.Schedule == "" {
			// schedule: "" in the file: this site is pruned only by hand.
			log.Info("no retention schedule; prune runs only when asked", "site", site.Name)
			continue
		}
		sched, err := config.ParseCron(site.Retention.Schedule)
		if err != nil { // validated at load; kept for safety
			return nil, &usageError{fmt.Sprintf("site %s: retention.schedule: %v", site.Name, err)}
		}
		out = append(out, server.Schedule{Site: site.Name, Cron: sched, Location: site.Retention.Location()})
	}
	return out, nil
}

// Slack goes on with a resumed deploy in its card and thread, and posts
// again the notices that failed.
var (
	_ server.Resumer       = (*slackbot.Slack)(nil)
	_ server.NoticeRetrier = (*slackbot.Slack)(nil)
)

// attachSlack makes chat serve's notifier, pruner, readiness check and a
// background loop, with its metrics.
func attachSlack(srv *server.Server, chat *slackbot.Slack, log *slog.Logger) {
	srv.Metrics = server.NewMetrics()
	chat.Lost = func(what string) { srv.Metrics.SlackLost.WithLabelValues(what).Inc() }
	chat.Connections = func(n int) { srv.Metrics.SlackConnections.Set(float64(n)) }
	chat.Bot.Pruner = srv
	srv.Notifier = chat
	srv.Ready = append(srv.Ready, server.ReadyCheck{Name: "slack", Degrades: true, Check: func(context.Context) error {
		if !chat.Connected() {
			return errors.New("socket mode not connected")
		}
		return nil
	}})
	srv.Ready = append(srv.Ready, server.ReadyCheck{Name: "slack_channels", Degrades: true, Check: chat.ChannelsReady})
	srv.Background = append(srv.Background, server.Restarting("slack", log, chat.Run, nil, func() {
		srv.Metrics.Restarts.WithLabelValues("slack").Inc()
	}))
}

// checkAtStart runs deploybot check's read-only checks on every site once,
// beside serving, and logs what is wrong as warnings: a setting that
// would fail the first promote shows at start instead. The bot's own
// permissions are not simulated here (its policy does not grant
// iam:SimulatePrincipalPolicy); the checks' read calls are the bot's.
// Cost: about four calls per site, plus two per function checked, per
// start.
func checkAtStart(ctx context.Context, a *app, cfg *config.Config, log *slog.Logger) {
	checker := &cloud.Checker{S3: cloud.NewRegionalS3(a.s3), CF: a.cf, Region: cfg.AWS.Region}
	for _, s := range cfg.Sites {
		findings, err := checker.Check(ctx, s.ReleasesSite())
		if err != nil {
			return
		}
		bad := 0
		for _, f := range findings {
			if f.Level != cloud.CheckOK {
				bad++
				log.Warn("check: "+f.What, "site", s.Name, "check", f.Check, "level", f.Level, "fix", f.Fix)
			}
		}
		if bad > 0 {
			log.Warn("check found problems; `deploybot check --site "+s.Name+"` prints them with their fixes", "site", s.Name, "problems", bad)
		}
	}
}

// listenAddress is where serve listens, and what names it in a message:
// --listen, else $DEPLOYBOT_LISTEN (the container image sets it to
// 0.0.0.0:8088, as a listener on 127.0.0.1 inside a container answers no
// one outside it), else the configuration's http.listen.
func listenAddress(fs *flagSetT, flagValue string, env Env, cfg *config.Config) (what, addr string) {
	set := false
	fs.Visit(func(f *flag.Flag) { set = set || f.Name == "listen" })
	switch {
	case set:
		return "--listen", flagValue
	case env.Getenv("DEPLOYBOT_LISTEN") != "":
		return "DEPLOYBOT_LISTEN", env.Getenv("DEPLOYBOT_LISTEN")
	}
	return "http.listen", cfg.HTTP.Listen
}

func runBackup(ctx context.Context, env Env, args []string) error {
	fs, cfgPath := flagSet(env, "backup", "")
	out := fs.String("out", "", "`FILE` to write the snapshot to (required)")
	serverURL := fs.String("server", env.Getenv("DEPLOYBOT_SERVER"), "`URL` of a running deploybot serve to take the snapshot through")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("backup takes no arguments")
	}
	if *out == "" {
		return usagef("--out is required")
	}
	tmp := *out + ".partial"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return err
	}
	defer os.Remove(tmp)
	var n int64
	if *serverURL != "" {
		call, err := remoteCommand(ctx, env, *cfgPath, *serverURL, "-", nil)
		if err != nil {
			f.Close()
			return err
		}
		n, err = call.backend.(remoteBackend).Backup(ctx, f)
		if err != nil {
			f.Close()
			return err
		}
	} else {
		cfg, err := loadConfig(*cfgPath)
		if err != nil {
			f.Close()
			return err
		}
		db, err := store.Open(cfg.Store.Path, store.Options{Transient: true})
		if err != nil {
			f.Close()
			return err
		}
		n, err = db.Backup(ctx, f)
		db.Close()
		if err != nil {
			f.Close()
			return err
		}
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	if err := f.Close(); err != nil {
		return err
	}
	if err := os.Rename(tmp, *out); err != nil {
		return err
	}
	fmt.Fprintf(env.Stdout, "backup written to %s (%s)\n", *out, present.HumanBytes(n))
	return nil
}

// apiTokens are the named tokens of http.tokens, as the API checks them.
func apiTokens(cfg *config.Config) []server.APIToken {
	var out []server.APIToken
	for _, t := range cfg.HTTP.Tokens {
		out = append(out, server.APIToken{Name: t.Name, Token: t.Token})
	}
	return out
}
