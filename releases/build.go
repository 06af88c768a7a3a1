package releases

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"
	"unicode/utf8"
)

// Build is what CI knows about the build a release came from, recorded
// in its manifest by publish: the branch, the CI run and the pull
// request. Together with the commit, and a site's repo_url, notices link
// the commit, the compare view against live, the run and the pull
// request. Every field is outside input (written by CI, read back from
// the bucket), so each is checked where it is written and where it is
// read.
type Build struct {
	Branch      string `json:"branch,omitempty"`
	CIURL       string `json:"ci_url,omitempty"`
	PullRequest string `json:"pull_request,omitempty"`
}

// Limits of the build fields.
const (
	// MaxAncestors is how much commit history a manifest records: enough
	// for the commits between any two releases that are weeks apart.
	MaxAncestors = 1000
	maxBranch    = 255  // git allows longer; no CI shows them
	maxCIURL     = 2048 // what browsers and Slack links take
)

var (
	pullRequestRE = regexp.MustCompile(`^[1-9][0-9]{0,9}$`)
	commitHexRE   = regexp.MustCompile(`^[0-9a-fA-F]{7,64}$`)
)

// CheckAncestors refuses a commit history deploybot would not write.
func CheckAncestors(as []string) error {
	if len(as) > MaxAncestors {
		return Errorf(EINVALID, "ancestors: more than %d commits", MaxAncestors)
	}
	for _, a := range as {
		if !commitHexRE.MatchString(a) {
			return Errorf(EINVALID, "ancestors: %q is not a commit id", short(a))
		}
	}
	return nil
}

// Check refuses build fields deploybot would not write: a branch with
// control characters or spaces, a CI URL that is not plain http(s), a
// pull request that is not a number.
func (b Build) Check() error {
	if err := CheckBranch(b.Branch); err != nil {
		return err
	}
	if b.CIURL != "" {
		if err := CheckWebURL(b.CIURL); err != nil {
			return Errorf(EINVALID, "ci url: %v", err)
		}
	}
	if b.PullRequest != "" && !pullRequestRE.MatchString(b.PullRequest) {
		return Errorf(EINVALID, "pull request %q: its number, such as 42", short(b.PullRequest))
	}
	return nil
}

// CheckBranch accepts a branch name as git allows it, within bounds.
func CheckBranch(b string) error {
	switch {
	case b == "":
		return nil
	case len(b) > maxBranch:
		return Errorf(EINVALID, "branch is longer than %d bytes", maxBranch)
	case !utf8.ValidString(b):
		return Errorf(EINVALID, "branch is not UTF-8")
	case strings.ContainsAny(b, " ~^:?*[\\") || strings.Contains(b, ".."):
		return Errorf(EINVALID, "branch %q holds a character git does not allow in branch names", short(b))
	}
	for _, r := range b {
		if r < 0x20 || r == 0x7f {
			return Errorf(EINVALID, "branch holds a control character")
		}
	}
	return nil
}

// CheckWebURL accepts an absolute http(s) URL without spaces or the
// characters Slack's link syntax uses (<, >, |), within maxCIURL.
func CheckWebURL(s string) error {
	if len(s) > maxCIURL {
		return fmt.Errorf("longer than %d bytes", maxCIURL)
	}
	if strings.ContainsAny(s, " \t\r\n<>|\"") {
		return fmt.Errorf("%q holds a space or one of < > | \"", short(s))
	}
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" || u.User != nil {
		return fmt.Errorf("%q is not an absolute http(s) URL", short(s))
	}
	return nil
}

func short(s string) string { return shorten(s, 80) }

// shorten cuts s to at most n bytes (and an ellipsis), keeping it valid
// UTF-8.
func shorten(s string, n int) string {
	if len(s) > n {
		return strings.ToValidUTF8(s[:n], "") + "…"
	}
	return s
}
