package cli

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// setup --output writes the template without AWS (no credentials, no
// region: an AWS call would fail), to stdout or --out; it refuses
// CloudFormation for an origin-path site, and flags it cannot combine.
func TestSetupOutputTemplate(t *testing.T) {
	dir := t.TempDir()
	cfg := filepath.Join(dir, "deploybot.yaml")
	doc := "install: prod\nsites:\n  - {name: www, bucket: acme, prefix: www/, strategy: kvs}\n  - {name: blog, bucket: acme, prefix: blog/}\n"
	if err := os.WriteFile(cfg, []byte(doc), 0o644); err != nil {
		t.Fatal(err)
	}
	env := func(out, errb *bytes.Buffer) Env {
		return Env{Stdout: out, Stderr: errb, Getenv: func(string) string { return "" }}
	}
	for _, c := range []struct {
		name    string
		args    []string
		code    int
		stdout  string // in stdout
		stderr  string // in stderr
		fileHas string // in the --out file
	}{
		{"kvs cloudformation", []string{"--site", "www", "--output", "cloudformation"}, 0, `"AWS::CloudFront::KeyValueStore"`, "also holds site(s) blog", ""},
		{"origin-path terraform", []string{"--site", "blog", "--output", "terraform"}, 0, "ignore_changes = [origin]", "", ""},
		{"to a file", []string{"--site", "www", "--output", "terraform", "--out", filepath.Join(dir, "www.tf")}, 0, "", "wrote the terraform template", `resource "aws_cloudfront_key_value_store" "www"`},
		{"origin-path cloudformation", []string{"--site", "blog", "--output", "cloudformation"}, ExitUsage, "", "--output terraform", ""},
		{"unknown format", []string{"--site", "www", "--output", "pulumi"}, ExitUsage, "", "unknown template format", ""},
		{"with --apply", []string{"--site", "www", "--output", "terraform", "--apply"}, ExitUsage, "", "neither --apply nor --json", ""},
		{"--out alone", []string{"--site", "www", "--out", filepath.Join(dir, "x")}, ExitUsage, "", "--out needs --output", ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), append([]string{"setup", "--config", cfg}, c.args...), env(&out, &errb))
			if code != c.code || !strings.Contains(out.String(), c.stdout) || !strings.Contains(errb.String(), c.stderr) {
				t.Fatalf("exit %d (want %d)\nstdout %.300q\nstderr %q", code, c.code, out.String(), errb.String())
			}
			if c.fileHas != "" {
				raw, err := os.ReadFile(c.args[len(c.args)-1])
				if err != nil || !strings.Contains(string(raw), c.fileHas) {
					t.Fatalf("--out file: %v\n%.500s", err, raw)
				}
			}
			if c.name == "kvs cloudformation" {
				var v map[string]any
				if err := json.Unmarshal(out.Bytes(), &v); err != nil {
					t.Fatalf("stdout is not the JSON template: %v", err)
				}
			}
		})
	}
}
