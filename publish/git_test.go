package publish

import (
	"context"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
)

// git runs git in dir, failing the test on an error.
func git(t *testing.T, dir string, args ...string) string {
	t.Helper()
	cmd := exec.Command("git", append([]string{"-C", dir}, args...)...)
	cmd.Env = append(os.Environ(), "GIT_AUTHOR_NAME=t", "GIT_AUTHOR_EMAIL=t@example.com", "GIT_COMMITTER_NAME=t",
		"GIT_COMMITTER_EMAIL=t@example.com", "GIT_CONFIG_GLOBAL=/dev/null", "GIT_CONFIG_SYSTEM=/dev/null")
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("git %v: %v\n%s", args, err, out)
	}
	return strings.TrimSpace(string(out))
}

func TestGitAncestors(t *testing.T) {
	repo := t.TempDir()
	git(t, repo, "init", "-q")
	var commits []string
	for i := range 3 {
		if err := os.WriteFile(filepath.Join(repo, "f"), []byte{byte('a' + i)}, 0o644); err != nil {
			t.Fatal(err)
		}
		git(t, repo, "add", "f")
		git(t, repo, "commit", "-q", "-m", "c")
		commits = append(commits, git(t, repo, "rev-parse", "HEAD"))
	}
	build := filepath.Join(repo, "public")
	if err := os.MkdirAll(build, 0o755); err != nil {
		t.Fatal(err)
	}
	got := GitAncestors(context.Background(), build, commits[2])
	want := []string{commits[2][:12], commits[1][:12], commits[0][:12]}
	if strings.Join(got, ",") != strings.Join(want, ",") {
		t.Fatalf("ancestors %v, want %v", got, want)
	}
	if got := GitAncestors(context.Background(), build, commits[1]); len(got) != 2 {
		t.Fatalf("ancestors of the middle commit %v", got)
	}
	for name, c := range map[string][2]string{
		"not a checkout":  {t.TempDir(), commits[2]},
		"unknown commit":  {build, strings.Repeat("e", 40)},
		"not a commit id": {build, "HEAD"},
		"an option":       {build, "--all"},
	} {
		if got := GitAncestors(context.Background(), c[0], c[1]); got != nil {
			t.Errorf("%s: %v", name, got)
		}
	}
}
