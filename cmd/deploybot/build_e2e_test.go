package main_test

import (
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
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

// Published from a git checkout, a release records its commit history,
// and diff says how many commits one release is ahead of another.
func TestDiffCountsCommitsOfAGitCheckout(t *testing.T) {
	w := start(t, "100ms", "100ms")
	repo := t.TempDir()
	gitIn := func(args ...string) string {
		t.Helper()
		cmd := exec.Command("git", append([]string{"-C", repo}, args...)...)
		cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
			"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
		out, err := cmd.CombinedOutput()
		if err != nil {
			t.Fatalf("git %v: %v\n%s", args, err, out)
		}
		return strings.TrimSpace(string(out))
	}
	gitIn("init", "-q")
	build := filepath.Join(repo, "public")
	var commits []string
	for i := range 4 {
		if err := os.MkdirAll(build, 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(filepath.Join(build, "index.html"), []byte(fmt.Sprintf("<h1>%d</h1>", i)), 0o644); err != nil {
			t.Fatal(err)
		}
		gitIn("add", ".")
		gitIn("commit", "-q", "-m", fmt.Sprint("change ", i))
		commits = append(commits, gitIn("rev-parse", "HEAD"))
		if i == 0 || i == 3 {
			w.must("publish", "--site", "www", "--version", fmt.Sprintf("v%d", i), "--commit", commits[i], build)
		}
	}
	r := w.must("diff", "v0", "v3")
	if !strings.Contains(r.stdout, "www v0 → v3: 3 commit(s), 0 added") {
		t.Fatalf("diff:\n%s", r.stdout)
	}
	var d map[string]any
	if err := json.Unmarshal([]byte(w.must("diff", "--json", "v0", "v3").stdout), &d); err != nil || d["commits"] != float64(3) {
		t.Fatalf("diff --json: %v %v", d, err)
	}
}
