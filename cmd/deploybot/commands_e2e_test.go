package main_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
)

func TestPruneFromTheCommandLine(t *testing.T) {
	w := start(t, "50ms", "50ms")
	cfg := readFile(t, w.config)
	w.write("deploybot.yaml", strings.Replace(cfg, "    distribution_id: E2ETEST\n",
		"    distribution_id: E2ETEST\n    retention: {keep: 2, keep_deployed: 1, min_age: 1ms, schedule: \"@daily\"}\n", 1))
	for _, v := range []string{"v1", "v2", "v3", "v4"} {
		w.must("publish", "--version", v, w.siteDir(v))
	}
	w.must("promote", "v4")
	w.must("pin", "v1", "--reason", "first launch")
	var rep map[string]any
	if err := json.Unmarshal([]byte(w.must("prune", "--dry-run", "--json").stdout), &rep); err != nil {
		t.Fatal(err)
	}
	if del := rep["deleted"].([]any); len(del) != 1 || del[0].(map[string]any)["version"] != "v2" || rep["dry_run"] != true {
		t.Fatalf("dry run: %v", rep)
	}
	r := w.must("prune")
	if !strings.Contains(r.stdout, "deleted 1 release(s)") || !strings.Contains(r.stdout, "v1") || !strings.Contains(r.stdout, "kept: pinned") {
		t.Fatalf("prune output:\n%s", r.stdout)
	}
	w.expect(1, "no manifest", "promote", "v2")
	var vs []map[string]any
	_ = json.Unmarshal([]byte(w.must("versions", "--json").stdout), &vs)
	for _, v := range vs {
		if (v["version"] == "v2") != (v["pruned"] == true) {
			t.Fatalf("versions: %v", vs)
		}
		pin, _ := v["pin"].(map[string]any)
		if _, ok := v["pin"]; !ok || (v["version"] == "v1") != (pin != nil) || pin != nil && (pin["reason"] != "first launch" || pin["by"] != callerARN("e2e")) {
			t.Fatalf("versions --json shows pins wrong: %v", vs)
		}
	}
	if r := w.must("versions"); !regexp.MustCompile(`(?m)^v1\s+pinned\s`).MatchString(r.stdout) || !strings.Contains(r.stdout, "v1 pinned by "+callerARN("e2e")+" since ") ||
		!strings.Contains(r.stdout, ": first launch") {
		t.Fatalf("versions does not show the pin and its reason:\n%s", r.stdout)
	}
	w.must("unpin", "v1")
	w.expect(1, "not pinned", "unpin", "v1")
	w.serves("v4")

	bad := w.write("badcron.yaml", strings.Replace(readFile(t, w.config), `schedule: "@daily"`, `schedule: "every day"`, 1))
	w.expect(2, "site www: bad cron expression", "prune", "--config", bad)
}

