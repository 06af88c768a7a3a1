// Package config loads deploybot's YAML configuration: strict (unknown keys
// are errors), with ${VAR} expanded from the environment in values, and
// validated with the key path and line of every problem.
package config

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"net/url"
	"os"
	"path"
	"reflect"
	"regexp"
	"strings"
	"time"

	"github.com/robfig/cron/v3"
	"gopkg.in/yaml.v3"

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
	Sites     []Site    `yaml:"sites"`
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
	Listen   string `yaml:"listen"`
	APIToken string `yaml:"api_token"`
}

type Hook struct {
	Secret string `yaml:"secret"`
	URL    string `yaml:"url"`
}

type AWS struct {
	Region   string `yaml:"region"`
	Endpoint string `yaml:"endpoint"`
}

// Deploy tunes flips. Not in the first contract; added so that operators
// and tests can trade API calls for promptness.
type Deploy struct {
	// PollInterval is how often a flip polls CloudFront; at most 5s.
	PollInterval Duration `yaml:"poll_interval"`
	// Timeout bounds a whole flip.
	Timeout Duration `yaml:"timeout"`
	// KVSPropagation is how long a kvs flip waits for the key to reach
	// every edge location (no API reports it).
	KVSPropagation Duration `yaml:"kvs_propagation"`
}

type Site struct {
	Name           string    `yaml:"name"`
	Bucket         string    `yaml:"bucket"`
	Prefix         string    `yaml:"prefix"`
	DistributionID string    `yaml:"distribution_id"`
	OriginID       string    `yaml:"origin_id"`
	Strategy       string    `yaml:"strategy"`
	Channel        string    `yaml:"channel"`
	Deployers      []string  `yaml:"deployers"`
	Retention      Retention `yaml:"retention"`
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

func (d *Duration) UnmarshalYAML(n *yaml.Node) error {
	if n.Kind != yaml.ScalarNode {
		return &Error{Line: n.Line, Msg: "expected a duration such as 30s or 72h"}
	}
	v, err := time.ParseDuration(n.Value)
	if err != nil || v < 0 {
		return &Error{Line: n.Line, Msg: fmt.Sprintf("bad duration %q (use a value such as 30s, 5m or 72h)", n.Value)}
	}
	d.Duration = v
	return nil
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
	DefaultCommand      = "/site"
	DefaultStorePath    = "/var/lib/deploybot/deploybot.db"
	DefaultListen       = "127.0.0.1:8088"
	DefaultRegion       = "us-east-1"
	DefaultPollInterval = 5 * time.Second
	DefaultTimeout      = 30 * time.Minute
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
	var doc yaml.Node
	dec := yaml.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&doc); errors.Is(err, io.EOF) {
		return nil, Errors{{Msg: "the file is empty"}}
	} else if err != nil {
		return nil, yamlError(err)
	}
	if len(doc.Content) == 0 {
		return nil, Errors{{Msg: "the file is empty"}}
	}
	root := doc.Content[0]
	lines := map[string]int{}
	var errs Errors
	checkKeys(root, reflect.TypeOf(Config{}), "", lines, &errs)
	if len(errs) > 0 {
		return nil, errs
	}
	expand(root, lookup)
	var cfg Config
	if err := root.Decode(&cfg); err != nil {
		return nil, yamlError(err)
	}
	cfg.defaults()
	if errs := cfg.validate(lines); len(errs) > 0 {
		return nil, errs
	}
	return &cfg, nil
}

func yamlError(err error) error {
	var ce *Error
	if errors.As(err, &ce) {
		return Errors{ce}
	}
	var te *yaml.TypeError
	if errors.As(err, &te) {
		var errs Errors
		for _, m := range te.Errors {
			errs = append(errs, &Error{Msg: m})
		}
		return errs
	}
	return Errors{{Msg: err.Error()}}
}

