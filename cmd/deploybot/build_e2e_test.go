package main_test

import (
	"encoding/json"
	"strings"
	"testing"
)

// What CI knows reaches versions --json: from the flags, and from a CI's
// own environment when the flags say nothing; a bad flag is a usage error.
func TestPublishRecordsWhatCIKnows(t *testing.T) {
	w := start(t, "100ms", "100ms")
	w.must("publish", "--site", "www", "--version", "v1", "--commit", "0123abcd", "--branch", "main",
		"--ci-url", "https://ci.example.com/runs/1", "--pull-request", "42", w.siteDir("v1"))
	saved := w.env
	w.env = append(append([]string(nil), saved...), "GITHUB_ACTIONS=true", "GITHUB_SHA=4567cdef", "GITHUB_REF_NAME=release",
		"GITHUB_SERVER_URL=https://github.com", "GITHUB_REPOSITORY=acme/www", "GITHUB_RUN_ID=99", "GITHUB_REF=refs/heads/release")
	w.must("publish", "--site", "www", "--version", "v2", w.siteDir("v2"))
	w.env = saved
	w.expect(2, "git does not allow", "publish", "--site", "www", "--version", "v3", "--branch", "a b", w.siteDir("v1"))
	w.expect(2, "its number", "publish", "--site", "www", "--version", "v3", "--pull-request", "x", w.siteDir("v1"))

	var vs []map[string]any
	if err := json.Unmarshal([]byte(w.must("versions", "--json").stdout), &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 {
		t.Fatalf("versions %v", vs)
	}
	got := func(v map[string]any) string {
		return strings.Join([]string{v["version"].(string), str(v["commit"]), str(v["branch"]), str(v["ci_url"]), str(v["pull_request"])}, " ")
	}
	if g := got(vs[0]); g != "v2 4567cdef release https://github.com/acme/www/actions/runs/99 " {
		t.Fatalf("v2 from the environment: %q", g)
	}
	if g := got(vs[1]); g != "v1 0123abcd main https://ci.example.com/runs/1 42" {
		t.Fatalf("v1 from the flags: %q", g)
	}
}

func str(v any) string {
	s, _ := v.(string)
	return s
}
