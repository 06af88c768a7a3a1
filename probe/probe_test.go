package probe_test

import (
	"net/http"
	"testing"

	"github.com/deploybot/deploybot/probe"
	"github.com/deploybot/deploybot/releases"
)

func TestReleaseOf(t *testing.T) {
	for _, c := range []struct {
		name     string
		h        http.Header
		want     string
		wantsErr bool
	}{
		{"S3's metadata name", http.Header{"X-Amz-Meta-Deploybot-Release": {"v42"}}, "v42", false},
		{"the short name", http.Header{"X-Deploybot-Release": {"2026.12.02-1"}}, "2026.12.02-1", false},
		{"both: S3's wins", http.Header{"X-Amz-Meta-Deploybot-Release": {"v2"}, "X-Deploybot-Release": {"v1"}}, "v2", false},
		{"none", http.Header{"Content-Type": {"text/html"}}, "", false},
		{"a path", http.Header{"X-Amz-Meta-Deploybot-Release": {"../v1"}}, "", true},
		{"markup", http.Header{"X-Deploybot-Release": {"<script>"}}, "", true},
		{"too long", http.Header{"X-Deploybot-Release": {string(make([]byte, 200))}}, "", true},
	} {
		got, err := probe.ReleaseOf(c.h)
		if got != c.want || (err != nil) != c.wantsErr {
			t.Errorf("%s: got %q, %v", c.name, got, err)
		}
	}
}

// Whatever an edge answers, ReleaseOf gives a version name, nothing, or
// an error.
func FuzzReleaseOf(f *testing.F) {
	for _, s := range []string{"v1", "", "../x", "v1\r\nx", "a b", "\x00"} {
		f.Add(s, "v2")
	}
	f.Fuzz(func(t *testing.T, meta, short string) {
		h := http.Header{}
		if meta != "" {
			h["X-Amz-Meta-Deploybot-Release"] = []string{meta}
		}
		if short != "" {
			h["X-Deploybot-Release"] = []string{short}
		}
		v, err := probe.ReleaseOf(h)
		if err == nil && v != "" && releases.ValidateVersion(v) != nil {
			t.Fatalf("ReleaseOf(%q, %q) = %q, not a version name", meta, short, v)
		}
		if err != nil && v != "" {
			t.Fatalf("a release with an error: %q", v)
		}
	})
}
