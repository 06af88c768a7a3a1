package present

import (
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func TestHumanBytes(t *testing.T) {
	for _, c := range []struct {
		n    int64
		want string
	}{
		{0, "0 B"}, {1023, "1023 B"}, {1024, "1.0 KiB"}, {1536, "1.5 KiB"},
		{10 << 20, "10.0 MiB"}, {3 << 30, "3.0 GiB"}, {1 << 62, "4.0 EiB"},
	} {
		if got := HumanBytes(c.n); got != c.want {
			t.Errorf("HumanBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
	for _, c := range []struct {
		n    int64
		want string
	}{{50, "+50 B"}, {-3072, "−3.0 KiB"}, {0, "±0 B"}} {
		if got := SignedBytes(c.n); got != c.want {
			t.Errorf("SignedBytes(%d) = %q, want %q", c.n, got, c.want)
		}
	}
}

func TestShort(t *testing.T) {
	for _, c := range []struct {
		s    string
		n    int
		want string
	}{
		{"abc", 3, "abc"},
		{"abcd", 3, "ab…"},
		{"two\nlines", 20, "two lines"},
		{"äöüß", 3, "äö…"}, // runes, not bytes
	} {
		if got := Short(c.s, c.n); got != c.want {
			t.Errorf("Short(%q, %d) = %q, want %q", c.s, c.n, got, c.want)
		}
	}
}

func TestDiffAndStatusWords(t *testing.T) {
	a := &releases.Manifest{Version: "v1", Files: []releases.ManifestFile{
		{Path: "index.html", Size: 100}, {Path: "old.js", Size: 3072}, {Path: "same.css", Size: 10},
	}}
	b := &releases.Manifest{Version: "v2", Files: []releases.ManifestFile{
		{Path: "index.html", Size: 150}, {Path: "new.js", Size: 2048}, {Path: "same.css", Size: 10},
	}}
	d := releases.DiffManifests(a, b)
	d.Site = "www"
	if got, want := DiffSummary(d), "www v1 → v2: 1 added (+2.0 KiB), 1 removed (−3.0 KiB), 1 changed (+50 B), 1 unchanged"; got != want {
		t.Errorf("DiffSummary = %q, want %q", got, want)
	}
	same := releases.DiffManifests(a, a)
	same.Site = "www"
	if got, want := DiffSummary(same), "www v1 → v1: the same files (3)"; got != want {
		t.Errorf("DiffSummary = %q, want %q", got, want)
	}
	if got, want := OrNone(""), "(none)"; got != want {
		t.Errorf("OrNone = %q", got)
	}
	if got, want := ServedFrom(&releases.Status{Site: "www", Strategy: releases.StrategyKVS, OriginPath: "v2"}), `key www = "v2" (strategy kvs)`; got != want {
		t.Errorf("ServedFrom kvs = %q, want %q", got, want)
	}
	if got, want := ServedFrom(&releases.Status{Site: "www", OriginPath: "/www/v2"}), `origin path "/www/v2"`; got != want {
		t.Errorf("ServedFrom = %q, want %q", got, want)
	}
}
