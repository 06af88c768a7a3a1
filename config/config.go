// Package config loads deploybot's YAML configuration: strict (unknown keys
// are errors), with ${VAR} expanded from the environment in values, and
// validated with the key path and line of every problem.
package config

import (
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

// Config is the whole file.
type Config struct {
	Slack     Slack     `yaml:"slack"`
	Store     Store     `yaml:"store"`
	HTTP      HTTP      `yaml:"http"`
	Hook      Hook      `yaml:"hook"`
	AWS       AWS       `yaml:"aws"`
	Deploy    Deploy    `yaml:"deploy"`
	Reconcile Reconcile `yaml:"reconcile"`
	// Install namespaces the AWS names that are unique per account
	// (functions, origin access controls, key value stores), so two
	// configurations sharing an account and site names do not share them;
	// "": derived per site from its bucket and prefix.
	Install string `yaml:"install"`
	// People link one person's identities (see access.go).
	People []Person `yaml:"people"`
	Sites  []Site   `yaml:"sites"`
}

// Reconcile tunes serve's loop that finds releases in the bucket, notices
// hand-made flips and finishes interrupted deploys.
type Reconcile struct {
	Interval Duration `yaml:"interval"`
}

type Slack struct {
	AppToken string `yaml:"app_token"`
	BotToken string `yaml:"bot_token"`
	Command  string `yaml:"command"`
	APIURL   string `yaml:"api_url"`
}

type Store struct {
	Path string `yaml:"path"`
}

type HTTP struct {
	Listen string `yaml:"listen"`
	// APIToken is the token named "api", with every role on every site.
	APIToken string `yaml:"api_token"`
	// Tokens are named API tokens, each with its roles.
	Tokens []Token `yaml:"tokens"`
}

type Hook struct {
	Secret string `yaml:"secret"`
	URL    string `yaml:"url"`
}

type AWS struct {
	Region   string `yaml:"region"`
	Endpoint string `yaml:"endpoint"`
}

// Deploy tunes flips, so that operators and tests can trade API calls for
// promptness.
type Deploy struct {
	// PollInterval is the slowest a flip polls CloudFront (at most 5s);
	// the first two minutes of a wait poll every second.
	PollInterval Duration `yaml:"poll_interval"`
	// Timeout bounds a whole flip.
	Timeout Duration `yaml:"timeout"`
	// KVSPropagation is how long a kvs flip waits for the key to reach
	// every edge location (no API reports it).
	KVSPropagation Duration `yaml:"kvs_propagation"`
	// VisibleTimeout bounds the visible phase: how long a flip watches a
	// site's url for the new release before it is called failed.
	VisibleTimeout Duration `yaml:"visible_timeout"`
}

type Site struct {
	// install is the configuration's Install, which ReleasesSite passes on.
	install        string
	Name           string   `yaml:"name"`
	Bucket         string   `yaml:"bucket"`
	Prefix         string   `yaml:"prefix"`
	DistributionID string   `yaml:"distribution_id"`
	OriginID       string   `yaml:"origin_id"`
	Strategy       string   `yaml:"strategy"`
	Channel        string   `yaml:"channel"`
	Deployers      []string `yaml:"deployers"`
	// Previewers may make preview links (beyond the deployers).
	Previewers []string  `yaml:"previewers"`
	Retention  Retention `yaml:"retention"`
	// Exclude are patterns of build paths publish leaves out, beyond its
	// defaults (.git/, .DS_Store, .env*).
	Exclude []string `yaml:"exclude"`
	// CacheRules override publish's default headers, first match wins.
	CacheRules []CacheRule `yaml:"cache_rules"`
	// SkewProtection is how many previous releases' fingerprinted assets
	// each new release carries (server-side copies); 0 turns it off.
	SkewProtection *int `yaml:"skew_protection"`
	// Health is checked through the distribution after each promote; a
	// failure rolls the site back and locks it.
	Health Health `yaml:"health"`
	// KVS is the key value store of strategy kvs.
	KVS KVS `yaml:"kvs"`
	// URL is the site's public address, for preview links.
	URL string `yaml:"url"`
	// Routing maps paths that name no file onto the release's files.
	Routing Routing `yaml:"routing"`
	// ReleaseHeader: every answer names its release in
	// x-deploybot-release, through a viewer-response function the site's
	// setup publishes; false leaves the distribution's viewer responses
	// alone. Not set: true.
	ReleaseHeader *bool `yaml:"release_header"`
	// RepoURL is where the site's source is browsed, for links to
	// commits, compares and pull requests in notices.
	RepoURL string `yaml:"repo_url"`
	// Approval makes promotes wait for other people's approval.
	Approval Approval `yaml:"approval"`
	// Windows are the times promotes are allowed (none: any time).
	Windows []Window `yaml:"windows"`
	// Freezes are times promotes are refused.
	Freezes []Freeze `yaml:"freezes"`
}

// Approval is a site's four-eyes rule.
type Approval struct {
	// Required approvals, by people other than the one who asked; 0: off.
	Required int `yaml:"required"`
	// Approvers are Slack user or user-group ids; none: the deployers.
	Approvers []string `yaml:"approvers"`
	// Timeout: an unapproved request ends after this long.
	Timeout Duration `yaml:"timeout"`
}

// Window is a deploy window: it opens at each time Cron gives, read in
// Timezone (default UTC), and stays open for Duration.
type Window struct {
	Cron     string   `yaml:"cron"`
	Duration Duration `yaml:"duration"`
	Timezone string   `yaml:"timezone"`
}

// Freeze refuses promotes from From until To: RFC 3339 times, or UTC
// dates and times (2026-12-24, 2026-12-24T18:00).
type Freeze struct {
	From   string `yaml:"from"`
	To     string `yaml:"to"`
	Reason string `yaml:"reason"`
}

// freezeTime reads a freeze's from or to.
func freezeTime(s string) (time.Time, error) {
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			return t, nil
		}
	}
	return time.Time{}, fmt.Errorf("%q is not a time (RFC 3339, or a UTC date such as 2026-12-24 or 2026-12-24T18:00)", s)
}