// checkKeys walks the document against the Go types, reporting keys no
// field takes, and records the line of every key path for validation.
func checkKeys(n *yaml.Node, t reflect.Type, path string, lines map[string]int, errs *Errors) {
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	if n.Kind == yaml.AliasNode && n.Alias != nil {
		n = n.Alias
	}
	switch {
	case t == reflect.TypeOf(Duration{}):
		return
	case t.Kind() == reflect.Struct && n.Kind == yaml.MappingNode:
		fields := map[string]reflect.Type{}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("yaml"), ",")
			fields[name] = f.Type
		}
		for i := 0; i+1 < len(n.Content); i += 2 {
			k, v := n.Content[i], n.Content[i+1]
			key := join(path, k.Value)
			ft, ok := fields[k.Value]
			if !ok {
				*errs = append(*errs, &Error{Key: key, Line: k.Line, Msg: "unknown key"})
				continue
			}
			lines[key] = k.Line
			checkKeys(v, ft, key, lines, errs)
		}
	case t.Kind() == reflect.Slice && n.Kind == yaml.SequenceNode:
		for i, item := range n.Content {
			key := fmt.Sprintf("%s[%d]", path, i)
			lines[key] = item.Line
			checkKeys(item, t.Elem(), key, lines, errs)
		}
	}
}

func join(path, key string) string {
	if path == "" {
		return key
	}
	return path + "." + key
}

// expand replaces ${VAR} in every scalar value. Values, not the raw text,
// are expanded, so a secret with YAML-special characters cannot change the
// document's structure.
func expand(n *yaml.Node, lookup func(string) (string, bool)) {
	if n.Kind == yaml.ScalarNode && strings.Contains(n.Value, "${") {
		n.Value = envRE.ReplaceAllStringFunc(n.Value, func(m string) string {
			v, _ := lookup(m[2 : len(m)-1])
			return v
		})
		if n.Tag == "!!null" || n.Tag == "" {
			n.Tag = "!!str"
		}
	}
	for _, c := range n.Content {
		expand(c, lookup)
	}
}

func (c *Config) defaults() {
	if c.Slack.Command == "" {
		c.Slack.Command = DefaultCommand
	}
	if c.Store.Path == "" {
		c.Store.Path = DefaultStorePath
	}
	if c.HTTP.Listen == "" {
		c.HTTP.Listen = DefaultListen
	}
	if c.AWS.Region == "" {
		c.AWS.Region = DefaultRegion
	}
	if c.Deploy.PollInterval.Duration == 0 {
		c.Deploy.PollInterval.Duration = DefaultPollInterval
	}
	if c.Reconcile.Interval.Duration == 0 {
		c.Reconcile.Interval.Duration = DefaultReconcileInterval
	}
	if c.Deploy.Timeout.Duration == 0 {
		c.Deploy.Timeout.Duration = DefaultTimeout
	}
	for i := range c.Sites {
		r := &c.Sites[i].Retention
		if r.Keep == nil {
			r.Keep = ptr(DefaultKeep)
		}
		if r.KeepDeployed == nil {
			r.KeepDeployed = ptr(DefaultKeepDeployed)
		}
		if r.MinAge.Duration == 0 {
			r.MinAge.Duration = DefaultMinAge
		}
		if r.Schedule == "" {
			r.Schedule = DefaultSchedule
		}
		if r.Grace.Duration == 0 {
			r.Grace.Duration = releases.DefaultGrace
		}
		if c.Sites[i].SkewProtection == nil {
			c.Sites[i].SkewProtection = ptr(DefaultSkewProtection)
		}
		if c.Sites[i].Strategy == "" {
			c.Sites[i].Strategy = releases.DefaultStrategy
		}
	}
}

func ptr[T any](v T) *T { return &v }

// StrategyKVS is the kvs flip strategy.
const StrategyKVS = releases.StrategyKVS

var kvsARN = regexp.MustCompile(`^arn:aws[a-z-]*:cloudfront::[0-9]{12}:key-value-store/[A-Za-z0-9-]+$`)

