package releases_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"reflect"
	"regexp"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

const goodSum = "2c26b46b68ffc68ff99b453c1d30413413422d706483bfa0f98a5e886266e7ae"

func TestParseManifest(t *testing.T) {
	tests := []struct {
		name, raw, wantErr string
	}{
		{"minimal", `{"version":"v1","files":[]}`, ""},
		{"full", `{"version":"v1","commit":"abc","published_at":"2026-11-28T10:00:00Z","files":[{"path":"index.html","size":3,"sha256":"` + goodSum + `"},{"path":"a/b/c.js","size":0,"sha256":""}],"carried":[{"path":"assets/app.1111aaaa.js","size":5,"from":"v0"}],"future_field":1}`, ""},
		{"not JSON", `{"version":`, "not valid JSON"},
		{"trailing data", `{"version":"v1"} {}`, "after the JSON object"},
		{"other version", `{"version":"v2"}`, `says it is version "v2"`},
		{"no version", `{"files":[]}`, `says it is version ""`},
		{"absolute path", `{"version":"v1","files":[{"path":"/etc/passwd"}]}`, "absolute path"},
		{"dot dot", `{"version":"v1","files":[{"path":"../v2/index.html"}]}`, `".." segment`},
		{"inner dot dot", `{"version":"v1","files":[{"path":"a/../../x"}]}`, `".." segment`},
		{"empty segment", `{"version":"v1","files":[{"path":"a//b"}]}`, "segment"},
		{"trailing slash", `{"version":"v1","files":[{"path":"a/"}]}`, "segment"},
		{"empty path", `{"version":"v1","files":[{"path":""}]}`, "empty path"},
		{"backslash", `{"version":"v1","files":[{"path":"a\\b"}]}`, "backslash"},
		{"control", `{"version":"v1","files":[{"path":"a\nb"}]}`, "control character"},
		{"duplicate", `{"version":"v1","files":[{"path":"a"},{"path":"a"}]}`, "twice"},
		{"carried over a file", `{"version":"v1","files":[{"path":"a.1111aaaa.js"}],"carried":[{"path":"a.1111aaaa.js","from":"v0"}]}`, "twice"},
		{"negative size", `{"version":"v1","files":[{"path":"a","size":-1}]}`, "negative size"},
		{"short hash", `{"version":"v1","files":[{"path":"a","sha256":"abc"}]}`, "64 hex digits"},
		{"carried without origin", `{"version":"v1","carried":[{"path":"a.1111aaaa.js"}]}`, "came from"},
		{"build", `{"version":"v1","branch":"feature/checkout-2","ci_url":"https://ci.example.com/runs/9?attempt=1","pull_request":"42"}`, ""},
		{"branch with a space", `{"version":"v1","branch":"a b"}`, "git does not allow"},
		{"branch with a control character", `{"version":"v1","branch":"a\u0007b"}`, "control character"},
		{"ci url not http", `{"version":"v1","ci_url":"javascript:alert(1)"}`, "not an absolute http(s) URL"},
		{"ci url with Slack markup", `{"version":"v1","ci_url":"https://x/|<!channel>"}`, "one of < > |"},
		{"pull request not a number", `{"version":"v1","pull_request":"42; rm"}`, "its number"},
		{"ancestors", `{"version":"v1","ancestors":["abcdef0123","0123456"]}`, ""},
		{"ancestor not a commit", `{"version":"v1","ancestors":["main"]}`, "not a commit id"},
		{"carried from a bad name", `{"version":"v1","carried":[{"path":"a.1111aaaa.js","from":"../v0"}]}`, "came from"},
		{"too long", `{"version":"v1","files":[{"path":"` + strings.Repeat("a", 901) + `"}]}`, "longer than 900"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m, err := releases.ParseManifest([]byte(tt.raw), "v1")
			if tt.wantErr == "" {
				if err != nil || m.Version != "v1" {
					t.Fatalf("%+v %v", m, err)
				}
				return
			}
			if err == nil || releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), tt.wantErr) {
				t.Fatalf("error %v, want EINVALID with %q", err, tt.wantErr)
			}
		})
	}
}

// Whatever the bucket holds, parsing never panics, and what it accepts is
// safe to act on and survives a write and a read unchanged.
func FuzzParseManifest(f *testing.F) {
	f.Add([]byte(`{"version":"v1","files":[{"path":"index.html","size":3,"sha256":"`+goodSum+`"}]}`), "v1")
	f.Add([]byte(`{"version":"v1","files":[{"path":"a/b.js","size":1}],"carried":[{"path":"x.1111aaaa.js","size":1,"from":"v0"}]}`), "v1")
	f.Add([]byte(`{"version":"v1","files":[{"path":"../x"}]}`), "v1")
	f.Add([]byte(`{"version":"v2"}`), "v1")
	f.Add([]byte(`null`), "")
	f.Fuzz(func(t *testing.T, raw []byte, version string) {
		m, err := releases.ParseManifest(raw, version)
		if err != nil {
			if releases.ErrorCode(err) != releases.EINVALID {
				t.Fatalf("refusal without EINVALID: %v", err)
			}
			return
		}
		if m.Version != version {
			t.Fatalf("accepted a manifest of %q stored as %q", m.Version, version)
		}
		for _, f := range append(m.Files, m.Carried...) {
			if releases.ValidPath(f.Path) != nil || strings.Contains("/"+f.Path+"/", "/../") || f.Size < 0 {
				t.Fatalf("accepted an unsafe entry %+v", f)
			}
		}
		again, err := json.Marshal(m)
		if err != nil {
			t.Fatal(err)
		}
		m2, err := releases.ParseManifest(again, version)
		if err != nil {
			t.Fatalf("a manifest written back is refused: %v\n%s", err, again)
		}
		if !reflect.DeepEqual(normal(m), normal(m2)) {
			t.Fatalf("round trip changed the manifest:\n%+v\n%+v", m, m2)
		}
	})
}

