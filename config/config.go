// Package config loads deploybot's YAML configuration: strict (unknown keys
// are errors), with ${VAR} expanded from the environment in values, and
// validated with the key path and line of every problem.
package config

import (
	"errors"
	"fmt"
	"os"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/goccy/go-yaml"

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
	// Rollout is the site's gradual promote (strategy kvs).
	Rollout Rollout `yaml:"rollout"`
}

// Rollout is a site's gradual promote: the percent of visitors at each
// step and how long each step holds.
type Rollout struct {
	Steps    []int    `yaml:"steps"`
	Interval Duration `yaml:"interval"`
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
		dur(key+".rollout.interval", &s.Rollout.Interval, releases.DefaultRolloutInterval)
		if !d.set[key+".rollout.steps"] {
			s.Rollout.Steps = append([]int(nil), releases.DefaultRolloutSteps...)
		}
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
		Approval: releases.Approval{Required: s.Approval.Required, Approvers: s.Approval.Approvers, Timeout: s.Approval.Timeout.Duration},
		Rollout:  releases.RolloutPolicy{Steps: s.Rollout.Steps, Interval: s.Rollout.Interval.Duration}}
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
