package publish

import "testing"

func TestRuleMatching(t *testing.T) {
	cases := []struct {
		pattern, path string
		want          bool
	}{
		{"*.html", "index.html", true},
		{"*.html", "docs/guide/index.html", true}, // no slash: the file name
		{"docs/*.html", "docs/guide.html", true},
		{"docs/*.html", "docs/guide/index.html", false}, // * does not cross /
		{"docs/*/*.html", "docs/guide/index.html", true},
		{"*.js.br", "assets/app.js.br", true},
		{"app.[0-9a-f]*.js", "assets/app.3f9c1b2a.js", true},
		{"robots.txt", "robots.txt", true},
		{"robots.txt", "sub/robots.txt", true},
		{"/robots.txt", "robots.txt", false},
	}
	for _, c := range cases {
		if got := (Rule{Match: c.pattern}).matches(c.path); got != c.want {
			t.Errorf("%q matches %q = %v, want %v", c.pattern, c.path, got, c.want)
		}
	}
}
