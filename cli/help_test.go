package cli

import (
	"bytes"
	"context"
	"regexp"
	"strings"
	"testing"
)

// Every command's -h starts with one line saying what it does, and every
// flag that takes a value shows a placeholder in capitals (-server URL),
// never words picked from its description.
func TestEveryCommandsHelp(t *testing.T) {
	flagLine := regexp.MustCompile(`^  -([a-z-]+)(?: (.+))?$`)
	placeholder := regexp.MustCompile(`^[A-Z][A-Z_=]*$`)
	for _, c := range commands() {
		t.Run(c.name, func(t *testing.T) {
			var out, errb bytes.Buffer
			code := Run(context.Background(), []string{c.name, "-h"}, Env{Stdout: &out, Stderr: &errb, Getenv: func(string) string { return "" }})
			if code != ExitOK {
				t.Fatalf("exit %d", code)
			}
			lines := strings.Split(errb.String(), "\n")
			if want := "deploybot " + c.name + ": " + c.summary; lines[0] != want || c.summary == "" {
				t.Fatalf("first line %q, want %q", lines[0], want)
			}
			flags := 0
			for _, l := range lines {
				m := flagLine.FindStringSubmatch(l)
				if m == nil {
					continue
				}
				flags++
				if m[2] != "" && !placeholder.MatchString(m[2]) {
					t.Errorf("flag -%s shows placeholder %q", m[1], m[2])
				}
			}
			if flags == 0 && c.name != "version" { // version alone takes no flag
				t.Fatalf("no flags listed:\n%s", errb.String())
			}
		})
	}
}

func TestVersion(t *testing.T) {
	for _, args := range [][]string{{"--version"}, {"version"}} {
		var out bytes.Buffer
		if code := Run(context.Background(), args, Env{Stdout: &out, Stderr: &out}); code != ExitOK {
			t.Fatalf("%v: exit %d", args, code)
		}
		if !regexp.MustCompile(`^deploybot \S+, commit \S+, (built from a commit of \S+, )?go1\.\d+`).MatchString(out.String()) {
			t.Fatalf("%v: %q", args, out.String())
		}
	}
}
