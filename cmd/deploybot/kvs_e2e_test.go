package main_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"regexp"
	"strings"
	"testing"
	"time"
)

// A site moved onto strategy kvs with kvs-setup flips by one key write:
// promote and rollback from the command line, the stand-in's edge running
// the shipped function.

// kvsFunctionCreated is kvs-setup's line for the site's function, whose
// name carries the install name derived from the bucket and prefix (the
// test configuration sets no install key).
var kvsFunctionCreated = regexp.MustCompile(`function deploybot-[0-9a-f]{6}-www created`)

func TestKVSFromTheCommandLine(t *testing.T) {
	w := start(t, "300ms", "100ms", "--kvs", "deploybot", "--kvs-propagation", "200ms", "--pops", "3")
	if w.kvsARN == "" {
		t.Fatal("localaws printed no key value store ARN")
	}
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.must("publish", "--version", "v2", w.siteDir("v2"))
	w.must("promote", "v1")
	w.expect(2, "previews need strategy kvs", "preview", "v2")
	cfg := readFile(t, w.config)
	cfg = strings.Replace(cfg, "deploy: {poll_interval: 50ms, timeout: 1m}", "deploy: {poll_interval: 50ms, timeout: 1m, kvs_propagation: 300ms}", 1)
	cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", fmt.Sprintf("    distribution_id: E2ETEST\n    strategy: kvs\n    kvs: {arn: %q}\n    url: %q\n", w.kvsARN, w.edge), 1)
	w.write("deploybot.yaml", cfg)

	kvsSetupMovesTheLiveSite(t, w)
	link := previewLinkIsAudited(t, w)
	previewCookieShowsItsReleaseAlone(t, w, link)
	badPreviewLinksAreRefused(t, w, link)
	kvsPromoteAndRollback(t, w)
}

// noFollow leaves a redirect for the test to look at.
var noFollow = &http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}

// previewLink asks for a preview link to v2 with the given extra flags.
func previewLink(t *testing.T, w *world, args ...string) string {
	var p struct{ URL string }
	if err := json.Unmarshal([]byte(w.must(append(append([]string{"preview", "--json"}, args...), "v2")...).stdout), &p); err != nil {
		t.Fatal(err)
	}
	return p.URL
}

// kvs-setup shows its plan, then with --apply writes the key for the live
// release and has the distribution run the function; the apply is
// recorded, the plan not.
func kvsSetupMovesTheLiveSite(t *testing.T, w *world) {
	r := w.must("kvs-setup")
	if !strings.Contains(r.stdout, "--apply") || !strings.Contains(r.stdout, "cf.kvs(") || !strings.Contains(r.stdout, "import cf from 'cloudfront';") {
		t.Fatalf("kvs-setup without --apply:\n%s", r.stdout)
	}
	r = w.must("kvs-setup", "--apply")
	if !kvsFunctionCreated.MatchString(r.stdout) || !strings.Contains(r.stdout, "key www = v1 written") {
		t.Fatalf("kvs-setup --apply:\n%s", r.stdout)
	}
	if h := w.history(); len(h) != 3 || h[2].Action != "kvs-setup" || h[2].Result != "ok" || h[2].Actor != callerARN("e2e") || h[2].Door != "cli" ||
		!kvsFunctionCreated.MatchString(h[2].Detail) || !strings.Contains(h[2].Detail, "key www = v1 written") || !strings.Contains(h[2].Detail, "distribution E2ETEST runs it") {
		t.Fatalf("kvs-setup's record: %s\n%+v", trail(h), h[len(h)-1])
	}
	w.waitPage("/", "the edge to serve v1 through the function", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, "release v1<")
	})
	w.waitDeployed() // the distribution change reaches every PoP
}

// A preview gives someone a look at an unreleased build: the link is on
// the site's URL, and it is audited.
func previewLinkIsAudited(t *testing.T, w *world) string {
	link := previewLink(t, w)
	if !strings.HasPrefix(link, w.edge+"/?deploybot-preview=v2.") {
		t.Fatalf("preview link %q", link)
	}
	if h := w.must("history", "--json", "--limit", "1").stdout; !strings.Contains(h, `"action": "preview"`) || !strings.Contains(h, `"actor": "`+callerARN("e2e")+`"`) || !strings.Contains(h, `"label": "e2e"`) ||
		!strings.Contains(h, `"door": "cli"`) || !strings.Contains(h, `"detail": "v2"`) {
		t.Fatalf("the preview's audit record: %s", h)
	}
	return link
}

