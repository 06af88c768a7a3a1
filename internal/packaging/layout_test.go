package packaging

import (
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
)

// The layout in CONTRIBUTING.md is the tree: every directory it names
// exists, and every top-level directory and every internal/ package is
// named.
func TestContributingLayoutMatchesTheTree(t *testing.T) {
	doc := read(t, "CONTRIBUTING.md")
	start := strings.Index(doc, "## Layout")
	if start < 0 {
		t.Fatal("CONTRIBUTING.md has no Layout section")
	}
	block := doc[start:]
	block = block[strings.Index(block, "```")+3:]
	block = block[:strings.Index(block, "```")]
	named := map[string]bool{}
	for _, m := range regexp.MustCompile(`(?m)^([a-z][a-z0-9/]*/)\s`).FindAllStringSubmatch(block, -1) {
		named[m[1]] = true
		if _, err := os.Stat(filepath.Join("..", "..", m[1])); err != nil {
			t.Errorf("the layout names %s, which does not exist", m[1])
		}
	}
	root := filepath.Join("..", "..")
	var want []string
	entries, err := os.ReadDir(root)
	if err != nil {
		t.Fatal(err)
	}
	// Build output the .gitignore keeps out of the tree (/bin/, GoReleaser's
	// /dist/) is not part of the layout.
	ignored := map[string]bool{}
	for _, line := range strings.Split(read(t, ".gitignore"), "\n") {
		if name, ok := strings.CutPrefix(strings.TrimSpace(line), "/"); ok && strings.HasSuffix(name, "/") {
			ignored[strings.TrimSuffix(name, "/")] = true
		}
	}
	for _, e := range entries {
		if e.IsDir() && !strings.HasPrefix(e.Name(), ".") && e.Name() != "internal" && e.Name() != "cmd" && !ignored[e.Name()] {
			want = append(want, e.Name()+"/")
		}
	}
	internal, err := os.ReadDir(filepath.Join(root, "internal"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range internal {
		if e.IsDir() {
			want = append(want, "internal/"+e.Name()+"/")
		}
	}
	want = append(want, "cmd/deploybot/")
	for _, d := range want {
		if !named[d] {
			t.Errorf("CONTRIBUTING.md's layout does not name %s", d)
		}
	}
}
