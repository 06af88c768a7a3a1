package config

import (
	"fmt"
	"net/url"
	"path"
	"regexp"
	"strings"
	"time"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

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

// validator checks a parsed configuration against its document, which
// says which keys the file set and on which line; each problem is
// recorded with its key and line, in the order of the checks below.
type validator struct {
	c *Config
	d *document
}

func (v *validator) bad(key, format string, args ...any) {
	v.d.fail(key, v.d.line(key), format, args...)
}

// positive refuses a key whose zero means nothing when the file sets it
// to zero, rather than quietly taking the default.
func (v *validator) positive(key string, val time.Duration, why string) {
	if v.d.set[key] && val == 0 {
		v.bad(key, "must be more than 0: %s (leave the key out for the default)", why)
	}
}

// required refuses a key the file sets to empty.
func (v *validator) required(key, val string) {
	if v.d.set[key] && val == "" {
		v.bad(key, "empty (leave the key out for the default)")
	}
}

func (c *Config) validate(d *document) Errors {
	v := &validator{c: c, d: d}
	v.global()
	v.sites()
	c.validateAccess(v.bad)
	return d.errs
}

// global checks the keys outside sites.
func (v *validator) global() {
	if v.d.set["install"] && !installRE.MatchString(v.c.Install) {
		v.bad("install", "%q: an install name is 1 to 24 lower-case letters, digits or '-', such as prod or staging", v.c.Install)
	}
	v.required("slack.command", v.c.Slack.Command)
	v.required("store.path", v.c.Store.Path)
	v.required("http.listen", v.c.HTTP.Listen)
	v.required("aws.region", v.c.AWS.Region)
	v.positive("deploy.poll_interval", v.c.Deploy.PollInterval.Duration, "how often a flip polls CloudFront")
	v.positive("deploy.timeout", v.c.Deploy.Timeout.Duration, "how long a whole flip may take")
	v.positive("deploy.visible_timeout", v.c.Deploy.VisibleTimeout.Duration, "how long a flip watches the site's url for the new release")
	v.positive("deploy.kvs_propagation", v.c.Deploy.KVSPropagation.Duration, "how long a kvs flip waits for its key to reach every edge location")
	if v.c.Slack.Command != "" && !strings.HasPrefix(v.c.Slack.Command, "/") {
		v.bad("slack.command", "a slash command starts with /, got %q", v.c.Slack.Command)
	}
	if t := v.c.Slack.AppToken; t != "" && !strings.HasPrefix(t, "xapp-") {
		v.bad("slack.app_token", "an app-level token starts with xapp-")
	}
	if t := v.c.Slack.BotToken; t != "" && !strings.HasPrefix(t, "xoxb-") {
		v.bad("slack.bot_token", "a bot token starts with xoxb-")
	}
	switch {
	case v.c.Slack.AppToken != "" && v.c.Slack.BotToken == "":
		v.bad("slack.bot_token", "empty while app_token is set: set both, or neither to run without Slack")
	case v.c.Slack.AppToken == "" && v.c.Slack.BotToken != "":
		v.bad("slack.app_token", "empty while bot_token is set: set both, or neither to run without Slack")
	}
	if i := v.c.Reconcile.Interval.Duration; i < time.Second {
		v.bad("reconcile.interval", "at least 1s (got %s)", i)
	}
	if p := v.c.Deploy.PollInterval.Duration; p > 5*time.Second {
		v.bad("deploy.poll_interval", "at most 5s, so people hear of each phase within seconds (got %s)", p)
	}
}

// sites checks the sites: each alone, and no two sharing their objects.
func (v *validator) sites() {
	if len(v.c.Sites) == 0 {
		v.bad("sites", "at least one site is required")
	}
	for j, b := range v.c.Sites {
		for i, a := range v.c.Sites[:j] {
			if a.Bucket != "" && a.Bucket == b.Bucket && releases.PrefixesOverlap(a.Prefix, b.Prefix) {
				v.bad(fmt.Sprintf("sites[%d].prefix", j), "site %s (line %d) and site %s (line %d) share bucket %s with prefixes %q and %q, one inside the other: "+
					"each would take the other's objects for its own, and a prune of one could delete the other; give each a distinct prefix, neither inside the other (an empty prefix only for a bucket's single site)",
					orQ(b.Name), v.d.line(fmt.Sprintf("sites[%d]", j)), orQ(a.Name), v.d.line(fmt.Sprintf("sites[%d]", i)), b.Bucket, b.Prefix, a.Prefix)
			}
		}
	}
	seen := map[string]string{}
	for i, s := range v.c.Sites {
		key := fmt.Sprintf("sites[%d]", i)
		v.siteBasics(key, s, seen)
		v.siteFiles(key, s)
		v.siteHealth(key, s)
		v.siteFlip(key, s)
		v.siteRetention(key, s)
		v.siteGuards(key, s)
		v.siteRollout(key, s)
	}
}

// siteBasics checks a site's name (unique: seen holds the names so
// far), bucket, channel and prefix.
func (v *validator) siteBasics(key string, s Site, seen map[string]string) {
	if s.Name == "" {
		v.bad(key+".name", "required")
	} else if !siteNameRE.MatchString(s.Name) {
		v.bad(key+".name", "%q: a site name is lower-case letters, digits, '-' or '_'", s.Name)
	} else if s.Name == "all" {
		v.bad(key+".name", "\"all\" names every site in freeze and unfreeze; call the site something else")
	} else if prev, dup := seen[s.Name]; dup {
		v.bad(key+".name", "duplicate site %q (also %s)", s.Name, prev)
	} else {
		seen[s.Name] = key
	}
	if s.Bucket == "" {
		v.bad(key+".bucket", "required")
	}
	if dmChannelRE.MatchString(s.Channel) {
		v.bad(key+".channel", "%q is a direct message's id: deploybot checks a site's channel with conversations.info, which for a DM needs the im:read scope, "+
			"and the Slack app's manifest (bot/slackbot/slack-app-manifest.yaml) does not ask for it; give a channel's id (C...) or name (#deploys)", s.Channel)
	}
	if p := s.Prefix; p != "" && (strings.HasPrefix(p, "/") || !strings.HasSuffix(p, "/") || strings.Contains(p, "//")) {
		v.bad(key+".prefix", "%q: a prefix ends with / and does not start with one, such as www/", p)
	}
}

// siteFiles checks what a publish leaves out and its cache rules.
func (v *validator) siteFiles(key string, s Site) {
	for j, p := range s.Exclude {
		if _, err := path.Match(strings.TrimSuffix(p, "/"), ""); err != nil || strings.Trim(p, "/") == "" {
			v.bad(fmt.Sprintf("%s.exclude[%d]", key, j), "bad pattern %q: a name such as *.map, a path such as drafts/*.html, or a folder such as private/", p)
		}
	}
	for j, r := range s.CacheRules {
		rk := fmt.Sprintf("%s.cache_rules[%d]", key, j)
		if r.Match == "" {
			v.bad(rk+".match", "required")
		} else if _, err := path.Match(r.Match, ""); err != nil {
			v.bad(rk+".match", "bad glob %q: %v", r.Match, err)
		}
		if r.CacheControl == "" && r.ContentType == "" && r.ContentEncoding == "" {
			v.bad(rk, "sets nothing: give cache_control, content_type or content_encoding")
		}
	}
}

// siteHealth checks the health checks run after a promote.
func (v *validator) siteHealth(key string, s Site) {
	for j, hc := range s.Health.Checks {
		hk := fmt.Sprintf("%s.health.checks[%d]", key, j)
		if u, err := url.Parse(hc.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.bad(hk+".url", "%q: an absolute http(s) URL through the site's domain is required", hc.URL)
		}
		if hc.Status != 0 && (hc.Status < 100 || hc.Status > 599) {
			v.bad(hk+".status", "%d is not an HTTP status", hc.Status)
		}
	}
	if h := s.Health; v.d.set[key+".health.failures"] && (h.Failures < 1 || h.Failures > 100) {
		v.bad(key+".health.failures", "1 to 100 failures in a row (got %d)", h.Failures)
	}
	v.positive(key+".health.interval", s.Health.Interval.Duration, "the pause between rounds of checks")
	if h := s.Health; h.Interval.Duration > 0 && h.Settle.Duration > 0 && h.Interval.Duration > h.Settle.Duration {
		v.bad(key+".health.interval", "longer than settle (%s): the checks would run once", h.Settle.Duration)
	}
}

// siteFlip checks how the site flips and serves: skew protection,
// strategy, url and routing.
func (v *validator) siteFlip(key string, s Site) {
	if *s.SkewProtection < 0 || *s.SkewProtection > 20 {
		v.bad(key+".skew_protection", "0 (off) to 20 previous releases")
	}
	switch s.Strategy {
	case releases.DefaultStrategy:
		if s.KVS.ARN != "" {
			v.bad(key+".kvs.arn", "set, but the strategy is %s (kvs.arn is for strategy kvs)", s.Strategy)
		}
	case StrategyKVS:
		// Empty until deploybot setup creates the store and writes it here.
		if s.KVS.ARN != "" && !kvsARN.MatchString(s.KVS.ARN) {
			v.bad(key+".kvs.arn", "strategy kvs needs the key value store's ARN, arn:aws:cloudfront::ACCOUNT:key-value-store/ID (got %q)", s.KVS.ARN)
		}
	default:
		v.bad(key+".strategy", "unknown strategy %q (known: %s, %s)", s.Strategy, releases.DefaultStrategy, StrategyKVS)
	}
	if s.URL != "" {
		if u, err := url.Parse(s.URL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			v.bad(key+".url", "%q: the site's public address, such as https://www.example.com", s.URL)
		}
	}
	for _, rp := range [][2]string{{"index", s.Routing.Index}, {"fallback", s.Routing.Fallback}, {"not_found", s.Routing.NotFound}} {
		if name, p := rp[0], rp[1]; p != "" && !releases.ValidRoutingPath(p) {
			v.bad(key+".routing."+name, "%q: a file of the release, such as index.html or errors/404.html (letters, digits, ._~- and /; empty turns it off)", p)
		}
	}
	if i := s.Routing.Index; strings.Contains(i, "/") {
		v.bad(key+".routing.index", "%q: the index is a file name, such as index.html, found in every folder", i)
	}
}

// siteRetention checks what prune keeps and when it runs, and the repo.
func (v *validator) siteRetention(key string, s Site) {
	r := s.Retention
	if *r.Keep < 1 {
		v.bad(key+".retention.keep", "at least 1 (got %d)", *r.Keep)
	}
	if *r.KeepDeployed < 1 {
		v.bad(key+".retention.keep_deployed", "at least 1, so a rollback always has a target (got %d)", *r.KeepDeployed)
	}
	v.positive(key+".retention.grace", r.Grace.Duration, "a folder without a manifest younger than this may be an upload in progress")
	if r.Timezone != "" {
		if _, err := time.LoadLocation(r.Timezone); err != nil {
			v.bad(key+".retention.timezone", "unknown time zone %q", r.Timezone)
		}
	}
	if r.Schedule != "" {
		if _, err := ParseCron(r.Schedule); err != nil {
			v.bad(key+".retention.schedule", "site %s: bad cron expression %q: %v", s.Name, r.Schedule, err)
		}
	}
	if _, err := present.ParseRepo(s.RepoURL); err != nil {
		v.bad(key+".repo_url", "%v", err)
	}
}

// siteRollout checks the gradual promote: steps that only grow, within
// 1 to 99 percent, a hold of at most a day, and a strategy that can
// share (kvs).
func (v *validator) siteRollout(key string, s Site) {
	set := v.d.set[key+".rollout.steps"] || v.d.set[key+".rollout.interval"]
	if set && s.Strategy != releases.StrategyKVS {
		v.bad(key+".rollout", "a gradual promote sends a share of visitors to the candidate, which strategy %s cannot: it needs strategy kvs", s.Strategy)
	}
	if why := (releases.RolloutPolicy{Steps: s.Rollout.Steps}).Validate(); why != "" {
		v.bad(key+".rollout.steps", "%s (got %v)", why, s.Rollout.Steps)
	}
	if i := s.Rollout.Interval.Duration; i < 0 || i > 24*time.Hour {
		v.bad(key+".rollout.interval", "how long each step holds, 0s to 24h (got %s)", i)
	}
}

// siteGuards checks approvals, deploy windows and freezes.
func (v *validator) siteGuards(key string, s Site) {
	if a := s.Approval; a.Required < 0 || a.Required > 5 {
		v.bad(key+".approval.required", "0 (no approval) to 5 approvals (got %d)", a.Required)
	}
	if v.d.set[key+".approval.timeout"] && (s.Approval.Timeout.Duration < time.Minute || s.Approval.Timeout.Duration > 7*24*time.Hour) {
		v.bad(key+".approval.timeout", "1m to 168h (got %s)", s.Approval.Timeout.Duration)
	}
	for j, w := range s.Windows {
		wk := fmt.Sprintf("%s.windows[%d]", key, j)
		if _, err := ParseCron(w.Cron); err != nil {
			v.bad(wk+".cron", "when the window opens, five cron fields such as \"0 9 * * 1-5\" (the zone goes in timezone; got %q)", w.Cron)
		}
		if w.Duration.Duration <= 0 || w.Duration.Duration > 7*24*time.Hour {
			v.bad(wk+".duration", "how long the window stays open, above 0 and at most 168h (got %s)", w.Duration.Duration)
		}
		if w.Timezone != "" {
			if _, err := time.LoadLocation(w.Timezone); err != nil {
				v.bad(wk+".timezone", "unknown time zone %q (an IANA name such as Europe/Berlin)", w.Timezone)
			}
		}
	}
	for j, f := range s.Freezes {
		fk := fmt.Sprintf("%s.freezes[%d]", key, j)
		from, ferr := freezeTime(f.From)
		if ferr != nil {
			v.bad(fk+".from", "%v", ferr)
		}
		to, terr := freezeTime(f.To)
		if terr != nil {
			v.bad(fk+".to", "%v", terr)
		}
		if ferr == nil && terr == nil && !to.After(from) {
			v.bad(fk+".to", "the freeze ends after it starts (from %s, to %s)", f.From, f.To)
		}
		if strings.TrimSpace(f.Reason) == "" {
			v.bad(fk+".reason", "say why deploys are frozen; people see it when a promote is refused")
		}
	}
}
