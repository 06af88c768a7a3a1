package config

import (
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

const good = `
slack:
  app_token: ${APP}
  bot_token: ${BOT}
store:
  path: /tmp/x.db
aws:
  endpoint: http://127.0.0.1:4566
sites:
  - name: www
    bucket: example-site
    prefix: www/
    distribution_id: E2EXAMPLE
    channel: C0123
    deployers: [U012ABC, S034DEF]
    retention: {keep: 5, keep_deployed: 2, min_age: 24h, schedule: "0 3 * * *"}
  - name: docs
    bucket: docs-site
    distribution_id: E3EXAMPLE
`

func env(m map[string]string) func(string) (string, bool) {
	return func(k string) (string, bool) { v, ok := m[k]; return v, ok }
}

func TestParseGood(t *testing.T) {
	cfg, err := Parse([]byte(good), env(map[string]string{"APP": "xapp-1", "BOT": "xoxb-2: #not yaml"}))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Slack.AppToken != "xapp-1" || cfg.Slack.BotToken != "xoxb-2: #not yaml" {
		t.Fatalf("expansion: %+v", cfg.Slack)
	}
	if cfg.Slack.Command != "/site" || cfg.HTTP.Listen != DefaultListen || cfg.AWS.Region != "us-east-1" {
		t.Fatalf("defaults: %+v", cfg)
	}
	www, _ := cfg.Site("www")
	if *www.Retention.Keep != 5 || www.Retention.MinAge.Duration != 24*time.Hour || len(www.Deployers) != 2 {
		t.Fatalf("www: %+v", www)
	}
	docs, _ := cfg.Site("docs")
	if *docs.Retention.Keep != DefaultKeep || docs.Retention.Schedule != DefaultSchedule || docs.Strategy != "origin-path" {
		t.Fatalf("docs defaults: %+v", docs)
	}
	if rs := www.ReleasesSite(); rs.OriginPath("v1") != "/www/v1" {
		t.Fatalf("origin path %q", rs.OriginPath("v1"))
	}
	h, err := Parse([]byte(good+"    health:\n      checks:\n        - {url: \"https://docs.example.com/\", contains: \"<title>\"}\n        - {url: \"https://docs.example.com/api\", status: 204}\n      settle: 2m\n      failures: 3\n"), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	d, _ := h.Site("docs")
	pol := d.ReleasesSite().Health
	if len(pol.Checks) != 2 || pol.Checks[0].Contains != "<title>" || pol.Checks[1].Status != 204 || pol.Settle != 2*time.Minute || pol.Failures != 3 {
		t.Fatalf("health policy %+v", pol)
	}
}

// A site may start with only its name, bucket and prefix: deploybot
// setup creates the distribution (and for kvs the store) and writes their
// ids into the file. The install key reaches every site.
func TestParseSiteBeforeSetup(t *testing.T) {
	doc := "sites:\n  - {name: www, bucket: b, prefix: www/}\n  - {name: docs, bucket: b, prefix: docs/, strategy: kvs}\n"
	cfg, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	www, _ := cfg.Site("www")
	if rs := www.ReleasesSite(); rs.DistributionID != "" || rs.Install != "" {
		t.Fatalf("www before setup: %+v", rs)
	}
	cfg, err = Parse([]byte("install: prod\n"+doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cfg.Sites {
		if rs := s.ReleasesSite(); rs.Install != "prod" {
			t.Fatalf("site %s: install %q, want prod", s.Name, rs.Install)
		}
	}
}

// A kvs site's rollout: the defaults when left out, a zero interval kept
// as given (no hold), steps as written.
func TestParseRollout(t *testing.T) {
	doc := `sites:
  - {name: a, bucket: b, prefix: a/, strategy: kvs}
  - {name: b, bucket: b, prefix: b/, strategy: kvs, rollout: {steps: [5, 25, 75], interval: 0s}}
`
	cfg, err := Parse([]byte(doc), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	a, _ := cfg.Site("a")
	b, _ := cfg.Site("b")
	if r := a.ReleasesSite().Rollout; fmt.Sprint(r.Steps) != "[1 10 50]" || r.Interval != 10*time.Minute {
		t.Fatalf("defaults: %+v", r)
	}
	if r := b.ReleasesSite().Rollout; fmt.Sprint(r.Steps) != "[5 25 75]" || r.Interval != 0 {
		t.Fatalf("as written: %+v", r)
	}
}

func TestParseErrors(t *testing.T) {
	site := "sites:\n  - name: www\n    bucket: b\n    distribution_id: E1\n"
	cases := []struct {
		name, doc string
		want      []string // substrings of the error
	}{
		{"unknown top key", "colour: red\n" + site, []string{"line 1", "colour", "unknown key"}},
		{"unknown nested key", site + "    retention: {keeps: 3}\n", []string{"line 5", "sites[0].retention.keeps", "unknown key"}},
		{"missing bucket", "sites:\n  - name: www\n    distribution_id: E1\n", []string{"sites[0].bucket", "required", "line 2"}},
		{"missing sites", "store: {path: /x}\n", []string{"sites", "at least one"}},
		{"bad duration", site + "    retention: {min_age: 3 days}\n", []string{"line 5", "bad duration"}},
		{"bad cron", site + "    retention: {schedule: \"61 * * * *\"}\n", []string{"sites[0].retention.schedule", "line 5", "site www"}},
		{"duplicate site", site + "  - name: www\n    bucket: c\n    distribution_id: E2\n", []string{"sites[1].name", "duplicate", "line 5"}},
		{"bad prefix", site + "    prefix: /www\n", []string{"sites[0].prefix", "line 5"}},
		{"a DM as channel", site + "    channel: D0123ABCD\n", []string{"line 5: sites[0].channel", "\"D0123ABCD\" is a direct message's id", "im:read"}},
		{"slow poll", "deploy: {poll_interval: 30s}\n" + site, []string{"deploy.poll_interval", "line 1"}},
		{"bad token", "slack: {app_token: nope, bot_token: xoxb-1}\n" + site, []string{"slack.app_token", "xapp-"}},
		{"one token", "slack: {bot_token: xoxb-1}\n" + site, []string{"slack.app_token", "both"}},
		{"one token from an unset variable", "slack: {app_token: xapp-1, bot_token: \"${SLACK_BOT_TOKEN}\"}\n" + site, []string{"line 1: slack.bot_token", "${SLACK_BOT_TOKEN} is not set"}},
		{"bad site name", "sites:\n  - name: 'W W'\n    bucket: b\n    distribution_id: E\n", []string{"sites[0].name"}},
		{"token name", "http: {tokens: [{name: CI, token: 0123456789abcdef0, roles: [deployer]}]}\n" + site, []string{"http.tokens[0].name", "lower-case"}},
		{"token named api", "http: {api_token: 0123456789abcdef0, tokens: [{name: api, token: 0123456789abcdef1, roles: [deployer]}]}\n" + site, []string{"http.tokens[0].name", "taken"}},
		{"short token", "http: {tokens: [{name: ci, token: short, roles: [deployer]}]}\n" + site, []string{"http.tokens[0].token", "16"}},
		{"shared token", "http: {api_token: 0123456789abcdef0, tokens: [{name: ci, token: 0123456789abcdef0, roles: [deployer]}]}\n" + site, []string{"http.tokens[0].token", "same token as http.api_token"}},
		{"no roles", "http: {tokens: [{name: ci, token: 0123456789abcdef0}]}\n" + site, []string{"http.tokens[0].roles", "at least one"}},
		{"bad role", "http: {tokens: [{name: ci, token: 0123456789abcdef0, roles: [admin]}]}\n" + site, []string{"http.tokens[0].roles[0]", "reader, deployer, approver, previewer"}},
		{"role of an unknown site", "http: {tokens: [{name: ci, token: 0123456789abcdef0, roles: [\"deployer:docs\"]}]}\n" + site, []string{"http.tokens[0].roles[0]", "no site \"docs\""}},
		{"person of no token", "people: [{name: alice, tokens: [nope]}]\n" + site, []string{"people[0].tokens[0]", "no token"}},
		{"person without identities", "people: [{name: alice}]\n" + site, []string{"people[0]", "names no identity"}},
		{"an identity of two people", "people: [{name: alice, slack: [UALICE]}, {name: bob, slack: [UALICE]}]\n" + site, []string{"people[1].slack[0]", "alice's already"}},
		{"bad aws pattern", "people: [{name: alice, aws: [\"alice@example.com\"]}]\n" + site, []string{"people[0].aws[0]", "ARN"}},
		{"any account", "people: [{name: alice, aws: [\"arn:aws:iam::*:user/alice\"]}]\n" + site, []string{"people[0].aws[0]", "one account"}},
		{"one session of a role", "people: [{name: alice, aws: [\"arn:aws:sts::123456789012:assumed-role/Deploy/alice\"]}]\n" + site, []string{"people[0].aws[0]", "assumed-role/Deploy/*"}},
		{"unknown deployer", site + "    deployers: [alice]\n", []string{"sites[0].deployers[0]", "person of people"}},
		{"not yaml", "sites: [\n", []string{"line 1", "YAML syntax error"}},
		{"wrong type", "sites: {name: x}\n", []string{"line 1: sites: expected a list, got keys and values"}},
		{"a list for a value", site + "    channel: [a, b]\n", []string{"line 5: sites[0].channel: expected a single value, got a list"}},
		{"not a bool", site + "    release_header: yes\n", []string{"line 5: sites[0].release_header: expected true or false, got \"yes\""}},
		{"a value for keys", "store: /x\n" + site, []string{"line 1: store: expected keys and values (a mapping), got \"/x\""}},
		{"duplicate key", "store: {path: a}\nstore: {path: b}\n" + site, []string{"already defined"}},
		{"empty", "", []string{"empty"}},
		{"bad timezone", site + "    retention: {timezone: Mars/Base}\n", []string{"timezone"}},
		{"bad install", "install: Prod_1\n" + site, []string{"line 1: install", "lower-case"}},
		{"long install", "install: " + strings.Repeat("a", 25) + "\n" + site, []string{"install", "1 to 24"}},
		{"kvs bad arn", site + "    strategy: kvs\n    kvs: {arn: \"arn:aws:s3:::bucket\"}\n", []string{"sites[0].kvs.arn"}},
		{"arn without kvs", site + "    kvs: {arn: \"arn:aws:cloudfront::123456789012:key-value-store/abc\"}\n", []string{"sites[0].kvs.arn", "origin-path"}},
		{"unknown strategy", site + "    strategy: lambda\n", []string{"sites[0].strategy", "kvs"}},
		{"bad site url", site + "    url: www.example.com\n", []string{"sites[0].url"}},
		{"relative health url", site + "    health: {checks: [{url: /healthz}]}\n", []string{"sites[0].health.checks[0].url", "absolute"}},
		{"health url scheme", site + "    health: {checks: [{url: \"ftp://x/\"}]}\n", []string{"sites[0].health.checks[0].url"}},
		{"health status", site + "    health: {checks: [{url: \"https://x/\", status: 999}]}\n", []string{"sites[0].health.checks[0].status"}},
		{"health unknown key", site + "    health: {checks: [{url: \"https://x/\", expect: 200}]}\n", []string{"unknown key", "expect"}},
		{"health interval", site + "    health: {checks: [{url: \"https://x/\"}], settle: 10s, interval: 1m}\n", []string{"sites[0].health.interval", "settle"}},
		{"site called all", "sites:\n  - name: all\n    bucket: b\n    distribution_id: E\n", []string{"sites[0].name", "every site"}},
		{"approvals out of range", site + "    approval: {required: 9}\n", []string{"sites[0].approval.required", "line 5"}},
		{"approver not an id", site + "    approval: {required: 1, approvers: [alice]}\n", []string{"sites[0].approval.approvers[0]", "alice"}},
		{"approval timeout", site + "    approval: {required: 1, timeout: 10s}\n", []string{"sites[0].approval.timeout"}},
		{"rollout on origin-path", site + "    rollout: {steps: [5, 50]}\n", []string{"sites[0].rollout", "strategy kvs"}},
		{"rollout steps that shrink", site + "    strategy: kvs\n    kvs: {arn: \"arn:aws:cloudfront::1:key-value-store/x\"}\n    rollout: {steps: [10, 5]}\n", []string{"sites[0].rollout.steps", "only grow"}},
		{"rollout step of 100", site + "    strategy: kvs\n    kvs: {arn: \"arn:aws:cloudfront::1:key-value-store/x\"}\n    rollout: {steps: [50, 100]}\n", []string{"sites[0].rollout.steps", "1 to 99"}},
		{"rollout with no steps", site + "    strategy: kvs\n    kvs: {arn: \"arn:aws:cloudfront::1:key-value-store/x\"}\n    rollout: {steps: []}\n", []string{"sites[0].rollout.steps", "at least one"}},
		{"rollout interval", site + "    strategy: kvs\n    kvs: {arn: \"arn:aws:cloudfront::1:key-value-store/x\"}\n    rollout: {interval: 48h}\n", []string{"sites[0].rollout.interval"}},
		{"window cron", site + "    windows: [{cron: \"0 25 * * *\", duration: 1h}]\n", []string{"sites[0].windows[0].cron"}},
		{"window with CRON_TZ", site + "    windows: [{cron: \"CRON_TZ=Europe/Berlin 0 9 * * *\", duration: 1h}]\n", []string{"sites[0].windows[0].cron", "timezone"}},
		{"schedule with a bare CRON_TZ", site + "    retention: {schedule: \"CRON_TZ=UTC\"}\n", []string{"line 5: sites[0].retention.schedule", "timezone key"}},
		{"schedule with CRON_TZ", site + "    retention: {schedule: \"CRON_TZ=Europe/Berlin 0 3 * * *\"}\n", []string{"line 5: sites[0].retention.schedule", "timezone key"}},
		{"schedule with TZ and a tab", site + "    retention: {schedule: \"TZ=UTC\\t0 3 * * *\"}\n", []string{"line 5: sites[0].retention.schedule", "timezone key"}},
		{"window with a bare TZ", site + "    windows: [{cron: \"TZ=\", duration: 1h}]\n", []string{"line 5: sites[0].windows[0].cron", "timezone"}},
		{"window with a bare CRON_TZ", site + "    windows: [{cron: \"CRON_TZ=Asia/Tokyo\", duration: 1h}]\n", []string{"line 5: sites[0].windows[0].cron", "timezone"}},
		{"window duration", site + "    windows: [{cron: \"0 9 * * *\"}]\n", []string{"sites[0].windows[0].duration"}},
		{"window zone", site + "    windows: [{cron: \"0 9 * * *\", duration: 1h, timezone: Mars/Base}]\n", []string{"sites[0].windows[0].timezone", "Mars/Base"}},
		{"freeze backwards", site + "    freezes: [{from: 2026-12-24, to: 2026-12-20, reason: x}]\n", []string{"sites[0].freezes[0].to", "after it starts"}},
		{"freeze not a time", site + "    freezes: [{from: christmas, to: 2026-12-20, reason: x}]\n", []string{"sites[0].freezes[0].from", "christmas"}},
		{"freeze without reason", site + "    freezes: [{from: 2026-12-20, to: 2026-12-24}]\n", []string{"sites[0].freezes[0].reason"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc), env(nil))
			if err == nil {
				t.Fatal("accepted")
			}
			var es Errors
			if !errors.As(err, &es) {
				t.Fatalf("error %T is not Errors: %v", err, err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestExampleConfigParses(t *testing.T) {
	raw, err := os.ReadFile("../config.example.yaml")
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := Parse(raw, env(map[string]string{"SLACK_APP_TOKEN": "xapp-x", "SLACK_BOT_TOKEN": "xoxb-y",
		"DEPLOYBOT_CI_TOKEN": "ci-0123456789abcdef", "ALICE_API_TOKEN": "alice-0123456789abcdef", "DEPLOYBOT_API_TOKEN": "api-0123456789abcdef"}))
	if err != nil {
		t.Fatal(err)
	}
	// Who is who reaches the domain as the example writes it.
	acc := cfg.Access()
	if g := acc.Tokens["ci"]; len(g) != 1 || g[0].Role != releases.RoleDeployer || len(acc.Tokens["api"]) != len(releases.Roles) || !acc.AWSDeploys {
		t.Fatalf("tokens %+v", acc.Tokens)
	}
	if !acc.SamePerson(releases.Principal{Kind: releases.PrincipalSlack, ID: "U012ABC"}, releases.Principal{Kind: releases.PrincipalToken, ID: "alice-laptop"}) {
		t.Fatal("alice's Slack id and token are not one person")
	}
	// The guardrails reach the domain as the example writes them.
	www, _ := cfg.Site("www")
	rs := www.ReleasesSite()
	if rs.Approval.Required != 1 || rs.Approval.Timeout != 30*time.Minute || len(rs.ApproverIDs()) != 1 {
		t.Fatalf("approval %+v", rs.Approval)
	}
	if len(rs.Windows) != 1 || rs.Windows[0].Duration != 7*time.Hour || rs.Windows[0].Location.String() != "Europe/Berlin" {
		t.Fatalf("windows %+v", rs.Windows)
	}
	if len(rs.Freezes) != 1 || rs.Freezes[0].By != releases.ConfigFreeze || rs.Freezes[0].Until.Format("2006-01-02") != "2027-01-04" {
		t.Fatalf("freezes %+v", rs.Freezes)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("sites:\n  - name: www\n    bucket: b\n    distribution_id: E1\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	// robfig/cron v3.0.1 panics on a zone prefix with no field after it.
	f.Add([]byte("sites:\n  - name: www\n    bucket: b\n    distribution_id: E1\n    retention: {schedule: \"CRON_TZ=UTC\"}\n"))
	f.Add([]byte("sites:\n  - name: www\n    bucket: b\n    distribution_id: E1\n    windows: [{cron: \"TZ=\", duration: 1h}]\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := Parse(raw, env(map[string]string{"A": "${A}"}))
		if err == nil && len(cfg.Sites) == 0 {
			t.Fatal("a config without sites was accepted")
		}
	})
}

// Every key with a default: left out, it takes the default; set to zero, it
// is zero where zero means something, and refused naming the key and its
// line where it does not.
func TestDefaultsAndExplicitZeros(t *testing.T) {
	site := "sites:\n  - name: www\n    bucket: b\n    distribution_id: E1\n"
	checks := "    health:\n      checks: [{url: \"https://x/\"}]\n"
	www := func(c *Config) Site { s, _ := c.Site("www"); return s }
	cases := []struct {
		name string
		doc  string
		got  func(*Config) any
		want any      // the value when accepted
		errs []string // substrings of the error when refused
	}{
		{"min_age unset", site, func(c *Config) any { return www(c).ReleasesSite().Retention.MinAge }, DefaultMinAge, nil},
		{"min_age zero", site + "    retention: {min_age: 0s}\n", func(c *Config) any { return www(c).ReleasesSite().Retention.MinAge }, time.Duration(0), nil},
		{"min_age bare 0", site + "    retention: {min_age: 0}\n", func(c *Config) any { return www(c).ReleasesSite().Retention.MinAge }, time.Duration(0), nil},
		{"min_age null", site + "    retention: {min_age: }\n", func(c *Config) any { return www(c).ReleasesSite().Retention.MinAge }, DefaultMinAge, nil},
		{"keep unset", site, func(c *Config) any { return www(c).ReleasesSite().Retention.Keep }, DefaultKeep, nil},
		{"keep zero", site + "    retention: {keep: 0}\n", nil, nil, []string{"line 5", "sites[0].retention.keep", "at least 1"}},
		{"keep_deployed unset", site, func(c *Config) any { return www(c).ReleasesSite().Retention.KeepDeployed }, DefaultKeepDeployed, nil},
		{"keep_deployed zero", site + "    retention: {keep_deployed: 0}\n", nil, nil, []string{"line 5", "sites[0].retention.keep_deployed", "rollback"}},
		{"grace unset", site, func(c *Config) any { return www(c).ReleasesSite().Retention.Grace }, releases.DefaultGrace, nil},
		{"grace zero", site + "    retention: {grace: 0s}\n", nil, nil, []string{"line 5", "sites[0].retention.grace", "more than 0"}},
		{"schedule unset", site, func(c *Config) any { return www(c).Retention.Schedule }, DefaultSchedule, nil},
		{"schedule empty: pruned by hand only", site + "    retention: {schedule: \"\"}\n", func(c *Config) any { return www(c).Retention.Schedule }, "", nil},
		{"skew_protection unset", site, func(c *Config) any { return www(c).ReleasesSite().SkewReleases }, DefaultSkewProtection, nil},
		{"skew_protection zero: off", site + "    skew_protection: 0\n", func(c *Config) any { return www(c).ReleasesSite().SkewReleases }, 0, nil},
		{"release_header unset: on", site, func(c *Config) any { return www(c).ReleasesSite().NoReleaseHeader }, false, nil},
		{"release_header false: off", site + "    release_header: false\n", func(c *Config) any { return www(c).ReleasesSite().NoReleaseHeader }, true, nil},
		{"release_header true", site + "    release_header: true\n", func(c *Config) any { return www(c).ReleasesSite().NoReleaseHeader }, false, nil},
		{"routing unset", site, func(c *Config) any { return www(c).ReleasesSite().Routing }, releases.DefaultRouting, nil},
		{"routing not_found empty: off", site + "    routing: {not_found: \"\"}\n", func(c *Config) any { return www(c).ReleasesSite().Routing },
			releases.Routing{Index: "index.html"}, nil},
		{"routing index empty, SPA fallback", site + "    routing: {index: \"\", fallback: index.html}\n", func(c *Config) any { return www(c).ReleasesSite().Routing },
			releases.Routing{Fallback: "index.html", NotFound: "404.html"}, nil},
		{"routing index in a folder", site + "    routing: {index: docs/index.html}\n", nil, nil, []string{"line 5", "sites[0].routing.index", "file name"}},
		{"routing page climbing out", site + "    routing: {not_found: ../404.html}\n", nil, nil, []string{"line 5", "sites[0].routing.not_found"}},
		{"routing page with a quote", site + "    routing: {fallback: \"a'b.html\"}\n", nil, nil, []string{"line 5", "sites[0].routing.fallback"}},
		{"strategy unset", site, func(c *Config) any { return www(c).Strategy }, releases.DefaultStrategy, nil},
		{"strategy empty", site + "    strategy: \"\"\n", nil, nil, []string{"line 5", "sites[0].strategy"}},
		{"health settle unset", site + checks, func(c *Config) any { return www(c).ReleasesSite().Health.Settle }, releases.DefaultHealthSettle, nil},
		{"health settle zero: one round", site + checks + "      settle: 0s\n", func(c *Config) any { return www(c).ReleasesSite().Health.Settle }, time.Duration(0), nil},
		{"health interval unset", site + checks, func(c *Config) any { return www(c).ReleasesSite().Health.Interval }, releases.DefaultHealthInterval, nil},
		{"health interval zero", site + checks + "      interval: 0s\n", nil, nil, []string{"line 7", "sites[0].health.interval", "more than 0"}},
		{"health failures unset", site + checks, func(c *Config) any { return www(c).ReleasesSite().Health.Failures }, releases.DefaultHealthFailures, nil},
		{"health failures zero", site + checks + "      failures: 0\n", nil, nil, []string{"line 7", "sites[0].health.failures", "1 to 100"}},
		{"poll_interval unset", site, func(c *Config) any { return c.Deploy.PollInterval.Duration }, DefaultPollInterval, nil},
		{"poll_interval zero", "deploy: {poll_interval: 0s}\n" + site, nil, nil, []string{"line 1", "deploy.poll_interval", "more than 0"}},
		{"timeout unset", site, func(c *Config) any { return c.Deploy.Timeout.Duration }, DefaultTimeout, nil},
		{"timeout zero", "deploy:\n  timeout: 0s\n" + site, nil, nil, []string{"line 2", "deploy.timeout", "more than 0"}},
		{"kvs_propagation unset", site, func(c *Config) any { return c.Deploy.KVSPropagation.Duration }, time.Duration(0), nil},
		{"kvs_propagation zero", "deploy: {kvs_propagation: 0s}\n" + site, nil, nil, []string{"line 1", "deploy.kvs_propagation", "more than 0"}},
		{"reconcile interval unset", site, func(c *Config) any { return c.Reconcile.Interval.Duration }, DefaultReconcileInterval, nil},
		{"reconcile interval zero", "reconcile: {interval: 0s}\n" + site, nil, nil, []string{"line 1", "reconcile.interval", "at least 1s"}},
		{"command unset", site, func(c *Config) any { return c.Slack.Command }, DefaultCommand, nil},
		{"command empty", "slack: {command: \"\"}\n" + site, nil, nil, []string{"line 1", "slack.command", "empty"}},
		{"store path unset", site, func(c *Config) any { return c.Store.Path }, DefaultStorePath, nil},
		{"store path empty", "store: {path: \"\"}\n" + site, nil, nil, []string{"line 1", "store.path", "empty"}},
		{"listen unset", site, func(c *Config) any { return c.HTTP.Listen }, DefaultListen, nil},
		{"listen empty", "http: {listen: \"\"}\n" + site, nil, nil, []string{"line 1", "http.listen", "empty"}},
		{"region unset", site, func(c *Config) any { return c.AWS.Region }, DefaultRegion, nil},
		{"region empty", "aws: {region: \"\"}\n" + site, nil, nil, []string{"line 1", "aws.region", "empty"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			cfg, err := Parse([]byte(c.doc), env(nil))
			if c.errs != nil {
				if err == nil {
					t.Fatal("accepted")
				}
				for _, w := range c.errs {
					if !strings.Contains(err.Error(), w) {
						t.Errorf("error %q does not mention %q", err, w)
					}
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if got := c.got(cfg); got != c.want {
				t.Fatalf("got %v (%T), want %v (%T)", got, got, c.want, c.want)
			}
		})
	}
}

// A ${VAR} that is not set names itself when it leaves a key empty or
// unparsable; a set one reaches number keys as a number.
func TestEnvironmentVariables(t *testing.T) {
	doc := "sites:\n  - name: www\n    bucket: ${SITE_BUCKET}\n    distribution_id: E1\n    retention: {keep: \"${KEEP}\", min_age: \"${MIN_AGE}\"}\n"
	_, err := Parse([]byte(doc), env(nil))
	if err == nil {
		t.Fatal("accepted with unset variables")
	}
	for _, w := range []string{"line 3: sites[0].bucket: required (${SITE_BUCKET} is not set", "line 5: sites[0].retention.keep", "${KEEP} is not set", "${MIN_AGE} is not set"} {
		if !strings.Contains(err.Error(), w) {
			t.Errorf("error %q does not mention %q", err, w)
		}
	}
	cfg, err := Parse([]byte(doc), env(map[string]string{"SITE_BUCKET": "b", "KEEP": "4", "MIN_AGE": "0s"}))
	if err != nil {
		t.Fatal(err)
	}
	if r := cfg.Sites[0].ReleasesSite().Retention; r.Keep != 4 || r.MinAge != 0 {
		t.Fatalf("retention from the environment: %+v", r)
	}
}

// Messages name the line to edit: durations and numbers with their key,
// YAML syntax errors at the line of the mistake rather than the line
// before the block that holds it.
func TestErrorLines(t *testing.T) {
	cases := []struct{ name, doc, want string }{
		{"bad duration", "store: {path: /x}\nsites:\n  - {name: w, bucket: b, distribution_id: E}\ndeploy:\n  timeout: 30 minutes\n", `line 5: deploy.timeout: bad duration "30 minutes"`},
		{"duration list", "deploy:\n  timeout: [1s]\nsites: []\n", "line 2: deploy.timeout: expected a duration"},
		{"not a number", "sites:\n  - name: w\n    bucket: b\n    distribution_id: E\n    retention:\n      keep: ten\n", `line 6: sites[0].retention.keep: expected a whole number, got "ten"`},
		{"indentation in a list item", "sites:\n  - name: www\n    bucket: b\n   distribution_id: E\n", "line 4: YAML syntax error"},
		{"mapping after a list", "a: 1\nsites:\n  - x\n  y: 2\n", "line 4: YAML syntax error"},
		{"unclosed flow mapping", "store: {path: x\nsites: []\n", "line 2: YAML syntax error"},
		{"tab", "store:\n\tpath: x\n", "line 2: YAML syntax error"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc), env(nil))
			if err == nil || !strings.Contains(err.Error(), c.want) {
				t.Fatalf("error %v, want it to contain %q", err, c.want)
			}
		})
	}
}

// Sites sharing a bucket need prefixes that are distinct and not nested;
// an empty prefix only for a bucket's single site.
func TestPrefixesInOneBucket(t *testing.T) {
	two := func(p1, b2, p2 string) string {
		return fmt.Sprintf("sites:\n  - {name: root, bucket: b, prefix: %q, distribution_id: E1}\n  - {name: www, bucket: %s, prefix: %q, distribution_id: E2}\n", p1, b2, p2)
	}
	cases := []struct {
		name, doc string
		ok        bool
	}{
		{"empty and another", two("", "b", "www/"), false},
		{"nested", two("a/", "b", "a/b/"), false},
		{"nested, the other way", two("a/b/", "b", "a/"), false},
		{"the same", two("www/", "b", "www/"), false},
		{"both empty", two("", "b", ""), false},
		{"distinct", two("a/", "b", "ab/"), true},
		{"siblings", two("a/x/", "b", "a/y/"), true},
		{"empty, alone in its bucket", two("", "c", ""), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := Parse([]byte(c.doc), env(nil))
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if err == nil {
				t.Fatal("accepted")
			}
			for _, w := range []string{"line 3: sites[1].prefix", "site www (line 3) and site root (line 2) share bucket b"} {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error %q does not mention %q", err, w)
				}
			}
		})
	}
}

func TestExcludePatterns(t *testing.T) {
	site := "sites:\n  - name: www\n    bucket: b\n    distribution_id: E1\n"
	cfg, err := Parse([]byte(site+"    exclude: [\"*.map\", \"drafts/\"]\n"), env(nil))
	if err != nil || len(cfg.Sites[0].Exclude) != 2 {
		t.Fatalf("%+v %v", cfg, err)
	}
	if _, err := Parse([]byte(site+"    exclude: [\"[x\"]\n"), env(nil)); err == nil || !strings.Contains(err.Error(), "line 5: sites[0].exclude[0]: bad pattern") {
		t.Fatalf("bad pattern: %v", err)
	}
}

// Values reach the configuration as written: a number where a string is
// expected keeps its text, anchors and aliases are read, and a ${VAR} gives
// a number or a bool where the key takes one.
func TestValuesAsWritten(t *testing.T) {
	doc := "x-bucket: &b 1.10\n" +
		"sites:\n  - name: www\n    bucket: 1.10\n    prefix: 0123/\n    distribution_id: 0x1F\n    exclude: [012, !!str 7]\n" +
		"    retention: {keep: \"${KEEP}\", min_age: 0}\n    release_header: ${HEADER}\n"
	if _, err := Parse([]byte(doc), env(nil)); err == nil || !strings.Contains(err.Error(), "line 1: x-bucket: unknown key") {
		t.Fatalf("unknown key with an anchor: %v", err)
	}
	doc = strings.Replace(doc, "x-bucket: &b 1.10\n", "", 1)
	cfg, err := Parse([]byte(doc), env(map[string]string{"KEEP": "4", "HEADER": "false"}))
	if err != nil {
		t.Fatal(err)
	}
	s := cfg.Sites[0]
	if s.Bucket != "1.10" || s.Prefix != "0123/" || s.DistributionID != "0x1F" || strings.Join(s.Exclude, ",") != "012,7" {
		t.Fatalf("strings as written: %+v", s)
	}
	if *s.Retention.Keep != 4 || s.Retention.MinAge.Duration != 0 || s.ReleaseHeader == nil || *s.ReleaseHeader {
		t.Fatalf("numbers and bools from the environment: %+v", s)
	}
	aliases := "store: {path: &p /tmp/x.db}\n" +
		"sites:\n  - &www {name: www, bucket: *p, distribution_id: E1, retention: {min_age: &d 5h}}\n" +
		"  - {name: docs, bucket: b, prefix: docs/, distribution_id: E2, retention: {min_age: *d}}\n"
	cfg, err = Parse([]byte(aliases), env(nil))
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Sites[0].Bucket != "/tmp/x.db" || cfg.Sites[1].Retention.MinAge.Duration != 5*time.Hour {
		t.Fatalf("aliases: %+v", cfg.Sites)
	}
	for _, bad := range []struct{ doc, want string }{
		{"sites: &s [*s]\n", "line 1: sites[0]: expected keys and values"},
		{"sites:\n  - {name: www, bucket: *nope, distribution_id: E1}\n", "line 2: sites[0].bucket: *nope: no anchor &nope before it"},
		{"store: &s {path: *s}\nsites: []\n", "line 1: store.path: expected a single value"},
	} {
		if _, err := Parse([]byte(bad.doc), env(nil)); err == nil || !strings.Contains(err.Error(), bad.want) {
			t.Errorf("%q: error %v, want %q", bad.doc, err, bad.want)
		}
	}
}

// ParseCron is the one way into robfig/cron: five fields or a descriptor,
// no zone prefix (the library panics on one with nothing after it).
func TestParseCron(t *testing.T) {
	for _, spec := range []string{"0 3 * * *", "0 9 * * 1-5", "@daily", "@every 1h"} {
		if _, err := ParseCron(spec); err != nil {
			t.Errorf("%q: %v", spec, err)
		}
	}
	for _, spec := range []string{"", "CRON_TZ=UTC", "TZ=", "CRON_TZ=", "TZ=UTC\t0 3 * * *", "CRON_TZ=Europe/Berlin 0 3 * * *", "61 * * * *", "0 3 * *", "every day", "@every -"} {
		if _, err := ParseCron(spec); err == nil {
			t.Errorf("%q accepted", spec)
		}
	}
}
