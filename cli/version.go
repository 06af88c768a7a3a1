package cli

import (
	"context"
	"fmt"
	"runtime/debug"
	"strings"
)

// Version is deploybot's release, set at link time by release builds
// (-ldflags "-X github.com/deploybot/deploybot/cli.Version=v1.2.3"); empty,
// the module version from the build information is shown (a go install
// at a tag has it; a build from a checkout says "(devel)").
var Version = ""

// versionText is one line: version, commit (with "+dirty" when the tree
// had changes), commit time and the Go that built it.
func versionText() string {
	v := Version
	commit, when, dirty := "unknown", "", false
	goVersion := "unknown"
	if bi, ok := debug.ReadBuildInfo(); ok {
		goVersion = bi.GoVersion
		if v == "" {
			v = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				commit = s.Value
			case "vcs.time":
				when = s.Value
			case "vcs.modified":
				dirty = s.Value == "true"
			}
		}
	}
	if v == "" {
		v = "(devel)"
	}
	if dirty {
		commit += "+dirty"
	}
	parts := []string{"deploybot " + v, "commit " + commit}
	if when != "" {
		parts = append(parts, "built from a commit of "+when)
	}
	parts = append(parts, goVersion)
	return strings.Join(parts, ", ")
}

func runVersion(_ context.Context, env Env, args []string) error {
	fs := newFlagSet(env, "version", "")
	pos, err := parse(fs, args)
	if err != nil {
		return err
	}
	if len(pos) != 0 {
		return usagef("version takes no arguments")
	}
	fmt.Fprintln(env.Stdout, versionText())
	return nil
}
