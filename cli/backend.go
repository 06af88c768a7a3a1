package cli

import (
	"context"
	"encoding/json"
	"io"
	"os"
	"strings"

	"github.com/deploybot/deploybot/config"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

func writeJSON(w io.Writer, v any) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(v)
}

// backend is where a site command runs: in this process on the store
// file, or in a running serve through its API (--server). The service and
// the API client have the same methods, so each is one with Close.
type backend interface {
	releases.Operations
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

// siteCall is a parsed site command: where it runs, on which site, with
// which positional arguments.
type siteCall struct {
	backend
	site string
	args []string
}

// siteCommand parses the flags every site command shares and picks the
// backend: the server named by --server or $DEPLOYBOT_SERVER, else the
// store file of the configuration.
func siteCommand(ctx context.Context, env Env, name, posUsage string, args []string, extra func(fs *flagSetT)) (*siteCall, error) {
	return siteCommandAll(ctx, env, name, posUsage, args, extra, false)
}

// siteCommandAll is siteCommand for a command that may act on every site
// at once: with allowAll, --site all names them all.
func siteCommandAll(ctx context.Context, env Env, name, posUsage string, args []string, extra func(fs *flagSetT), allowAll bool) (*siteCall, error) {
	fs, cfgPath := flagSet(env, name, posUsage)
	siteHelp := "the `SITE` to act on (may be left out when only one is configured)"
	if allowAll {
		siteHelp = "the `SITE` to act on, or all (may be left out when only one is configured)"
	}
	site := fs.String("site", "", siteHelp)
	serverURL := fs.String("server", env.Getenv("DEPLOYBOT_SERVER"), "`URL` of a running deploybot serve to go through (token: $DEPLOYBOT_API_TOKEN or http.api_token)")
	if extra != nil {
		extra(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if *serverURL != "" {
		return remoteCommand(ctx, env, *cfgPath, *serverURL, *site, pos)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return nil, err
	}
	name = server.AllSites
	if !allowAll || *site != server.AllSites {
		s, err := siteOf(cfg, *site)
		if err != nil {
			return nil, err
		}
		name = s.Name
	}
	a, err := newApp(ctx, env, cfg, true)
	if err != nil {
		return nil, err
	}
	return &siteCall{localBackend{Service: a.svc, app: a}, name, pos}, nil
}

// remoteCommand sets up a --server command. The configuration file is
// optional there (the CLI may run where only the server's URL is known);
// when present it supplies the token and the default site.
func remoteCommand(ctx context.Context, env Env, cfgPath, url, site string, pos []string) (*siteCall, error) {
	token := env.Getenv("DEPLOYBOT_API_TOKEN")
	var cfg *config.Config
	if _, err := os.Stat(cfgPath); err == nil {
		if cfg, err = loadConfig(cfgPath); err != nil {
			return nil, err
		}
		if token == "" {
			token = cfg.HTTP.APIToken
		}
	}
	if token == "" {
		return nil, usagef("--server needs an API token: set DEPLOYBOT_API_TOKEN (or http.api_token in the configuration)")
	}
	c := &server.Client{URL: url, Token: token}
	if site == "" {
		if cfg != nil && len(cfg.Sites) == 1 {
			site = cfg.Sites[0].Name
		} else {
			names, err := c.Sites(ctx)
			if err != nil {
				return nil, err
			}
			if len(names) != 1 {
				return nil, usagef("--site is required (the server has: %s)", strings.Join(names, ", "))
			}
			site = names[0]
		}
	}
	return &siteCall{remoteBackend{c}, site, pos}, nil
}

// localSite parses a command that acts on one site of the configuration
// here, never through --server: --config, --site and the flags extra adds,
// and no positional arguments.
func localSite(env Env, name string, args []string, extra func(fs *flagSetT)) (*config.Config, releases.Site, error) {
	_, cfg, s, err := localSiteFile(env, name, args, extra)
	return cfg, s, err
}

// localSiteFile is localSite that also returns the configuration file's
// path, for a command that writes into it (setup).
func localSiteFile(env Env, name string, args []string, extra func(fs *flagSetT)) (string, *config.Config, releases.Site, error) {
	fs, cfgPath := flagSet(env, name, "")
	siteName := fs.String("site", "", "the `SITE` to act on (may be left out when only one is configured)")
	if extra != nil {
		extra(fs)
	}
	pos, err := parse(fs, args)
	if err != nil {
		return "", nil, releases.Site{}, err
	}
	if len(pos) != 0 {
		return "", nil, releases.Site{}, usagef("%s takes no arguments", name)
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return "", nil, releases.Site{}, err
	}
	s, err := siteOf(cfg, *siteName)
	return *cfgPath, cfg, s, err
}

// bucketCommand parses a command that reads only the bucket (verify,
// diff: they run anywhere, CI included, and never need the store): --site,
// --json and n version arguments; it returns a service over the bucket.
// bucketCall is a parsed command that reads the bucket alone.
type bucketCall struct {
	releases.Inspect
	site releases.Site
	args []string
	json bool
}

func bucketCommand(ctx context.Context, env Env, name, posUsage string, n int, args []string) (*bucketCall, error) {
	fs, cfgPath := flagSet(env, name, posUsage)
	siteName := fs.String("site", "", "the `SITE` to act on (may be left out when only one is configured)")
	asJSON := fs.Bool("json", false, "print the result as JSON")
	pos, err := parse(fs, args)
	if err != nil {
		return nil, err
	}
	if len(pos) != n {
		return nil, usagef("%s takes %s (got %d arguments)", name, posUsage, len(pos))
	}
	for _, v := range pos {
		if err := releases.ValidateVersion(v); err != nil {
			return nil, err
		}
	}
	cfg, err := loadConfig(*cfgPath)
	if err != nil {
		return nil, err
	}
	s, err := siteOf(cfg, *siteName)
	if err != nil {
		return nil, err
	}
	a, err := newApp(ctx, env, cfg, false)
	if err != nil {
		return nil, err
	}
	return &bucketCall{releases.Inspect{Bucket: a.bucket}, s, pos, *asJSON}, nil
}
