package publish

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"slices"

	"github.com/deploybot/deploybot/releases"
)

// assetIndex holds the fingerprinted assets of earlier releases that a
// new release may carry (skew protection), by path, newest release
// first. Like contentIndex it is pointer-free per file: a record of 72
// bytes and the path's bytes, with the release and header strings (a
// handful per site) kept once in tables.
//
// Manifests are read newest first, and sort is called after each: a
// path a newer release already lends is not added again, so releases
// that share most of their assets cost one record and one copy of the
// path each. After seal only remove (the new build has the path) and
// carried.
type assetIndex struct {
	recs    []assetRec
	sorted  int // recs[:sorted] are sorted by path, each path once
	paths   []byte
	strs    []string          // releases and header values, by number
	strNum  map[string]uint32 // their numbers, while adding
	removed int
}

type assetRec struct {
	sum          [sha256.Size]byte
	size         int64
	off, n       uint32 // the path, in paths
	from, ct, cc uint32 // in strs
	ce           uint32
	hashed, gone bool
}

func newAssetIndex() *assetIndex {
	return &assetIndex{strNum: map[string]uint32{}}
}

func (x *assetIndex) str(s string) uint32 {
	if n, ok := x.strNum[s]; ok {
		return n
	}
	n := uint32(len(x.strs))
	x.strs = append(x.strs, s)
	x.strNum[s] = n
	return n
}

// mark is where the index stands, to drop what was added after it
// (truncate): the files of a release whose manifest proved invalid.
func (x *assetIndex) mark() (recs, paths int) { return len(x.recs), len(x.paths) }

func (x *assetIndex) truncate(recs, paths int) {
	x.recs, x.paths = x.recs[:recs], x.paths[:paths]
	x.sorted = min(x.sorted, recs)
}

// add records asset f of release from, unless a newer release (one
// sorted in already) lends the same path. A manifest lists a path once,
// so the release being read adds each path at most once.
func (x *assetIndex) add(from string, f releases.ManifestFile, c content, hashed bool) {
	if _, newer := x.find(f.Path); newer {
		return
	}
	x.recs = append(x.recs, assetRec{
		sum: c.sum, size: f.Size, off: uint32(len(x.paths)), n: uint32(len(f.Path)),
		from: x.str(from), ct: x.str(f.ContentType), cc: x.str(f.CacheControl), ce: x.str(f.ContentEncoding),
		hashed: hashed,
	})
	x.paths = append(x.paths, f.Path...)
}

func (x *assetIndex) pathBytes(r *assetRec) []byte { return x.paths[r.off : r.off+r.n] }

// comparePath compares without copying the path out (a conversion the
// compiler does in place when only compared).
func comparePath(b []byte, p string) int {
	switch {
	case string(b) < p:
		return -1
	case string(b) > p:
		return 1
	}
	return 0
}

// find is where path is among the sorted records.
func (x *assetIndex) find(path string) (int, bool) {
	return slices.BinarySearchFunc(x.recs[:x.sorted], path, func(r assetRec, p string) int { return comparePath(x.pathBytes(&r), p) })
}

// sort takes the records added since the last call into the sorted
// ones. Of equal paths (none, when every manifest lists a path once) the
// first added, the newest release's, is kept.
func (x *assetIndex) sort() {
	slices.SortStableFunc(x.recs, func(a, b assetRec) int { return bytes.Compare(x.pathBytes(&a), x.pathBytes(&b)) })
	x.recs = slices.CompactFunc(x.recs, func(a, b assetRec) bool { return bytes.Equal(x.pathBytes(&a), x.pathBytes(&b)) })
	x.sorted = len(x.recs)
}

// seal ends the adding.
func (x *assetIndex) seal() {
	x.sort()
	x.recs = slices.Clip(x.recs)
	x.strNum = nil
}

// remove takes path out: the new build has a file of its own there.
func (x *assetIndex) remove(path string) {
	if i, ok := x.find(path); ok && !x.recs[i].gone {
		x.recs[i].gone = true
		x.removed++
	}
}

// len is how many assets are left to carry.
func (x *assetIndex) len() int { return len(x.recs) - x.removed }

// carried are the assets left, by path, at most limit of them.
func (x *assetIndex) carried(limit int) []releases.ManifestFile {
	out := make([]releases.ManifestFile, 0, min(max(0, limit), x.len()))
	for i := range x.recs {
		if len(out) >= limit {
			break
		}
		r := &x.recs[i]
		if r.gone {
			continue
		}
		f := releases.ManifestFile{Path: string(x.pathBytes(r)), Size: r.size, From: x.strs[r.from],
			ContentType: x.strs[r.ct], CacheControl: x.strs[r.cc], ContentEncoding: x.strs[r.ce]}
		if r.hashed {
			f.SHA256 = hex.EncodeToString(r.sum[:])
		}
		out = append(out, f)
	}
	return out
}
