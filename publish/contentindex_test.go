package publish

import (
	"crypto/sha256"
	"fmt"
	"testing"
)

func TestContentIndex(t *testing.T) {
	sum := func(s string) [sha256.Size]byte { return sha256.Sum256([]byte(s)) }
	x := newContentIndex("v7")
	if _, ok := x.lookup(content{sum("a"), 1}); ok {
		t.Fatal("an index not sealed answers")
	}
	x.add(content{sum("a"), 1}, "a.html")
	x.add(content{sum("b"), 1}, "b/ü.html")
	x.add(content{sum("a"), 2}, "a-longer.html") // same hash, other size: another content
	x.add(content{sum("a"), 1}, "copy-of-a.html")
	for i := range 1000 {
		x.add(content{sum(fmt.Sprint(i)), int64(i)}, fmt.Sprintf("f/%d.js", i))
	}
	x.seal()
	for _, c := range []struct {
		c    content
		path string
	}{
		{content{sum("a"), 1}, "a.html"}, // of two files with one content, the first
		{content{sum("a"), 2}, "a-longer.html"},
		{content{sum("b"), 1}, "b/ü.html"},
		{content{sum("b"), 2}, ""},
		{content{sum("c"), 1}, ""},
		{content{sum("999"), 999}, "f/999.js"},
		{content{sum("0"), 0}, "f/0.js"},
	} {
		src, ok := x.lookup(c.c)
		if ok != (c.path != "") || src.path != c.path || (ok && src.version != "v7") {
			t.Errorf("lookup(%x…, %d) = %+v, %v; want %q", c.c.sum[:4], c.c.size, src, ok, c.path)
		}
	}
	if len(x.recs) != 1003 {
		t.Errorf("%d records, want 1003 (duplicates dropped)", len(x.recs))
	}
	var none *contentIndex
	if _, ok := none.lookup(content{sum("a"), 1}); ok {
		t.Error("a nil index answers")
	}
}
