package config

import (
	"errors"
	"os"
	"strings"
	"testing"
	"time"
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
		{"slow poll", "deploy: {poll_interval: 30s}\n" + site, []string{"deploy.poll_interval", "line 1"}},
		{"bad token", "slack: {app_token: nope, bot_token: xoxb-1}\n" + site, []string{"slack.app_token", "xapp-"}},
		{"one token", "slack: {bot_token: xoxb-1}\n" + site, []string{"both"}},
		{"bad site name", "sites:\n  - name: 'W W'\n    bucket: b\n    distribution_id: E\n", []string{"sites[0].name"}},
		{"not yaml", "sites: [\n", []string{"yaml"}},
		{"wrong type", "sites: {name: x}\n", []string{"cannot unmarshal"}},
		{"duplicate key", "store: {path: a}\nstore: {path: b}\n" + site, []string{"already defined"}},
		{"empty", "", []string{"empty"}},
		{"bad timezone", site + "    retention: {timezone: Mars/Base}\n", []string{"timezone"}},
		{"kvs without arn", site + "    strategy: kvs\n", []string{"sites[0].kvs.arn", "strategy kvs needs"}},
		{"kvs bad arn", site + "    strategy: kvs\n    kvs: {arn: \"arn:aws:s3:::bucket\"}\n", []string{"sites[0].kvs.arn"}},
		{"arn without kvs", site + "    kvs: {arn: \"arn:aws:cloudfront::123456789012:key-value-store/abc\"}\n", []string{"sites[0].kvs.arn", "origin-path"}},
		{"unknown strategy", site + "    strategy: lambda\n", []string{"sites[0].strategy", "kvs"}},
		{"bad site url", site + "    url: www.example.com\n", []string{"sites[0].url"}},
		{"relative health url", site + "    health: {checks: [{url: /healthz}]}\n", []string{"sites[0].health.checks[0].url", "absolute"}},
		{"health url scheme", site + "    health: {checks: [{url: \"ftp://x/\"}]}\n", []string{"sites[0].health.checks[0].url"}},
		{"health status", site + "    health: {checks: [{url: \"https://x/\", status: 999}]}\n", []string{"sites[0].health.checks[0].status"}},
		{"health unknown key", site + "    health: {checks: [{url: \"https://x/\", expect: 200}]}\n", []string{"unknown key", "expect"}},
		{"health interval", site + "    health: {checks: [{url: \"https://x/\"}], settle: 10s, interval: 1m}\n", []string{"sites[0].health.interval", "settle"}},
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
	if _, err := Parse(raw, env(map[string]string{"SLACK_APP_TOKEN": "xapp-x", "SLACK_BOT_TOKEN": "xoxb-y"})); err != nil {
		t.Fatal(err)
	}
}

func FuzzParse(f *testing.F) {
	f.Add([]byte(good))
	f.Add([]byte("sites:\n  - name: www\n    bucket: b\n    distribution_id: E1\n"))
	f.Add([]byte("a: &x {b: *x}\n"))
	f.Fuzz(func(t *testing.T, raw []byte) {
		cfg, err := Parse(raw, env(map[string]string{"A": "${A}"}))
		if err == nil && len(cfg.Sites) == 0 {
			t.Fatal("a config without sites was accepted")
		}
	})
}
