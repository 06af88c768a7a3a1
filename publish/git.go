package publish

import (
	"bytes"
	"context"
	"os/exec"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// GitAncestors is the commit history of commit as the checkout holding
// dir has it, newest first, at most releases.MaxAncestors commits cut to
// 12 hex digits (enough to tell commits apart in any repository of a
// site; about 13 KB in the manifest): what lets a notice say how many
// commits a release is ahead of the live one. It runs `git rev-list`,
// bounded by 10 seconds; nil when git, the checkout or the commit is not
// there, which is no error: publish goes on without it.
func GitAncestors(ctx context.Context, dir, commit string) []string {
	if releases.CheckAncestors([]string{commit}) != nil {
		return nil // not a commit id: nothing to ask git
	}
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	cmd := exec.CommandContext(ctx, "git", "-C", dir, "rev-list", "--max-count="+strconv.Itoa(releases.MaxAncestors), commit, "--")
	var out bytes.Buffer
	cmd.Stdout = &out
	if err := cmd.Run(); err != nil {
		return nil
	}
	var as []string
	for _, l := range strings.Fields(out.String()) {
		if len(l) > 12 {
			l = l[:12]
		}
		as = append(as, l)
	}
	if releases.CheckAncestors(as) != nil {
		return nil
	}
	return as
}
