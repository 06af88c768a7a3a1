package main_test

import (
	"fmt"
	"net/http"
	"regexp"
	"strings"
	"testing"
)

// Every answer of the stand-in's edge names the release it came from, in
// the metadata publish stamps on each object, renamed x-deploybot-release
// once setup has put the site's viewer-response function on the
// distribution; after the flip, promote
// watches the site's url until visitors get the new release, and says
// when. On origin-path the phase follows the invalidation; on kvs it takes
// the place of the fixed wait, which stays its floor.
func TestVisibleFromTheCommandLine(t *testing.T) {
	w := start(t, "300ms", "200ms", "--kvs", "deploybot", "--kvs-propagation", "1s", "--pops", "3")
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.must("publish", "--version", "v2", w.siteDir("v2"))
	cfg := readFile(t, w.config)
	cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", fmt.Sprintf("    distribution_id: E2ETEST\n    url: %q\n", w.edge), 1)
	w.write("deploybot.yaml", cfg)

	visibleLine := regexp.MustCompile(`(?m)^  visible +done in [0-9.]+s: visitors get (v\d) since \d\d:\d\d:\d\d UTC, [0-9.]+m?s after the flip$`)
	r := w.must("promote", "v1")
	if m := visibleLine.FindStringSubmatch(r.stdout); m == nil || m[1] != "v1" {
		t.Fatalf("promote v1 on origin-path does not say when visitors got it:\n%s", r.stdout)
	}
	if !strings.Contains(r.stdout, "invalidate-wait") || strings.Index(r.stdout, "invalidate-wait") > strings.Index(r.stdout, "  visible") {
		t.Fatalf("the visible phase should follow the invalidation:\n%s", r.stdout)
	}
	resp, err := http.Get(w.edge + "/assets/app.0123abcd.css")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Amz-Meta-Deploybot-Release"); got != "v1" {
		t.Fatalf("an asset through the edge names release %q, want v1 (headers %v)", got, resp.Header)
	}
	// routing-setup adds the viewer-response function that gives the
	// stamp its short name, on cached copies too.
	r = w.must("routing-setup", "--apply")
	if !strings.Contains(r.stdout, "every answer names its release in x-deploybot-release") {
		t.Fatalf("routing-setup does not say it set the release header up:\n%s", r.stdout)
	}
	for _, path := range []string{"/assets/app.0123abcd.css", "/"} {
		resp, err = http.Get(w.edge + path)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if got, meta := resp.Header.Get("X-Deploybot-Release"), resp.Header.Get("X-Amz-Meta-Deploybot-Release"); got != "v1" || meta != "" {
			t.Fatalf("after routing-setup %s names release %q (x-amz-meta %q), want v1 under the short name only (headers %v)", path, got, meta, resp.Header)
		}
	}

	// kvs: the same release names, and a fixed wait turned into a watch.
	cfg = readFile(t, w.config)
	cfg = strings.Replace(cfg, "deploy: {poll_interval: 50ms, timeout: 1m}", "deploy: {poll_interval: 50ms, timeout: 1m, kvs_propagation: 1s}", 1)
	cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", fmt.Sprintf("    distribution_id: E2ETEST\n    strategy: kvs\n    kvs: {arn: %q}\n", w.kvsARN), 1)
	w.write("deploybot.yaml", cfg)
	w.must("kvs-setup", "--apply")
	w.waitPage("/", "the edge to serve v1 through the function", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, "release v1<")
	})
	w.waitDeployed() // the distribution change reaches every PoP
	r = w.must("promote", "v2")
	m := visibleLine.FindStringSubmatch(r.stdout)
	if m == nil || m[1] != "v2" {
		t.Fatalf("promote v2 on kvs does not say when visitors got it:\n%s", r.stdout)
	}
	if strings.Contains(r.stdout, "key-propagate") {
		t.Fatalf("on a site with a url the fixed wait gives way to the visible phase:\n%s", r.stdout)
	}
	var secs float64
	if _, err := fmt.Sscanf(regexp.MustCompile(`visible +done in ([0-9.]+)s`).FindStringSubmatch(r.stdout)[1], "%g", &secs); err != nil || secs < 1 {
		t.Fatalf("the visible phase took %gs, want at least the 1s floor (kvs_propagation):\n%s", secs, r.stdout)
	}
	t.Logf("promote v2 on kvs:\n%s", r.stdout)
	w.serves("v2")
	resp, err = http.Get(w.edge + "/")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if got := resp.Header.Get("X-Deploybot-Release"); got != "v2" {
		t.Fatalf("the kvs site's page names release %q, want v2 (headers %v)", got, resp.Header)
	}
}
