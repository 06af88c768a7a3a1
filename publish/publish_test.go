package publish

import "testing"

func TestCacheControl(t *testing.T) {
	cases := map[string]string{
		"index.html":                 "no-cache",
		"about/index.html":           "no-cache",
		"app.3f9c1b2a.js":            "public, max-age=31536000, immutable",
		"assets/chunk-5QKZ7B3X.js":   "public, max-age=31536000, immutable",
		"main-a1b2c3d4e5.css":        "public, max-age=31536000, immutable",
		"a1b2c3d4.js":                "public, max-age=31536000, immutable",
		"manifest.json":              "no-cache",
		"main-component.js":          "no-cache",
		"logo.png":                   "no-cache",
		"robots.txt":                 "no-cache",
		"page.3f9c1b2a.html":         "no-cache",
		"fonts/inter-Variable.woff2": "no-cache",
		"Makefile":                   "no-cache",
	}
	for name, want := range cases {
		if got := CacheControl(name); got != want {
			t.Errorf("CacheControl(%q) = %q, want %q", name, got, want)
		}
	}
}

func TestContentType(t *testing.T) {
	cases := []struct {
		name string
		head string
		want string
	}{
		{"index.html", "", "text/html; charset=utf-8"},
		{"app.js", "", "text/javascript; charset=utf-8"},
		{"style.css", "", "text/css; charset=utf-8"},
		{"data.json", "", "application/json"},
		{"LICENSE", "plain words", "text/plain; charset=utf-8"},
		{"blob", "", "application/octet-stream"},
		{"img.svg", "", "image/svg+xml"},
	}
	for _, c := range cases {
		if got := ContentType(c.name, []byte(c.head)); got != c.want {
			t.Errorf("ContentType(%q) = %q, want %q", c.name, got, c.want)
		}
	}
}
