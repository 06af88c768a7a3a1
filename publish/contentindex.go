package publish

import (
	"bytes"
	"cmp"
	"slices"
)

// contentIndex says which file of one release has a given content, for
// copying unchanged files from it. It holds no pointers per file: one
// sorted slice of fixed-size records and one arena of paths, 48 bytes
// and the path's own bytes a file, which the collector never scans. A
// Go map of the same (its key, a version and a path string each, its
// growth) measured about three times that.
type contentIndex struct {
	version string
	recs    []contentRec
	paths   []byte
	sealed  bool
}

type contentRec struct {
	c      content
	off, n uint32 // the path, in paths
}

func newContentIndex(version string) *contentIndex { return &contentIndex{version: version} }

// add records that path has content c. Paths are a manifest's, so at
// most releases.MaxManifestFiles of S3's 1,024-byte keys: the offsets
// fit 32 bits.
func (x *contentIndex) add(c content, path string) {
	x.recs = append(x.recs, contentRec{c: c, off: uint32(len(x.paths)), n: uint32(len(path))})
	x.paths = append(x.paths, path...)
	x.sealed = false
}

func compareContent(a, b content) int {
	if d := bytes.Compare(a.sum[:], b.sum[:]); d != 0 {
		return d
	}
	return cmp.Compare(a.size, b.size)
}

// seal sorts the index for lookups; of files with the same content, the
// first added is kept (any of them would do; this one is deterministic).
func (x *contentIndex) seal() {
	slices.SortStableFunc(x.recs, func(a, b contentRec) int { return compareContent(a.c, b.c) })
	x.recs = slices.CompactFunc(x.recs, func(a, b contentRec) bool { return a.c == b.c })
	x.recs = slices.Clip(x.recs)
	x.sealed = true
}

// lookup is the source of a file with content c, if the release has one.
func (x *contentIndex) lookup(c content) (source, bool) {
	if x == nil || !x.sealed {
		return source{}, false
	}
	i, ok := slices.BinarySearchFunc(x.recs, c, func(r contentRec, c content) int { return compareContent(r.c, c) })
	if !ok {
		return source{}, false
	}
	r := x.recs[i]
	return source{x.version, string(x.paths[r.off : r.off+r.n])}, true
}
