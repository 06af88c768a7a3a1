package publish

import (
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func TestDetectCI(t *testing.T) {
	for _, c := range []struct {
		name string
		env  map[string]string
		want CI
	}{
		{"none", map[string]string{"CI": "true"}, CI{}},
		{"github push", map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SHA": "abc123", "GITHUB_REF_NAME": "main", "GITHUB_REF": "refs/heads/main",
			"GITHUB_SERVER_URL": "https://github.com", "GITHUB_REPOSITORY": "acme/www", "GITHUB_RUN_ID": "77"},
			CI{Name: "github-actions", Commit: "abc123", Build: releases.Build{Branch: "main", CIURL: "https://github.com/acme/www/actions/runs/77"}}},
		{"github pull request", map[string]string{"GITHUB_ACTIONS": "true", "GITHUB_SHA": "abc", "GITHUB_REF_NAME": "42/merge", "GITHUB_HEAD_REF": "fix/checkout",
			"GITHUB_REF": "refs/pull/42/merge"},
			CI{Name: "github-actions", Commit: "abc", Build: releases.Build{Branch: "fix/checkout", PullRequest: "42"}}},
		{"gitlab merge request", map[string]string{"GITLAB_CI": "true", "CI_COMMIT_SHA": "def", "CI_COMMIT_REF_NAME": "feature", "CI_PIPELINE_URL": "https://gitlab.com/acme/www/-/pipelines/5",
			"CI_MERGE_REQUEST_IID": "7"},
			CI{Name: "gitlab-ci", Commit: "def", Build: releases.Build{Branch: "feature", CIURL: "https://gitlab.com/acme/www/-/pipelines/5", PullRequest: "7"}}},
		{"circleci", map[string]string{"CIRCLECI": "true", "CIRCLE_SHA1": "f00", "CIRCLE_BRANCH": "main", "CIRCLE_BUILD_URL": "https://circleci.com/gh/acme/www/12",
			"CIRCLE_PULL_REQUEST": "https://github.com/acme/www/pull/9"},
			CI{Name: "circleci", Commit: "f00", Build: releases.Build{Branch: "main", CIURL: "https://circleci.com/gh/acme/www/12", PullRequest: "9"}}},
		{"buildkite, not a pull request", map[string]string{"BUILDKITE": "true", "BUILDKITE_COMMIT": "b00", "BUILDKITE_BRANCH": "main",
			"BUILDKITE_BUILD_URL": "https://buildkite.com/acme/www/builds/3", "BUILDKITE_PULL_REQUEST": "false"},
			CI{Name: "buildkite", Commit: "b00", Build: releases.Build{Branch: "main", CIURL: "https://buildkite.com/acme/www/builds/3"}}},
		{"hostile values are dropped one by one", map[string]string{"BUILDKITE": "true", "BUILDKITE_COMMIT": "b00", "BUILDKITE_BRANCH": "main\nx",
			"BUILDKITE_BUILD_URL": "javascript:alert(1)", "BUILDKITE_PULL_REQUEST": "<!channel>"},
			CI{Name: "buildkite", Commit: "b00"}},
	} {
		t.Run(c.name, func(t *testing.T) {
			got := DetectCI(func(k string) string { return c.env[k] })
			if got != c.want {
				t.Fatalf("got %+v, want %+v", got, c.want)
			}
		})
	}
}
