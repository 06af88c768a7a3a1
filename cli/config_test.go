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
