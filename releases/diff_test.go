package releases_test

import (
	"context"
	"reflect"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func TestDiffManifests(t *testing.T) {
	h := func(c byte) string {
		b := make([]byte, 64)
		for i := range b {
			b[i] = c
		}
		return string(b)
	}
	a := &releases.Manifest{Version: "v1", Files: []releases.ManifestFile{
		{Path: "index.html", Size: 100, SHA256: h('a')},
		{Path: "about.html", Size: 50, SHA256: h('b')},
		{Path: "app.1111aaaa.js", Size: 1000, SHA256: h('c')},
		{Path: "logo.png", Size: 300, SHA256: h('d')},
		{Path: "nohash.txt", Size: 7},
		{Path: "sizeonly.txt", Size: 7},
		{Path: "data.json", Size: 10, SHA256: h('e')},
	}}
	b := &releases.Manifest{Version: "v2", Files: []releases.ManifestFile{
		{Path: "index.html", Size: 120, SHA256: h('f')},                        // changed
		{Path: "about.html", Size: 50, SHA256: h('b')},                         // same
		{Path: "app.2222bbbb.js", Size: 1100, SHA256: h('g')},                  // added
		{Path: "new.css", Size: 40, SHA256: h('h')},                            // added
		{Path: "logo.png", Size: 300, SHA256: h('d')},                          // same
		{Path: "nohash.txt", Size: 7, SHA256: h('i')},                          // one side without a hash: same size, same
		{Path: "sizeonly.txt", Size: 8},                                        // changed by size
		{Path: "data.json", Size: 10, SHA256: h('e'), ContentEncoding: "gzip"}, // other encoding: changed
	}, Carried: []releases.ManifestFile{{Path: "app.1111aaaa.js", Size: 1000, From: "v1"}}}
	d := releases.DiffManifests(a, b)
	want := &releases.Diff{From: "v1", To: "v2",
		Added:     []releases.DiffFile{{Path: "app.2222bbbb.js", Size: 1100}, {Path: "new.css", Size: 40}},
		Removed:   []releases.DiffFile{{Path: "app.1111aaaa.js", Size: 1000}},
		Changed:   []releases.DiffFile{{Path: "index.html", Size: 120, OldSize: 100}, {Path: "data.json", Size: 10, OldSize: 10}, {Path: "sizeonly.txt", Size: 8, OldSize: 7}},
		Unchanged: 3, BytesAdded: 1140, BytesRemoved: 1000, BytesChanged: 21}
	if !reflect.DeepEqual(d, want) {
		t.Fatalf("diff\n got %+v\nwant %+v", d, want)
	}
	if releases.DiffManifests(a, a).Empty() != true || d.Empty() {
		t.Fatal("Empty is wrong")
	}
}

func TestServiceDiff(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2")
	d, err := h.svc.Diff(context.Background(), "www", "v1", "v2")
	if err != nil || d.Site != "www" || d.From != "v1" || d.To != "v2" || !d.Empty() || d.Unchanged != 1 {
		t.Fatalf("%+v %v", d, err)
	}
	if _, err := h.svc.Diff(context.Background(), "www", "v1", "v9"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("unknown release: %v", err)
	}
	if _, err := h.svc.Diff(context.Background(), "www", "../v1", "v2"); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("bad name: %v", err)
	}
}

func TestDiffCountsCommitsFromTheRecordedHistory(t *testing.T) {
	live := &releases.Manifest{Version: "v1", Commit: "aaaaaaa111"}
	next := &releases.Manifest{Version: "v2", Commit: "ccccccc333", Ancestors: []string{"ccccccc333", "bbbbbbb222", "AAAAAAA111"}}
	d := releases.DiffManifests(live, next)
	if d.Commits == nil || *d.Commits != 2 {
		t.Fatalf("commits %v, want 2", d.Commits)
	}
	if d := releases.DiffManifests(next, next); d.Commits == nil || *d.Commits != 0 {
		t.Fatalf("the same commit: %v", d.Commits)
	}
	for name, c := range map[string][2]*releases.Manifest{
		"no history":            {live, {Version: "v2", Commit: "ccccccc333"}},
		"live not in it":        {{Version: "v0", Commit: "fffffff000"}, next},
		"live commit too short": {{Version: "v0", Commit: "aaa"}, next},
		"live without a commit": {{Version: "v0"}, next},
	} {
		if d := releases.DiffManifests(c[0], c[1]); d.Commits != nil {
			t.Errorf("%s: commits %d, want unknown", name, *d.Commits)
		}
	}
}
