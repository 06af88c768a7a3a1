package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/cloud"
)

func TestIAMPolicyCommand(t *testing.T) {
	cfg := filepath.Join(t.TempDir(), "deploybot.yaml")
	if err := os.WriteFile(cfg, []byte("sites:\n  - {name: www, bucket: b, prefix: www/, distribution_id: E1}\n  - {name: docs, bucket: b, prefix: docs/, distribution_id: E2}\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	run := func(args ...string) (int, string, string) {
		var out, errb bytes.Buffer
		code := Run(context.Background(), append([]string{"iam-policy", "--config", cfg}, args...), Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
		return code, out.String(), errb.String()
	}
	for _, bad := range [][]string{{}, {"--role", "admin"}, {"--role", "bot", "--account", "12345"}, {"--role", "bot", "--site", "nope"}, {"--role", "bot", "extra"}} {
		if code, _, stderr := run(bad...); code != ExitUsage || stderr == "" {
			t.Errorf("%v: exit %d, %q; want a usage error", bad, code, stderr)
		}
	}
	code, out, _ := run("--role", "bot", "--site", "docs")
	var doc cloud.PolicyDocument
	if err := json.Unmarshal([]byte(out), &doc); code != ExitOK || err != nil {
		t.Fatalf("exit %d: %v\n%s", code, err, out)
	}
	if strings.Contains(out, "www") || !strings.Contains(out, "distribution/E2") {
		t.Fatalf("--site docs printed another site's resources:\n%s", out)
	}
}
