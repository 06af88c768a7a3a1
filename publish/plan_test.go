package publish

import (
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// Carried files take only the room the manifest has left beside the
// build's, by path: a release over releases.MaxManifestFiles could not be
// read, so skew protection gives way.
func TestCarriedFitTheManifest(t *testing.T) {
	carry := newAssetIndex()
	for _, p := range []string{"c.0123abcd.js", "a.0123abcd.js", "b.0123abcd.js"} {
		carry.add("v1", releases.ManifestFile{Path: p}, content{}, false)
	}
	carry.seal()
	for _, c := range []struct {
		room int
		want []string
	}{
		{10, []string{"a.0123abcd.js", "b.0123abcd.js", "c.0123abcd.js"}},
		{2, []string{"a.0123abcd.js", "b.0123abcd.js"}},
		{0, nil},
		{-5, nil},
	} {
		got := (&plan{carry: carry, room: c.room}).carried()
		if len(got) != len(c.want) {
			t.Fatalf("room %d: %d carried, want %v", c.room, len(got), c.want)
		}
		for i := range got {
			if got[i].Path != c.want[i] {
				t.Fatalf("room %d: %v, want %v", c.room, got, c.want)
			}
		}
	}
}
