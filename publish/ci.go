package publish

import (
	"regexp"
	"strings"

	"github.com/deploybot/deploybot/releases"
)

// CI is what a CI system says about the build it runs, read from the
// environment variables it documents. Publish uses it where its flags
// (--commit, --branch, --ci-url, --pull-request) say nothing.
type CI struct {
	Name   string // github-actions, gitlab-ci, circleci, buildkite; "" when none was found
	Commit string
	releases.Build
}

// DetectCI reads the build from the environment of the CI systems below;
// the first whose marker variable is set wins.
//
//   - GitHub Actions (GITHUB_ACTIONS=true): GITHUB_SHA; GITHUB_HEAD_REF on a
//     pull request, else GITHUB_REF_NAME; the run at
//     GITHUB_SERVER_URL/GITHUB_REPOSITORY/actions/runs/GITHUB_RUN_ID; the
//     pull request's number from GITHUB_REF refs/pull/N/merge
//     (https://docs.github.com/en/actions/reference/variables-reference).
//   - GitLab CI (GITLAB_CI=true): CI_COMMIT_SHA, CI_COMMIT_REF_NAME,
//     CI_PIPELINE_URL, CI_MERGE_REQUEST_IID
//     (https://docs.gitlab.com/ci/variables/predefined_variables).
//   - CircleCI (CIRCLECI=true): CIRCLE_SHA1, CIRCLE_BRANCH,
//     CIRCLE_BUILD_URL, CIRCLE_PR_NUMBER or the number at the end of
//     CIRCLE_PULL_REQUEST (https://circleci.com/docs/reference/variables/).
//   - Buildkite (BUILDKITE=true): BUILDKITE_COMMIT, BUILDKITE_BRANCH,
//     BUILDKITE_BUILD_URL, BUILDKITE_PULL_REQUEST unless "false"
//     (https://buildkite.com/docs/pipelines/environment-variables).
//
// A value that would not pass releases.Build.Check (a CI's odd branch, an
// unset URL part) is left out rather than failing the publish: the flags
// are the way to say it exactly.
func DetectCI(getenv func(string) string) CI {
	var c CI
	switch {
	case getenv("GITHUB_ACTIONS") == "true":
		c = CI{Name: "github-actions", Commit: getenv("GITHUB_SHA")}
		c.Branch = getenv("GITHUB_HEAD_REF")
		if c.Branch == "" {
			c.Branch = getenv("GITHUB_REF_NAME")
		}
		if srv, repo, run := getenv("GITHUB_SERVER_URL"), getenv("GITHUB_REPOSITORY"), getenv("GITHUB_RUN_ID"); srv != "" && repo != "" && run != "" {
			c.CIURL = strings.TrimSuffix(srv, "/") + "/" + repo + "/actions/runs/" + run
		}
		if m := githubPullRef.FindStringSubmatch(getenv("GITHUB_REF")); m != nil {
			c.PullRequest = m[1]
		}
	case getenv("GITLAB_CI") == "true":
		c = CI{Name: "gitlab-ci", Commit: getenv("CI_COMMIT_SHA")}
		c.Branch, c.CIURL, c.PullRequest = getenv("CI_COMMIT_REF_NAME"), getenv("CI_PIPELINE_URL"), getenv("CI_MERGE_REQUEST_IID")
	case getenv("CIRCLECI") == "true":
		c = CI{Name: "circleci", Commit: getenv("CIRCLE_SHA1")}
		c.Branch, c.CIURL, c.PullRequest = getenv("CIRCLE_BRANCH"), getenv("CIRCLE_BUILD_URL"), getenv("CIRCLE_PR_NUMBER")
		if c.PullRequest == "" {
			if m := trailingNumber.FindStringSubmatch(getenv("CIRCLE_PULL_REQUEST")); m != nil {
				c.PullRequest = m[1]
			}
		}
	case getenv("BUILDKITE") == "true":
		c = CI{Name: "buildkite", Commit: getenv("BUILDKITE_COMMIT")}
		c.Branch, c.CIURL = getenv("BUILDKITE_BRANCH"), getenv("BUILDKITE_BUILD_URL")
		if pr := getenv("BUILDKITE_PULL_REQUEST"); pr != "false" {
			c.PullRequest = pr
		}
	default:
		return CI{}
	}
	// Each field on its own: one bad value drops that value only.
	if releases.CheckBranch(c.Branch) != nil {
		c.Branch = ""
	}
	if c.CIURL != "" && releases.CheckWebURL(c.CIURL) != nil {
		c.CIURL = ""
	}
	if (releases.Build{PullRequest: c.PullRequest}).Check() != nil {
		c.PullRequest = ""
	}
	if len(c.Commit) > 64 || strings.ContainsAny(c.Commit, " \t\r\n") {
		c.Commit = ""
	}
	return c
}

var (
	githubPullRef  = regexp.MustCompile(`^refs/pull/([0-9]{1,10})/(?:merge|head)$`)
	trailingNumber = regexp.MustCompile(`/([0-9]{1,10})/?$`)
)