// A preview link shows v2 to whoever opens it; everyone else gets v1, and
// a cookie edited to name another release gets the live one.
func previewCookieShowsItsReleaseAlone(t *testing.T, w *world, link string) {
	resp, err := noFollow.Get(link)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	cookies := resp.Cookies()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/" || len(cookies) != 1 || cookies[0].Name != "deploybot-preview" {
		t.Fatalf("opening the link: %s %v", resp.Status, resp.Header)
	}
	get := func(c *http.Cookie) (int, string) {
		req, _ := http.NewRequest(http.MethodGet, w.edge+"/", nil)
		if c != nil {
			req.AddCookie(c)
		}
		resp, err := noFollow.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	if code, body := get(cookies[0]); code != 200 || !strings.Contains(body, "release v2<") {
		t.Fatalf("with the preview cookie: %d %q", code, body)
	}
	w.serves("v1")
	forged := *cookies[0]
	forged.Value = strings.Replace(forged.Value, "v2.", "v1.", 1)
	if code, body := get(&forged); code != 200 || !strings.Contains(body, "release v1<") {
		t.Fatalf("a token for another release is not honoured, the live one is served: %d %q", code, body)
	}
}

// A tampered link and an expired one are refused; so are a preview of a
// release that does not exist and one longer than the limit.
func badPreviewLinksAreRefused(t *testing.T, w *world, link string) {
	// Change the signature's last hex digit to a different one: replacing it with a
	// fixed digit leaves the link intact one time in sixteen.
	last := "0"
	if strings.HasSuffix(link, "0") {
		last = "1"
	}
	resp, err := noFollow.Get(link[:len(link)-1] + last)
	if err == nil {
		resp.Body.Close()
	}
	if err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("a tampered link: %v %v", resp, err)
	}
	short := previewLink(t, w, "--ttl", "1s")
	w.advance("2100ms") // the stand-in's clock: the link's second is over
	if resp, err = noFollow.Get(short); err != nil || resp.StatusCode != http.StatusForbidden {
		t.Fatalf("an expired link: %v %v", resp, err)
	}
	resp.Body.Close()
	w.expect(1, "no release v9", "preview", "v9")
	w.expect(2, "at most", "preview", "--ttl", "48h", "v2")
}

// A promote on kvs is a key write with no invalidation; status says where
// the site is served from, and rollback flips the key back.
func kvsPromoteAndRollback(t *testing.T, w *world) {
	began := time.Now()
	r := w.must("promote", "v2")
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
	if st["live"] != "v2" || st["origin_path"] != "v2" || st["strategy"] != "kvs" || st["drift"] != false {
		t.Fatalf("status %v", st)
	}
	if r := w.must("status"); !strings.Contains(r.stdout, `served from: key www = "v2" (strategy kvs)`) {
		t.Fatalf("status:\n%s", r.stdout)
	}
	w.must("rollback")
	w.serves("v1")
	t.Logf("kvs promote took %s", took)
}

// A site on strategy kvs from its first day: promote refuses, with nothing
// changed, until kvs-setup has run; kvs-setup works with no release live,
// and the site answers 503 "no live release" until the first promote.
func TestKVSFromDayOne(t *testing.T) {
	w := start(t, "300ms", "100ms", "--kvs", "deploybot", "--kvs-propagation", "200ms")
	cfg := readFile(t, w.config)
	cfg = strings.Replace(cfg, "deploy: {poll_interval: 50ms, timeout: 1m}", "deploy: {poll_interval: 50ms, timeout: 1m, kvs_propagation: 300ms}", 1)
	cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", fmt.Sprintf("    distribution_id: E2ETEST\n    strategy: kvs\n    kvs: {arn: %q}\n", w.kvsARN), 1)
	w.write("deploybot.yaml", cfg)
	w.must("publish", "--version", "v1", w.siteDir("v1"))

	r := w.expect(1, "run deploybot kvs-setup --site www --apply first", "promote", "v1")
	if !strings.Contains(r.stderr, "; nothing changed, live: none") {
		t.Fatalf("the refusal does not say nothing changed:\n%s", r.stderr)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(w.must("status", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if _, ok := st["last_deploy"]; !ok || st["live"] != nil || st["deploy"] != nil || st["lock"] != nil || st["last_deploy"] != nil {
		t.Fatalf("a refused promote left a trace: %v", st)
	}

	r = w.must("kvs-setup", "--apply")
	if !kvsFunctionCreated.MatchString(r.stdout) || !strings.Contains(r.stdout, "key www not written: the site has no live release yet") {
		t.Fatalf("kvs-setup --apply on a new site:\n%s", r.stdout)
	}
	w.waitPage("/", `503 "no live release" before the first promote`, func(code int, body string) bool {
		return code == 503 && body == "no live release"
	})
	w.waitDeployed() // the distribution change reaches every PoP
	r = w.must("promote", "v1")
	if !strings.Contains(r.stdout, "v1 is live") {
		t.Fatalf("the first promote:\n%s", r.stdout)
	}
	w.serves("v1")
}