// Routing is a site's directory index, single-page-app fallback and 404
// page (see releases.Routing); each is a file path in the release, "" off.
type Routing struct {
	Index    string `yaml:"index"`
	Fallback string `yaml:"fallback"`
	NotFound string `yaml:"not_found"`
}

// KVS names a CloudFront KeyValueStore.
type KVS struct {
	ARN string `yaml:"arn"`
}

// Health is a site's post-promote health checks.
type Health struct {
	Checks   []HealthCheck `yaml:"checks"`
	Settle   Duration      `yaml:"settle"`
	Interval Duration      `yaml:"interval"`
	Failures int           `yaml:"failures"`
}

// HealthCheck is one URL and what it must answer.
type HealthCheck struct {
	URL      string `yaml:"url"`
	Status   int    `yaml:"status"`
	Contains string `yaml:"contains"`
}

// CacheRule sets headers for files matching a glob: a pattern without "/"
// matches the file name, one with "/" the path in the release.
type CacheRule struct {
	Match           string `yaml:"match"`
	CacheControl    string `yaml:"cache_control"`
	ContentType     string `yaml:"content_type"`
	ContentEncoding string `yaml:"content_encoding"`
}

type Retention struct {
	Keep         *int     `yaml:"keep"`
	KeepDeployed *int     `yaml:"keep_deployed"`
	MinAge       Duration `yaml:"min_age"`
	Schedule     string   `yaml:"schedule"`
	Timezone     string   `yaml:"timezone"`
	// Grace: a folder without a manifest younger than this may be an
	// upload in progress; older, it is an abandoned upload and pruned.
	Grace Duration `yaml:"grace"`
}

// Duration is a time.Duration written as "72h", "5s".
type Duration struct{ time.Duration }

// parseDuration reads a non-negative Go duration ("90s", "72h", "0s"; a
// bare "0" too, as Go reads it).
func parseDuration(s string) (time.Duration, error) {
	v, err := time.ParseDuration(s)
	if err == nil && v < 0 {
		err = errors.New("negative")
	}
	return v, err
}

func (d Duration) MarshalYAML() (any, error) { return d.String(), nil }

// Error is one configuration problem.
type Error struct {
	Key  string
	Line int
	Msg  string
}

