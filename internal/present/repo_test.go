package present

import (
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func TestRepoLinks(t *testing.T) {
	const a, b = "1111111aaaaaaa", "2222222bbbbbbb"
	for _, c := range []struct {
		url                   string
		commit, compare, pull string
	}{
		{"https://github.com/acme/www", "https://github.com/acme/www/commit/" + b, "https://github.com/acme/www/compare/" + a + "..." + b, "https://github.com/acme/www/pull/42"},
		{"https://github.com/acme/www.git/", "https://github.com/acme/www/commit/" + b, "https://github.com/acme/www/compare/" + a + "..." + b, "https://github.com/acme/www/pull/42"},
		{"https://gitlab.com/acme/web/www", "https://gitlab.com/acme/web/www/-/commit/" + b, "https://gitlab.com/acme/web/www/-/compare/" + a + "..." + b, "https://gitlab.com/acme/web/www/-/merge_requests/42"},
		{"gitlab:https://git.example.com/acme/www", "https://git.example.com/acme/www/-/commit/" + b, "https://git.example.com/acme/www/-/compare/" + a + "..." + b, "https://git.example.com/acme/www/-/merge_requests/42"},
		{"https://bitbucket.org/acme/www", "https://bitbucket.org/acme/www/commits/" + b, "https://bitbucket.org/acme/www/branches/compare/" + b + "%0D" + a, "https://bitbucket.org/acme/www/pull-requests/42"},
		{"https://cgit.example.com/www/commit/?id={commit}", "https://cgit.example.com/www/commit/?id=" + b, "", ""},
		{"", "", "", ""},
	} {
		r, err := ParseRepo(c.url)
		if err != nil {
			t.Fatalf("%s: %v", c.url, err)
		}
		if got := r.Commit(b); got != c.commit {
			t.Errorf("%s: commit %q, want %q", c.url, got, c.commit)
		}
		if got := r.Compare(a, b); got != c.compare {
			t.Errorf("%s: compare %q, want %q", c.url, got, c.compare)
		}
		if got := r.PullRequest("42"); got != c.pull {
			t.Errorf("%s: pull %q, want %q", c.url, got, c.pull)
		}
	}
	r, _ := ParseRepo("https://github.com/acme/www")
	for _, bad := range []string{"", "v1.2", "main", "<!channel>", "abc"} {
		if r.Commit(bad) != "" || r.Compare(bad, "2222222") != "" {
			t.Errorf("%q was linked as a commit", bad)
		}
	}
	if r.Compare("2222222", "2222222") != "" || r.PullRequest("x") != "" {
		t.Error("a compare of one commit, or a pull request that is not a number, was linked")
	}
	for _, bad := range []string{"github.com/acme/www", "ftp://x/y", "https://github.com/", "https://x/a b", "https://x/y?z=1", "https://x/{commit", "javascript:alert(1)"} {
		if _, err := ParseRepo(bad); err == nil {
			t.Errorf("ParseRepo(%q) accepted", bad)
		}
	}
}

func FuzzParseRepo(f *testing.F) {
	for _, s := range []string{"https://github.com/acme/www", "gitlab:https://x/y", "https://x/{commit}", "bitbucket:", "https://x/<y>|z"} {
		f.Add(s, "1234567")
	}
	f.Fuzz(func(t *testing.T, s, sha string) {
		r, err := ParseRepo(s)
		if err != nil {
			return
		}
		for _, l := range []string{r.Commit(sha), r.Compare(sha, "abcdef0"), r.PullRequest(sha)} {
			if l == "" {
				continue
			}
			if err := releases.CheckWebURL(l); err != nil {
				t.Fatalf("ParseRepo(%q) made a link that is not a plain URL: %q: %v", s, l, err)
			}
		}
	})
}
