package main_test

import (
	"encoding/json"
	"fmt"
	"strings"
	"testing"
	"time"
)

// A site moved onto strategy kvs with kvs-setup flips by one key write:
// promote and rollback from the command line, the stand-in's edge running
// the shipped function.
func TestKVSFromTheCommandLine(t *testing.T) {
	w := start(t, "300ms", "100ms", "--kvs", "deploybot", "--kvs-propagation", "200ms", "--pops", "3")
	if w.kvsARN == "" {
		t.Fatal("localaws printed no key value store ARN")
	}
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.must("publish", "--version", "v2", w.siteDir("v2"))
	w.must("promote", "v1")
	cfg := readFile(t, w.config)
	cfg = strings.Replace(cfg, "deploy: {poll_interval: 50ms, timeout: 1m}", "deploy: {poll_interval: 50ms, timeout: 1m, kvs_propagation: 300ms}", 1)
	cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", fmt.Sprintf("    distribution_id: E2ETEST\n    strategy: kvs\n    kvs: {arn: %q}\n", w.kvsARN), 1)
	w.write("deploybot.yaml", cfg)

	r := w.must("kvs-setup")
	if !strings.Contains(r.stdout, "--apply") || !strings.Contains(r.stdout, "cf.kvs(") || !strings.Contains(r.stdout, "import cf from 'cloudfront';") {
		t.Fatalf("kvs-setup without --apply:\n%s", r.stdout)
	}
	r = w.must("kvs-setup", "--apply")
	if !strings.Contains(r.stdout, "function deploybot-www created") || !strings.Contains(r.stdout, "key www = v1 written") {
		t.Fatalf("kvs-setup --apply:\n%s", r.stdout)
	}
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := w.page("/")
		if code == 200 && strings.Contains(body, "release v1<") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edge never served v1 through the function: %d %q", code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
	time.Sleep(500 * time.Millisecond) // the distribution change reaches every PoP

	began := time.Now()
	r = w.must("promote", "v2")
	took := time.Since(began)
	for _, want := range []string{"key", "v2 is live"} {
		if !strings.Contains(r.stdout, want) {
			t.Fatalf("promote output lacks %q:\n%s", want, r.stdout)
		}
	}
	if strings.Contains(r.stdout, "nvalidat") {
		t.Fatalf("a kvs flip invalidated:\n%s", r.stdout)
	}
	w.serves("v2")
	var st map[string]any
	if err := json.Unmarshal([]byte(w.must("status", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st["live"] != "v2" || st["origin_path"] != "v2" || st["drift"] != false {
		t.Fatalf("status %v", st)
	}
	w.must("rollback")
	w.serves("v1")
	t.Logf("kvs promote took %s", took)
}
