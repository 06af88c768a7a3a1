package cli

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// A configuration error is a usage error (exit 2) naming the key: here a
// direct message's id as a site's channel, which the Slack app cannot
// check without a scope its manifest does not ask for.
func TestDMChannelIsRefusedAtLoad(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "deploybot.yaml")
	if err := os.WriteFile(cfg, []byte("sites:\n  - {name: www, bucket: b, prefix: www/, distribution_id: E1, channel: D0123ABCD}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := Run(context.Background(), []string{"iam-policy", "--config", cfg, "--role", "bot"}, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
	if code != ExitUsage || !strings.Contains(errb.String(), "sites[0].channel: \"D0123ABCD\" is a direct message's id") || !strings.Contains(errb.String(), "im:read") {
		t.Fatalf("exit %d, stderr %q", code, errb.String())
	}
}

// A time zone prefix in a cron expression, on which robfig/cron panics,
// is a configuration error naming the key: exit 2, not a crash.
func TestCronZonePrefixIsRefusedAtLoad(t *testing.T) {
	for _, c := range []struct{ line, key string }{
		{"retention: {schedule: \"CRON_TZ=UTC\"}", "sites[0].retention.schedule"},
		{"windows: [{cron: \"TZ=\", duration: 1h}]", "sites[0].windows[0].cron"},
	} {
		cfg := filepath.Join(t.TempDir(), "deploybot.yaml")
		doc := "sites:\n  - name: www\n    bucket: b\n    prefix: www/\n    distribution_id: E1\n    " + c.line + "\n"
		if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
			t.Fatal(err)
		}
		var out, errb bytes.Buffer
		code := Run(context.Background(), []string{"iam-policy", "--config", cfg, "--role", "bot"}, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
		if code != ExitUsage || !strings.Contains(errb.String(), "line 6: "+c.key) || !strings.Contains(errb.String(), "timezone") {
			t.Errorf("%s: exit %d, stderr %q", c.line, code, errb.String())
		}
	}
}