func TestVerifyAndDamagedRelease(t *testing.T) {
	w := start(t, "50ms", "50ms")
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.must("publish", "--version", "v2", w.siteDir("v2"))
	if r := w.must("verify", "v2"); !strings.Contains(r.stdout, "all 2 files present") {
		t.Fatalf("verify: %s", r.stdout)
	}
	// Someone deletes a file of v2 from the bucket.
	s3c, _, err := cloud.NewClients(context.Background(), cloud.Settings{Region: "us-east-1", Endpoint: w.api, Credentials: cloud.StaticCredentials("a", "b")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.DeleteObject(context.Background(), &s3.DeleteObjectInput{Bucket: aws.String("example-site"), Key: aws.String("www/v2/assets/app.0123abcd.css")}); err != nil {
		t.Fatal(err)
	}
	w.expect(1, "missing: assets/app.0123abcd.css", "verify", "v2")
	w.expect(1, "refusing to promote v2", "promote", "v2")
	w.must("promote", "v1")
	w.serves("v1")
	w.must("promote", "--no-verify", "v2")
	w.serves("v2")
}

func TestDiffFromTheCommandLine(t *testing.T) {
	w := start(t, "300ms", "200ms")
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.write("v2/docs/new.html", "<p>new page</p>")
	w.must("publish", "--version", "v2", w.siteDir("v2"))
	r := w.must("diff", "--json", "v1", "v2")
	var d struct {
		Site, From, To string
		Added          []struct{ Path string }
		Removed        []struct{ Path string }
		Changed        []struct {
			Path    string
			Size    int64
			OldSize int64 `json:"old_size"`
		}
		Unchanged  int
		BytesAdded int64 `json:"bytes_added"`
	}
	if err := json.Unmarshal([]byte(r.stdout), &d); err != nil {
		t.Fatalf("%v: %s", err, r.stdout)
	}
	if d.Site != "www" || d.From != "v1" || d.To != "v2" || len(d.Added) != 1 || d.Added[0].Path != "docs/new.html" ||
		len(d.Removed) != 0 || len(d.Changed) != 2 || d.Unchanged != 0 || d.BytesAdded != 15 {
		t.Fatalf("diff %+v", d)
	}
	r = w.must("diff", "v2", "v1")
	if !strings.Contains(r.stdout, "www v2 → v1: 0 added (+0 B), 1 removed (−15 B), 2 changed") || !strings.Contains(r.stdout, "  - docs/new.html (15 B)") {
		t.Fatalf("diff text:\n%s", r.stdout)
	}
	w.expect(1, "no release v9", "diff", "v1", "v9")
	w.expect(2, "diff takes A B", "diff", "v1")
	w.expect(2, "invalid version", "diff", "v1", "../v2")
}

// A promote whose release fails its health checks through the edge is
// rolled back by deploybot, and the site is locked so that nobody
// promotes it again by accident.
func TestHealthCheckRollsBackABrokenRelease(t *testing.T) {
	w := start(t, "200ms", "100ms")
	cfg := readFile(t, w.config)
	cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", fmt.Sprintf("    distribution_id: E2ETEST\n    health: {checks: [{url: %q, contains: \"release\"}], settle: 1s, interval: 100ms}\n", w.edge+"/"), 1)
	w.write("deploybot.yaml", cfg)
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.write("broken/index.html", "<h1>Internal error</h1>")
	w.must("publish", "--version", "v2", filepath.Join(w.dir, "broken"))
	r := w.must("promote", "v1")
	if !strings.Contains(r.stdout, "health") {
		t.Fatalf("the promote did not report its health checks:\n%s", r.stdout)
	}
	r = w.expect(1, "rolled back to v1 automatically", "promote", "v2")
	if !strings.Contains(r.stderr, `lacks "release"`) {
		t.Fatalf("the failure does not say what failed: %s", r.stderr)
	}
	st := w.status()
	lock, _ := st["lock"].(map[string]any)
	if st["live"] != "v1" || lock == nil || lock["holder"] != "deploybot" || !strings.HasPrefix(fmt.Sprint(lock["reason"]), "auto-rollback") {
		t.Fatalf("after the automatic rollback: %v", st)
	}
	w.serves("v1")
	w.expect(1, "auto-rollback", "promote", "v2")
	// Without Slack, the command line unlocks (and locks).
	if r := w.must("unlock"); !strings.Contains(r.stdout, "unlocked www (locked by deploybot") {
		t.Fatalf("unlock: %s", r.stdout)
	}
	if r := w.must("unlock"); !strings.Contains(r.stdout, "www was not locked") {
		t.Fatalf("second unlock: %s", r.stdout)
	}
	w.must("lock", "freeze", "for", "the", "launch")
	w.expect(1, "locked by "+callerARN("e2e"), "promote", "v2")
	w.expect(2, "REASON", "lock")
	w.must("unlock")
	w.must("rollback", "v1") // v1 is live: a no-op, but no longer refused
}

// An address that is taken is a usage error (exit 2) naming the flag or
// key to change, in every command that listens.
func TestBusyPortIsAUsageError(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	busy := ln.Addr().String()
	w := start(t, "100ms", "100ms")
	w.expect(2, "--edge "+busy+": cannot listen there (address already in use)", "dev", "--data", t.TempDir(), "--edge", busy)
	w.expect(2, "--listen "+busy+": cannot listen there (address already in use)", "localaws", "--data", t.TempDir(), "--listen", busy, "--edge", "127.0.0.1:0")
	w.serveConfig(busy)
	w.expect(2, "http.listen "+busy+": cannot listen there (address already in use)", "serve")
	w.expect(2, "--listen "+busy+": cannot listen there (address already in use)", "serve", "--listen", busy)
	w.expect(2, "--listen is empty", "serve", "--listen", "")
	w.env = append(w.env, "DEPLOYBOT_LISTEN="+busy)
	w.expect(2, "DEPLOYBOT_LISTEN "+busy+": cannot listen there (address already in use)", "serve")
}