var siteNameRE = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]{0,62}$`)

func (c *Config) validate(lines map[string]int) Errors {
	var errs Errors
	bad := func(key, format string, args ...any) {
		line, k := 0, key
		for k != "" {
			if l, ok := lines[k]; ok {
				line = l
				break
			}
			i := strings.LastIndexAny(k, ".[")
			if i < 0 {
				break
			}
			k = k[:i]
		}
		errs = append(errs, &Error{Key: key, Line: line, Msg: fmt.Sprintf(format, args...)})
	}
	if !strings.HasPrefix(c.Slack.Command, "/") {
		bad("slack.command", "a slash command starts with /, got %q", c.Slack.Command)
	}
	if t := c.Slack.AppToken; t != "" && !strings.HasPrefix(t, "xapp-") {
		bad("slack.app_token", "an app-level token starts with xapp-")
	}
	if t := c.Slack.BotToken; t != "" && !strings.HasPrefix(t, "xoxb-") {
		bad("slack.bot_token", "a bot token starts with xoxb-")
	}
	if (c.Slack.AppToken == "") != (c.Slack.BotToken == "") {
		bad("slack", "set both app_token and bot_token, or neither")
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
	seen := map[string]string{}
	for i, s := range c.Sites {
		key := fmt.Sprintf("sites[%d]", i)
		if s.Name == "" {
			bad(key+".name", "required")
		} else if !siteNameRE.MatchString(s.Name) {
			bad(key+".name", "%q: a site name is lower-case letters, digits, '-' or '_'", s.Name)
		} else if prev, dup := seen[s.Name]; dup {
			bad(key+".name", "duplicate site %q (also %s)", s.Name, prev)
		} else {
			seen[s.Name] = key
		}
		if s.Bucket == "" {
			bad(key+".bucket", "required")
		}
		if s.DistributionID == "" {
			bad(key+".distribution_id", "required")
		}
		if p := s.Prefix; p != "" && (strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || strings.Contains(p, "//")) {
			bad(key+".prefix", "%q: a prefix ends with / and does not start with one, such as www/", p)
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
		if h := s.Health; h.Failures < 0 || h.Failures > 100 {
			bad(key+".health.failures", "1 to 100 failures in a row")
		}
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
			if !kvsARN.MatchString(s.KVS.ARN) {
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
		r := s.Retention
		if *r.Keep < 1 {
			bad(key+".retention.keep", "at least 1")
		}
		if *r.KeepDeployed < 1 {
			bad(key+".retention.keep_deployed", "at least 1, so a rollback always has a target")
		}
		if r.Timezone != "" {
			if _, err := time.LoadLocation(r.Timezone); err != nil {
				bad(key+".retention.timezone", "unknown time zone %q", r.Timezone)
			}
		}
		if _, err := CronParser.Parse(r.Schedule); err != nil {
			bad(key+".retention.schedule", "site %s: bad cron expression %q: %v", s.Name, r.Schedule, err)
		}
	}
	return errs
}

// CronParser reads retention schedules: five fields, or descriptors such
// as @daily.
var CronParser = cron.NewParser(cron.Minute | cron.Hour | cron.Dom | cron.Month | cron.Dow | cron.Descriptor)

// ReleasesSite turns a configured site into the domain's Site.
func (s Site) ReleasesSite() releases.Site {
	return releases.Site{Name: s.Name, Bucket: s.Bucket, Prefix: s.Prefix, DistributionID: s.DistributionID,
		OriginID: s.OriginID, Strategy: s.Strategy, Channel: s.Channel, Deployers: s.Deployers,
		Retention: releases.Policy{Keep: *s.Retention.Keep, KeepDeployed: *s.Retention.KeepDeployed,
			MinAge: s.Retention.MinAge.Duration, Grace: s.Retention.Grace.Duration},
		SkewReleases: *s.SkewProtection, Health: s.Health.policy(), KVSARN: s.KVS.ARN, URL: s.URL}
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
