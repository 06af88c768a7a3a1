package publish

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// The plan's reader over the manifests of the newest releases, newest
// first: the newest copy of a path is carried, a release that proves
// invalid lends nothing (not even where an older valid one has the same
// path), a path the new build has is not carried, and only skew
// releases lend assets.
func TestPlanReaderCarriesTheNewestValidCopies(t *testing.T) {
	file := func(path, body string) releases.ManifestFile {
		sum := sha256.Sum256([]byte(body))
		return releases.ManifestFile{Path: path, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]),
			ContentType: "text/javascript; charset=utf-8", CacheControl: "public, max-age=31536000, immutable"}
	}
	pl := &plan{carry: newAssetIndex(), maxCopy: releases.MaxCopySize, room: 100}
	r := pl.reader(2)
	feed := func(v string, ok bool, files ...releases.ManifestFile) {
		for _, f := range files {
			if err := r.File(v, f, false); err != nil {
				t.Fatal(err)
			}
		}
		r.Done(v, ok)
	}
	feed("v9", false, file("assets/app.0123abcd.js", "v9 app"), file("assets/only-v9.0123abcd.js", "x"), file("index.html", "v9"))
	feed("v8", true, file("assets/app.0123abcd.js", "v8 app"), file("assets/kept.0123abcd.js", "k8"), file("index.html", "v8"))
	feed("v7", true, file("assets/app.0123abcd.js", "v7 app"), file("assets/kept.0123abcd.js", "k7"), file("assets/old.0123abcd.js", "o7"),
		file("assets/rebuilt.0123abcd.js", "r7"))
	feed("v6", true, file("assets/ancient.0123abcd.js", "a6"))
	pl.carry.seal()
	pl.carry.remove("assets/rebuilt.0123abcd.js")
	pl.carry.remove("assets/not-there.0123abcd.js")

	var got []string
	for _, f := range pl.carried() {
		got = append(got, fmt.Sprintf("%s@%s:%d", f.Path, f.From, f.Size))
		if f.ContentType != "text/javascript; charset=utf-8" || f.CacheControl != "public, max-age=31536000, immutable" || len(f.SHA256) != 64 {
			t.Errorf("%s: headers or hash lost: %+v", f.Path, f)
		}
	}
	want := []string{"assets/app.0123abcd.js@v8:6", "assets/kept.0123abcd.js@v8:2", "assets/old.0123abcd.js@v7:2"}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("carried %v\nwant    %v", got, want)
	}
	if src, ok := pl.have.lookup(content{sha256.Sum256([]byte("v8")), 2}); !ok || src != (source{"v8", "index.html"}) {
		t.Fatalf("content index: %+v %v, want v8's index.html", src, ok)
	}
	if _, ok := pl.have.lookup(content{sha256.Sum256([]byte("v9")), 2}); ok {
		t.Fatal("the invalid release's content was indexed")
	}
	// A path a newer release lends is not held again, record or bytes.
	if want := len("assets/app.0123abcd.js" + "assets/kept.0123abcd.js" + "assets/old.0123abcd.js" + "assets/rebuilt.0123abcd.js"); len(pl.carry.paths) != want || len(pl.carry.recs) != 4 {
		t.Fatalf("%d records, %d path bytes; want 4 and %d", len(pl.carry.recs), len(pl.carry.paths), want)
	}
	if pl.carry.len() != 3 {
		t.Fatalf("len %d", pl.carry.len())
	}
	if n := len(pl.carry.carried(2)); n != 2 {
		t.Fatalf("carried(2) gave %d", n)
	}
}
