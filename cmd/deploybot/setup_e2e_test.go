package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// A new user's path, through the binary, from a site the account has
// nothing of to a live release: check fails naming setup; setup plans,
// applies and writes the distribution's id into the configuration
// (keeping its comments); a second apply changes nothing; check passes,
// simulating the caller's permissions; publish and promote; the new
// distribution serves the release. Every call but setup's is held against
// the bot's and CI's policies (checkCallsAgainstPolicy).
func TestSetupCheckPublishPromote(t *testing.T) {
	w := start(t, "200ms", "100ms")
	w.write("deploybot.yaml", fmt.Sprintf(`store: {path: %q}
aws: {endpoint: %q}
install: e2e
deploy: {poll_interval: 50ms, timeout: 1m}
people:
  - {name: e2e, aws: [%q]}
sites:
  # the marketing site, set up by deploybot setup
  - name: fresh
    bucket: fresh-site
    prefix: www/
    deployers: [e2e]
`, filepath.Join(w.dir, "db", "deploybot.db"), w.api, callerARN("e2e")))

	w.expect(1, "deploybot setup --site fresh --apply", "check", "--site", "fresh")
	plan := w.must("setup", "--site", "fresh")
	if !strings.Contains(plan.stdout, "create") || !strings.Contains(plan.stdout, "--apply") {
		t.Fatalf("setup's plan:\n%s", plan.stdout)
	}
	// An apply that fails part way (CloudFront answers 500 to every
	// attempt at the distribution) is recorded failed, with how far it got.
	w.fault(`{"error_rate":1,"only":"cloudfront CreateDistribution"}`)
	// The store is empty and the site's bucket is not there yet: nothing
	// to rebuild, and nothing said of it.
	if r := w.expect(1, "distribution", "setup", "--site", "fresh", "--apply"); strings.Contains(r.stderr, "rebuilt") {
		t.Errorf("setup --apply of a new site speaks of a rebuild:\n%s", r.stderr)
	}
	w.fault(`{}`)
	var rep struct {
		DistributionID string            `json:"distribution_id"`
		Domain         string            `json:"domain"`
		Record         map[string]string `json:"record"`
	}
	r := w.must("setup", "--site", "fresh", "--apply", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &rep); err != nil || rep.DistributionID == "" || rep.Domain == "" {
		t.Fatalf("setup --apply --json: %v\n%s", err, r.stdout)
	}
	cfg, err := os.ReadFile(w.config)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(cfg), `distribution_id: "`+rep.DistributionID+`"`) || !strings.Contains(string(cfg), "# the marketing site") {
		t.Fatalf("setup did not record the distribution in the configuration, keeping its comments:\n%s", cfg)
	}
	if again := w.must("setup", "--site", "fresh", "--apply"); !strings.Contains(again.stdout, "nothing to change") {
		t.Fatalf("a second setup --apply:\n%s", again.stdout)
	}
	// Each apply is one record, the caller's, through the command line;
	// the plans are none.
	h := w.history("--site", "fresh")
	setup := callerARN("e2e") + ":setup:"
	if got := trail(h); got != setup+"failed "+setup+"ok "+setup+"ok" {
		t.Fatalf("history after the setups: %s", got)
	}
	if d := h[0].Detail; h[0].Door != "cli" || !strings.Contains(d, "(it got as far as: create bucket fresh-site;") || !strings.HasSuffix(d, "create distribution)") {
		t.Errorf("the failed apply's record: %+v", h[0])
	}
	if d := h[1].Detail; !strings.Contains(d, "create distribution") || strings.Contains(d, "create bucket fresh-site") {
		t.Errorf("the apply that finished: %+v", h[1])
	}
	if h[2].Detail != "nothing to change" {
		t.Errorf("the apply that changed nothing: %+v", h[2])
	}
	// The records are in the bucket's history, the failed apply's too: a
	// lost store comes back with them.
	if err := os.RemoveAll(filepath.Join(w.dir, "db")); err != nil {
		t.Fatal(err)
	}
	if got := trail(w.history("--site", "fresh")); got != setup+"failed "+setup+"ok "+setup+"ok deploybot:rebuild:ok" {
		t.Fatalf("history rebuilt from the bucket: %s", got)
	}
	chk := w.must("check", "--site", "fresh")
	if !strings.Contains(chk.stdout, "OK   permissions: "+callerARN("e2e")+" has every permission of the bot policy") {
		t.Fatalf("check after setup:\n%s", chk.stdout)
	}

	w.must("publish", "--site", "fresh", "--version", "v1", w.siteDir("v1"))
	w.must("promote", "--site", "fresh", "--reason", "first release", "v1")
	deadline := time.Now().Add(10 * time.Second)
	for {
		req, _ := http.NewRequest(http.MethodGet, w.edge+"/", nil)
		req.Host = rep.Domain
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode == 200 && strings.Contains(string(body), "release v1<") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the distribution setup made answers %d %q after promote", resp.StatusCode, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}