func (e *Error) Error() string {
	var b strings.Builder
	if e.Line > 0 {
		fmt.Fprintf(&b, "line %d: ", e.Line)
	}
	if e.Key != "" {
		b.WriteString(e.Key + ": ")
	}
	b.WriteString(e.Msg)
	return b.String()
}

// Errors is every problem found, so one run shows them all.
type Errors []*Error

func (es Errors) Error() string {
	parts := make([]string, len(es))
	for i, e := range es {
		parts[i] = e.Error()
	}
	return strings.Join(parts, "\n")
}

// Defaults.
const (
	DefaultCommand        = "/site"
	DefaultStorePath      = "/var/lib/deploybot/deploybot.db"
	DefaultListen         = "127.0.0.1:8088"
	DefaultRegion         = "us-east-1"
	DefaultPollInterval   = 5 * time.Second
	DefaultTimeout        = 30 * time.Minute
	DefaultVisibleTimeout = 10 * time.Minute
	// DefaultReconcileInterval: one ListObjectsV2 per 1,000 manifests and
	// one GetDistributionConfig per site every 5 minutes costs nothing
	// noticeable and bounds how late a lost hook notice is found.
	DefaultReconcileInterval = 5 * time.Minute
	DefaultKeep              = 10
	DefaultKeepDeployed      = 3
	DefaultMinAge            = 72 * time.Hour
	DefaultSchedule          = "0 3 * * *"
	// DefaultSkewProtection: two releases back covers a visitor who
	// loaded a page before the last two flips.
	DefaultSkewProtection = 2
)

// Load reads and validates the file at path.
func Load(path string) (*Config, error) {
	raw, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("config: %w", err)
	}
	cfg, err := Parse(raw, os.LookupEnv)
	if err != nil {
		return nil, fmt.Errorf("config %s:\n%w", path, err)
	}
	return cfg, nil
}

var envRE = regexp.MustCompile(`\$\{([A-Za-z_][A-Za-z0-9_]*)\}`)

// Parse parses and validates a configuration; lookup resolves ${VAR}.
func Parse(raw []byte, lookup func(string) (string, bool)) (*Config, error) {
	body, err := parseYAML(raw)
	if err != nil {
		return nil, err
	}
	d := newDocument(lookup)
	body = d.walk(body, reflect.TypeOf(Config{}), "")
	if d.unknown {
		return nil, d.errs // the decoder would refuse the document as a whole
	}
	var cfg Config
	if err := yaml.NodeToValue(body, &cfg); err != nil {
		return nil, yamlError(err)
	}
	cfg.defaults(d)
	for i := range cfg.Sites {
		cfg.Sites[i].install = cfg.Install
	}
	if errs := cfg.validate(d); len(errs) > 0 {
		sort.SliceStable(errs, func(i, j int) bool { return errs[i].Line < errs[j].Line })
		return nil, errs
	}
	return &cfg, nil
}

// defaults fills the keys the file leaves out. A key the file sets keeps
// its value, zero included: validate decides whether zero means something
// (min_age: 0s is "no age floor") or is refused (keep: 0).
func (c *Config) defaults(d *document) {
	str := func(key string, v *string, def string) {
		if !d.set[key] {
			*v = def
		}
	}
	dur := func(key string, v *Duration, def time.Duration) {
		if !d.set[key] {
			v.Duration = def
		}
	}
	num := func(key string, v **int, def int) {
		if !d.set[key] || *v == nil {
			*v = ptr(def)
		}
	}
	str("slack.command", &c.Slack.Command, DefaultCommand)
	str("store.path", &c.Store.Path, DefaultStorePath)
	str("http.listen", &c.HTTP.Listen, DefaultListen)
	str("aws.region", &c.AWS.Region, DefaultRegion)
	dur("deploy.poll_interval", &c.Deploy.PollInterval, DefaultPollInterval)
	dur("deploy.timeout", &c.Deploy.Timeout, DefaultTimeout)
	dur("deploy.visible_timeout", &c.Deploy.VisibleTimeout, DefaultVisibleTimeout)
	dur("reconcile.interval", &c.Reconcile.Interval, DefaultReconcileInterval)
	for i := range c.Sites {
		s := &c.Sites[i]
		key := fmt.Sprintf("sites[%d]", i)
		num(key+".retention.keep", &s.Retention.Keep, DefaultKeep)
		num(key+".retention.keep_deployed", &s.Retention.KeepDeployed, DefaultKeepDeployed)
		dur(key+".retention.min_age", &s.Retention.MinAge, DefaultMinAge)
		str(key+".retention.schedule", &s.Retention.Schedule, DefaultSchedule)
		dur(key+".retention.grace", &s.Retention.Grace, releases.DefaultGrace)
		num(key+".skew_protection", &s.SkewProtection, DefaultSkewProtection)
		dur(key+".approval.timeout", &s.Approval.Timeout, releases.DefaultApprovalTimeout)
		str(key+".strategy", &s.Strategy, releases.DefaultStrategy)
		str(key+".routing.index", &s.Routing.Index, releases.DefaultRouting.Index)
		str(key+".routing.fallback", &s.Routing.Fallback, releases.DefaultRouting.Fallback)
		str(key+".routing.not_found", &s.Routing.NotFound, releases.DefaultRouting.NotFound)
		if len(s.Health.Checks) > 0 {
			dur(key+".health.settle", &s.Health.Settle, releases.DefaultHealthSettle)
			dur(key+".health.interval", &s.Health.Interval, releases.DefaultHealthInterval)
			if !d.set[key+".health.failures"] {
				s.Health.Failures = releases.DefaultHealthFailures
			}
		}
	}
}

