package present

import (
	"fmt"
	"net/url"
	"regexp"
	"strings"

	"github.com/deploybot/deploybot/releases"
)

// Repo is where a site's source is browsed, to link commits, the compare
// view between two commits and pull requests. A site's repo_url is one of
//
//   - a repository's web address: https://github.com/acme/www (GitHub, and
//     Gitea or Forgejo, which share its paths), https://gitlab.com/acme/www
//     (a host with "gitlab" in its name), https://bitbucket.org/acme/www
//     (a host with "bitbucket");
//   - the same with the style named first, for a host whose name does not
//     say it: gitlab:https://git.example.com/acme/www (github:, gitlab:,
//     bitbucket:);
//   - a template with {commit}, for anything else:
//     https://cgit.example.com/www/commit/?id={commit} (commit links only).
type Repo struct {
	style    string // github, gitlab, bitbucket; "" for a template
	base     string // without a trailing slash
	template string
}

// ParseRepo reads a repo_url; "" is no repository (no links).
func ParseRepo(s string) (Repo, error) {
	if s == "" {
		return Repo{}, nil
	}
	if strings.ContainsAny(strings.ReplaceAll(s, "{commit}", ""), "{}") {
		return Repo{}, fmt.Errorf("repo url %q: the only placeholder is {commit}", s)
	}
	if strings.Contains(s, "{commit}") {
		if err := releases.CheckWebURL(strings.ReplaceAll(s, "{commit}", "0")); err != nil {
			return Repo{}, fmt.Errorf("repo url template: %v", err)
		}
		return Repo{template: s}, nil
	}
	style := ""
	for _, st := range []string{"github", "gitlab", "bitbucket"} {
		if rest, ok := strings.CutPrefix(s, st+":"); ok && !strings.HasPrefix(rest, "//") {
			style, s = st, rest
		}
	}
	if err := releases.CheckWebURL(s); err != nil {
		return Repo{}, fmt.Errorf("repo url: %v", err)
	}
	u, _ := url.Parse(s)
	if u.RawQuery != "" || u.Fragment != "" || strings.Trim(u.Path, "/") == "" {
		return Repo{}, fmt.Errorf("repo url %q: the repository's address, such as https://github.com/acme/www (or a template with {commit})", s)
	}
	if style == "" {
		host := strings.ToLower(u.Hostname())
		switch {
		case strings.Contains(host, "gitlab"):
			style = "gitlab"
		case strings.Contains(host, "bitbucket"):
			style = "bitbucket"
		default:
			style = "github"
		}
	}
	return Repo{style: style, base: strings.TrimSuffix(strings.TrimSuffix(s, "/"), ".git")}, nil
}

// commitRE is what a link names as a commit: an abbreviated or full SHA-1
// or SHA-256 in hex. Anything else (a tag, free text) is shown, not
// linked.
var commitRE = regexp.MustCompile(`^[0-9a-fA-F]{7,64}$`)

// Commit links a commit; "" when there is no repository or sha is not a
// commit id.
func (r Repo) Commit(sha string) string {
	if !commitRE.MatchString(sha) {
		return ""
	}
	switch r.style {
	case "github":
		return r.base + "/commit/" + sha
	case "gitlab":
		return r.base + "/-/commit/" + sha
	case "bitbucket":
		return r.base + "/commits/" + sha
	}
	if r.template != "" {
		return strings.ReplaceAll(r.template, "{commit}", sha)
	}
	return ""
}

// Compare links what changed from one commit to another; "" without a
// repository style that has a compare view, or when either is not a
// commit id or they are the same.
func (r Repo) Compare(from, to string) string {
	if !commitRE.MatchString(from) || !commitRE.MatchString(to) || strings.EqualFold(from, to) {
		return ""
	}
	switch r.style {
	case "github":
		return r.base + "/compare/" + from + "..." + to
	case "gitlab":
		return r.base + "/-/compare/" + from + "..." + to
	case "bitbucket":
		return r.base + "/branches/compare/" + to + "%0D" + from
	}
	return ""
}

// PullRequest links a pull (merge) request by number; "" when it cannot.
func (r Repo) PullRequest(n string) string {
	if (releases.Build{PullRequest: n}).Check() != nil || n == "" {
		return ""
	}
	switch r.style {
	case "github":
		return r.base + "/pull/" + n
	case "gitlab":
		return r.base + "/-/merge_requests/" + n
	case "bitbucket":
		return r.base + "/pull-requests/" + n
	}
	return ""
}