// normal makes empty lists nil: JSON writes both the same way.
func normal(m *releases.Manifest) releases.Manifest {
	c := *m
	if len(c.Files) == 0 {
		c.Files = nil
	}
	if len(c.Carried) == 0 {
		c.Carried = nil
	}
	return c
}

var versionSpec = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._-]{0,127}$`)

// Version names come from Slack, the hook, the command line and the
// bucket: the validator agrees with the contract's pattern on every input.
func FuzzValidateVersion(f *testing.F) {
	for _, s := range []string{"v1", "v1.2.3-rc_1", "", "-v1", ".hidden", "v1/../x", strings.Repeat("a", 128), strings.Repeat("a", 129), "vé", "v1\n"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		err := releases.ValidateVersion(v)
		if (err == nil) != versionSpec.MatchString(v) {
			t.Fatalf("ValidateVersion(%q) = %v, the contract's pattern says %v", v, err, versionSpec.MatchString(v))
		}
		if err != nil && releases.ErrorCode(err) != releases.EINVALID {
			t.Fatalf("refusal without EINVALID: %v", err)
		}
	})
}

// entriesReader streams a manifest of n files without building it.
type entriesReader struct {
	n, i int
	buf  []byte
	head bool
	tail bool
}

func (r *entriesReader) Read(p []byte) (int, error) {
	for len(r.buf) == 0 {
		switch {
		case !r.head:
			r.head, r.buf = true, []byte(`{"version":"v1","files":[`)
		case r.i < r.n:
			sep := ","
			if r.i == 0 {
				sep = ""
			}
			r.buf = fmt.Appendf(nil, `%s{"path":"assets/f%07d.js","size":1}`, sep, r.i)
			r.i++
		case !r.tail:
			r.tail, r.buf = true, []byte(`]}`)
		default:
			return 0, io.EOF
		}
	}
	n := copy(p, r.buf)
	r.buf = r.buf[n:]
	return n, nil
}

// A manifest past the limits is refused as soon as the decoder gets there:
// more files than MaxManifestFiles, or more bytes than MaxManifestBytes
// (here one long message), whatever the rest of it says.
func TestManifestLimits(t *testing.T) {
	m, err := releases.DecodeManifest(&entriesReader{n: releases.MaxManifestFiles}, "v1")
	if err != nil || len(m.Files) != releases.MaxManifestFiles {
		t.Fatalf("a manifest of exactly the file limit: %v", err)
	}
	if _, err := releases.DecodeManifest(&entriesReader{n: releases.MaxManifestFiles + 1}, "v1"); releases.ErrorCode(err) != releases.EINVALID ||
		!strings.Contains(err.Error(), "more than") {
		t.Fatalf("one file over the limit: %v", err)
	}
	long := io.MultiReader(strings.NewReader(`{"version":"v1","message":"`), io.LimitReader(repeatReader('x'), releases.MaxManifestBytes), strings.NewReader(`"}`))
	if _, err := releases.DecodeManifest(long, "v1"); releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), "larger than") {
		t.Fatalf("a manifest over the byte limit: %v", err)
	}
}

type repeatReader byte

func (r repeatReader) Read(p []byte) (int, error) {
	for i := range p {
		p[i] = byte(r)
	}
	return len(p), nil
}

// DecodeManifestFiles hands each entry over as it is decoded, checked the
// same way as DecodeManifest's, and keeps none; an error from the visitor
// stops the decoding.
func TestDecodeManifestFilesKeepsNone(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	raw := `{"files":[{"path":"a.html","size":1,"sha256":"` + sum + `"},{"path":"b.html","size":2}],` +
		`"carried":[{"path":"x.0123abcd.css","size":3,"from":"v1"}],"version":"v2"}`
	var seen []string
	m, err := releases.DecodeManifestFiles(strings.NewReader(raw), "v2", func(f releases.ManifestFile, carried bool) error {
		seen = append(seen, fmt.Sprintf("%s:%d:%v", f.Path, f.Size, carried))
		return nil
	})
	if err != nil || m.Version != "v2" || m.Files != nil || m.Carried != nil {
		t.Fatalf("%+v %v", m, err)
	}
	if got := strings.Join(seen, " "); got != "a.html:1:false b.html:2:false x.0123abcd.css:3:true" {
		t.Fatalf("visited %s", got)
	}
	stop := errors.New("enough")
	n := 0
	if _, err := releases.DecodeManifestFiles(strings.NewReader(raw), "v2", func(releases.ManifestFile, bool) error {
		n++
		return stop
	}); !errors.Is(err, stop) || n != 1 {
		t.Fatalf("a visitor's error: %v after %d", err, n)
	}
	// A path listed in both lists is refused, as in DecodeManifest.
	dup := `{"files":[{"path":"a.html","size":1}],"carried":[{"path":"a.html","size":1,"from":"v1"}],"version":"v2"}`
	if _, err := releases.DecodeManifestFiles(strings.NewReader(dup), "v2", func(releases.ManifestFile, bool) error { return nil }); releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), `lists "a.html" twice`) {
		t.Fatalf("a path twice: %v", err)
	}
}
