package cli

import (
	"bytes"
	"context"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
)

// docs/cli.md is the reference users script against: it names every
// command and every flag the binary has, and nothing else.
func TestCLIReferenceMatchesTheBinary(t *testing.T) {
	raw, err := os.ReadFile("../docs/cli.md")
	if err != nil {
		t.Fatal(err)
	}
	heading := regexp.MustCompile("(?m)^### `deploybot ([a-z-]+)`$")
	docFlag := regexp.MustCompile("(?m)^\\| `--([a-z-]+)")
	helpFlag := regexp.MustCompile(`(?m)^  -([a-z-]+)`)
	sections := map[string]string{}
	idx := heading.FindAllStringSubmatchIndex(string(raw), -1)
	for i, m := range idx {
		end := len(raw)
		if i+1 < len(idx) {
			end = idx[i+1][0]
		}
		sections[string(raw[m[2]:m[3]])] = string(raw[m[1]:end])
	}
	names := map[string]bool{}
	for _, c := range commands() {
		names[c.name] = true
		sec, ok := sections[c.name]
		if !ok {
			t.Errorf("docs/cli.md has no section for %s", c.name)
			continue
		}
		var errb bytes.Buffer
		Run(context.Background(), []string{c.name, "-h"}, Env{Stdout: &errb, Stderr: &errb, Getenv: func(string) string { return "" }})
		var have, documented []string
		for _, m := range helpFlag.FindAllStringSubmatch(errb.String(), -1) {
			have = append(have, m[1])
		}
		for _, m := range docFlag.FindAllStringSubmatch(sec, -1) {
			documented = append(documented, m[1])
		}
		slices.Sort(have)
		slices.Sort(documented)
		if !slices.Equal(have, documented) {
			t.Errorf("%s: the binary has flags %v, docs/cli.md documents %v", c.name, have, documented)
		}
		if !strings.Contains(sec, "deploybot "+c.name) {
			t.Errorf("%s: no usage line", c.name)
		}
	}
	for name := range sections {
		if !names[name] {
			t.Errorf("docs/cli.md documents %s, which the binary does not have", name)
		}
	}
}