func orQ(name string) string {
	if name == "" {
		return "(unnamed)"
	}
	return name
}

func ptr[T any](v T) *T { return &v }

// StrategyKVS is the kvs flip strategy.
const StrategyKVS = releases.StrategyKVS

var kvsARN = regexp.MustCompile(`^arn:aws[a-z-]*:cloudfront::[0-9]{12}:key-value-store/[A-Za-z0-9-]+$`)

// slackID is a Slack user (U..., W...) or user-group (S...) id.
var slackID = regexp.MustCompile(`^[UWS][A-Z0-9]{2,20}$`)

var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

// installRE keeps an install name short enough that "<install>-<site>-router"
// stays readable within CloudFront's 64 characters, and to the characters
// every account-wide name takes.
var installRE = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,22}[a-z0-9])?$`)

// dmChannelRE is the id of a direct message (D...), which Slack's
// conversations.info reads only with the im:read scope
// (https://api.slack.com/methods/conversations.info).
var dmChannelRE = regexp.MustCompile(`^D[A-Z0-9]{2,20}$`)

func (c *Config) validate(d *document) Errors {
	bad := func(key, format string, args ...any) { d.fail(key, d.line(key), format, args...) }
	// Keys whose zero means nothing are refused when the file sets them to
	// zero, rather than quietly taking the default.
	positive := func(key string, v time.Duration, why string) {
		if d.set[key] && v == 0 {
			bad(key, "must be more than 0: %s (leave the key out for the default)", why)
		}
	}
	required := func(key, v string) {
		if d.set[key] && v == "" {
			bad(key, "empty (leave the key out for the default)")
		}
	}
	if d.set["install"] && !installRE.MatchString(c.Install) {
		bad("install", "%q: an install name is 1 to 24 lower-case letters, digits or '-', such as prod or staging", c.Install)
	}
	required("slack.command", c.Slack.Command)
	required("store.path", c.Store.Path)
	required("http.listen", c.HTTP.Listen)
	required("aws.region", c.AWS.Region)
	positive("deploy.poll_interval", c.Deploy.PollInterval.Duration, "how often a flip polls CloudFront")
	positive("deploy.timeout", c.Deploy.Timeout.Duration, "how long a whole flip may take")
	positive("deploy.visible_timeout", c.Deploy.VisibleTimeout.Duration, "how long a flip watches the site's url for the new release")
	positive("deploy.kvs_propagation", c.Deploy.KVSPropagation.Duration, "how long a kvs flip waits for its key to reach every edge location")
	if c.Slack.Command != "" && !strings.HasPrefix(c.Slack.Command, "/") {
		bad("slack.command", "a slash command starts with /, got %q", c.Slack.Command)
	}
	if t := c.Slack.AppToken; t != "" && !strings.HasPrefix(t, "xapp-") {
		bad("slack.app_token", "an app-level token starts with xapp-")
	}
	if t := c.Slack.BotToken; t != "" && !strings.HasPrefix(t, "xoxb-") {
		bad("slack.bot_token", "a bot token starts with xoxb-")
	}
	switch {
	case c.Slack.AppToken != "" && c.Slack.BotToken == "":
		bad("slack.bot_token", "empty while app_token is set: set both, or neither to run without Slack")
	case c.Slack.AppToken == "" && c.Slack.BotToken != "":
		bad("slack.app_token", "empty while bot_token is set: set both, or neither to run without Slack")
	}
	if i := c.Reconcile.Interval.Duration; i < time.Second {
		bad("reconcile.interval", "at least 1s (got %s)", i)
	}
	if p := c.Deploy.PollInterval.Duration; p > 5*time.Second {
		bad("deploy.poll_interval", "at most 5s, so people hear of each phase within seconds (got %s)", p)
	}
	if len(c.Sites) == 0 {
		bad("sites", "at least one site is required")
	}
	for j, b := range c.Sites {
		for i, a := range c.Sites[:j] {
			if a.Bucket != "" && a.Bucket == b.Bucket && releases.PrefixesOverlap(a.Prefix, b.Prefix) {
				bad(fmt.Sprintf("sites[%d].prefix", j), "site %s (line %d) and site %s (line %d) share bucket %s with prefixes %q and %q, one inside the other: "+
					"each would take the other's objects for its own, and a prune of one could delete the other; give each a distinct prefix, neither inside the other (an empty prefix only for a bucket's single site)",
					orQ(b.Name), d.line(fmt.Sprintf("sites[%d]", j)), orQ(a.Name), d.line(fmt.Sprintf("sites[%d]", i)), b.Bucket, b.Prefix, a.Prefix)
			}
		}
	}
	seen := map[string]string{}
	for i, s := range c.Sites {
		key := fmt.Sprintf("sites[%d]", i)
		if s.Name == "" {
			bad(key+".name", "required")
		} else if !siteNameRE.MatchString(s.Name) {
			bad(key+".name", "%q: a site name is lower-case letters, digits, '-' or '_'", s.Name)
		} else if s.Name == "all" {
			bad(key+".name", "\"all\" names every site in freeze and unfreeze; call the site something else")
		} else if prev, dup := seen[s.Name]; dup {
			bad(key+".name", "duplicate site %q (also %s)", s.Name, prev)
		} else {
			seen[s.Name] = key
		}
		if s.Bucket == "" {
			bad(key+".bucket", "required")
		}
		if dmChannelRE.MatchString(s.Channel) {
			bad(key+".channel", "%q is a direct message's id: deploybot checks a site's channel with conversations.info, which for a DM needs the im:read scope, "+
				"and the Slack app's manifest (bot/slackbot/slack-app-manifest.yaml) does not ask for it; give a channel's id (C...) or name (#deploys)", s.Channel)
		}
		if p := s.Prefix; p != "" && (strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || strings.Contains(p, "//")) {
			bad(key+".prefix", "%q: a prefix ends with / and does not start with one, such as www/", p)
		}
		for j, p := range s.Exclude {
			if _, err := path.Match(strings.TrimSuffix(p, "/"), ""); err != nil || strings.Trim(p, "/") == "" {
				bad(fmt.Sprintf("%s.exclude[%d]", key, j), "bad pattern %q: a name such as *.map, a path such as drafts/*.html, or a folder such as private/", p)
			}
		}
		for j, r := range s.CacheRules {
			rk := fmt.Sprintf("%s.cache_rules[%d]", key, j)
			if r.Match == "" {
				bad(rk+".match", "required")
			} else if _, err := path.Match(r.Match, ""); err != nil {
				bad(rk+".match", "bad glob %q: %v", r.Match, err)
			}
			if r.CacheControl == "" && r.ContentType == "" && r.ContentEncoding == "" {
				bad(rk, "sets nothing: give cache_control, content_type or content_encoding")
			}
		}
		for j, hc := range s.Health.Checks {
			hk := fmt.Sprintf("%s.health.checks[%d]", key, j)
			if u, err := url.Parse(hc.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(hk+".url", "%q: an absolute http(s) URL through the site's domain is required", hc.URL)
			}
			if hc.Status != 0 && (hc.Status < 100 || hc.Status > 599) {
				bad(hk+".status", "%d is not an HTTP status", hc.Status)
			}
		}
		if h := s.Health; d.set[key+".health.failures"] && (h.Failures < 1 || h.Failures > 100) {
			bad(key+".health.failures", "1 to 100 failures in a row (got %d)", h.Failures)
		}
		positive(key+".health.interval", s.Health.Interval.Duration, "the pause between rounds of checks")
		if h := s.Health; h.Interval.Duration > 0 && h.Settle.Duration > 0 && h.Interval.Duration > h.Settle.Duration {
			bad(key+".health.interval", "longer than settle (%s): the checks would run once", h.Settle.Duration)
		}
		if *s.SkewProtection < 0 || *s.SkewProtection > 20 {
			bad(key+".skew_protection", "0 (off) to 20 previous releases")
		}
		switch s.Strategy {
		case releases.DefaultStrategy:
			if s.KVS.ARN != "" {
				bad(key+".kvs.arn", "set, but the strategy is %s (kvs.arn is for strategy kvs)", s.Strategy)
			}
		case StrategyKVS:
			// Empty until deploybot setup creates the store and writes it here.
			if s.KVS.ARN != "" && !kvsARN.MatchString(s.KVS.ARN) {
				bad(key+".kvs.arn", "strategy kvs needs the key value store's ARN, arn:aws:cloudfront::ACCOUNT:key-value-store/ID (got %q)", s.KVS.ARN)
			}
		default:
			bad(key+".strategy", "unknown strategy %q (known: %s, %s)", s.Strategy, releases.DefaultStrategy, StrategyKVS)
		}
		if s.URL != "" {
			if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
				bad(key+".url", "%q: the site's public address, such as https://www.example.com", s.URL)
			}
		}
		for _, rp := range [][2]string{{"index", s.Routing.Index}, {"fallback", s.Routing.Fallback}, {"not_found", s.Routing.NotFound}} {
			if name, p := rp[0], rp[1]; p != "" && !releases.ValidRoutingPath(p) {
				bad(key+".routing."+name, "%q: a file of the release, such as index.html or errors/404.html (letters, digits, ._~- and /; empty turns it off)", p)
			}
		}
		if i := s.Routing.Index; strings.Contains(i, "/") {
			bad(key+".routing.index", "%q: the index is a file name, such as index.html, found in every folder", i)
		}
		r := s.Retention
		if *r.Keep < 1 {
			bad(key+".retention.keep", "at least 1 (got %d)", *r.Keep)
		}
		if *r.KeepDeployed < 1 {
			bad(key+".retention.keep_deployed", "at least 1, so a rollback always has a target (got %d)", *r.KeepDeployed)
		}
		positive(key+".retention.grace", r.Grace.Duration, "a folder without a manifest younger than this may be an upload in progress")
		if r.Timezone != "" {
			if _, err := time.LoadLocation(r.Timezone); err != nil {
				bad(key+".retention.timezone", "unknown time zone %q", r.Timezone)
			}
		}
		if r.Schedule != "" {
			if _, err := ParseCron(r.Schedule); err != nil {
				bad(key+".retention.schedule", "site %s: bad cron expression %q: %v", s.Name, r.Schedule, err)
			}
		}
		if _, err := present.ParseRepo(s.RepoURL); err != nil {
			bad(key+".repo_url", "%v", err)
		}
		if a := s.Approval; a.Required < 0 || a.Required > 5 {
			bad(key+".approval.required", "0 (no approval) to 5 approvals (got %d)", a.Required)
		}
		if d.set[key+".approval.timeout"] && (s.Approval.Timeout.Duration < time.Minute || s.Approval.Timeout.Duration > 7*24*time.Hour) {
			bad(key+".approval.timeout", "1m to 168h (got %s)", s.Approval.Timeout.Duration)
		}
		for j, w := range s.Windows {
			wk := fmt.Sprintf("%s.windows[%d]", key, j)
			if _, err := ParseCron(w.Cron); err != nil {
				bad(wk+".cron", "when the window opens, five cron fields such as \"0 9 * * 1-5\" (the zone goes in timezone; got %q)", w.Cron)
			}
			if w.Duration.Duration <= 0 || w.Duration.Duration > 7*24*time.Hour {
				bad(wk+".duration", "how long the window stays open, above 0 and at most 168h (got %s)", w.Duration.Duration)
			}
			if w.Timezone != "" {
				if _, err := time.LoadLocation(w.Timezone); err != nil {
					bad(wk+".timezone", "unknown time zone %q (an IANA name such as Europe/Berlin)", w.Timezone)
				}
			}
		}
		for j, f := range s.Freezes {
			fk := fmt.Sprintf("%s.freezes[%d]", key, j)
			from, ferr := freezeTime(f.From)
			if ferr != nil {
				bad(fk+".from", "%v", ferr)
			}
			to, terr := freezeTime(f.To)
			if terr != nil {
				bad(fk+".to", "%v", terr)
			}
			if ferr == nil && terr == nil && !to.After(from) {
				bad(fk+".to", "the freeze ends after it starts (from %s, to %s)", f.From, f.To)
			}
			if strings.TrimSpace(f.Reason) == "" {
				bad(fk+".reason", "say why deploys are frozen; people see it when a promote is refused")
			}
		}
	}
	c.validateAccess(bad)
	return d.errs
}

// ReleasesSite turns a configured site into the domain's Site.
func (s Site) ReleasesSite() releases.Site {
	return releases.Site{Name: s.Name, Install: s.install, Bucket: s.Bucket, Prefix: s.Prefix, DistributionID: s.DistributionID,
		OriginID: s.OriginID, Strategy: s.Strategy, Channel: s.Channel, Deployers: s.Deployers, Previewers: s.Previewers,
		Retention: releases.Policy{Keep: *s.Retention.Keep, KeepDeployed: *s.Retention.KeepDeployed,
			MinAge: s.Retention.MinAge.Duration, Grace: s.Retention.Grace.Duration},
		SkewReleases: *s.SkewProtection, Health: s.Health.policy(), KVSARN: s.KVS.ARN, URL: s.URL,
		NoReleaseHeader: s.ReleaseHeader != nil && !*s.ReleaseHeader,
		Routing:         releases.Routing{Index: s.Routing.Index, Fallback: s.Routing.Fallback, NotFound: s.Routing.NotFound},
		Windows:         s.windows(), Freezes: s.freezes(), RepoURL: s.RepoURL,
		Approval: releases.Approval{Required: s.Approval.Required, Approvers: s.Approval.Approvers, Timeout: s.Approval.Timeout.Duration}}
}

// windows and freezes are the site's, as the domain takes them; Parse
// has checked them.
func (s Site) windows() []releases.Window {
	var out []releases.Window
	for _, w := range s.Windows {
		sched, err := ParseCron(w.Cron)
		if err != nil {
			continue
		}
		loc := time.UTC
		if w.Timezone != "" {
			if l, err := time.LoadLocation(w.Timezone); err == nil {
				loc = l
			}
		}
		out = append(out, releases.Window{Spec: w.Cron, Opens: sched, Duration: w.Duration.Duration, Location: loc})
	}
	return out
}

func (s Site) freezes() []releases.Freeze {
	var out []releases.Freeze
	for _, f := range s.Freezes {
		from, err1 := freezeTime(f.From)
		to, err2 := freezeTime(f.To)
		if err1 != nil || err2 != nil {
			continue
		}
		out = append(out, releases.Freeze{Site: s.Name, From: from, Until: to, Reason: f.Reason, By: releases.ConfigFreeze, At: from})
	}
	return out
}

func (h Health) policy() releases.HealthPolicy {
	p := releases.HealthPolicy{Settle: h.Settle.Duration, Interval: h.Interval.Duration, Failures: h.Failures}
	for _, c := range h.Checks {
		p.Checks = append(p.Checks, releases.HealthCheck{URL: c.URL, Status: c.Status, Contains: c.Contains})
	}
	return p
}

// Site returns the site called name.
func (c *Config) Site(name string) (Site, bool) {
	for _, s := range c.Sites {
		if s.Name == name {
			return s, true
		}
	}
	return Site{}, false
}

// Location is the time zone the site's schedule is read in (UTC unless
// retention.timezone says otherwise).
func (r Retention) Location() *time.Location {
	if r.Timezone == "" {
		return time.UTC
	}
	if l, err := time.LoadLocation(r.Timezone); err == nil {
		return l
	}
	return time.UTC
}
