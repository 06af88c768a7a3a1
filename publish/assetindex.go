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
// It is built in two steps: add, as the manifests are read (newest
// first, compacted after each), then seal, which sorts by path and keeps
// each path's newest copy. After that only remove (the new build has
// the path) and carried.
type assetIndex struct {
	recs    []assetRec
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
	order        uint32 // the order added, for a stable sort
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
}

// add records asset f of release from.
func (x *assetIndex) add(from string, f releases.ManifestFile, c content, hashed bool) {
	x.recs = append(x.recs, assetRec{
		sum: c.sum, size: f.Size, off: uint32(len(x.paths)), n: uint32(len(f.Path)),
		from: x.str(from), ct: x.str(f.ContentType), cc: x.str(f.CacheControl), ce: x.str(f.ContentEncoding),
		hashed: hashed, order: uint32(len(x.recs)),
	})
	x.paths = append(x.paths, f.Path...)
}

func (x *assetIndex) path(r *assetRec) string { return string(x.pathBytes(r)) }

func (x *assetIndex) pathBytes(r *assetRec) []byte { return x.paths[r.off : r.off+r.n] }

func (x *assetIndex) compare(a, b *assetRec) int {
	return bytes.Compare(x.pathBytes(a), x.pathBytes(b))
}

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

// compact sorts by path and keeps, of each path, the copy added first
// (the newest release's). The reader compacts after each release, so
// releases sharing most of their assets never hold them all at once.
func (x *assetIndex) compact() {
	slices.SortFunc(x.recs, func(a, b assetRec) int {
		if d := x.compare(&a, &b); d != 0 {
			return d
		}
		return int(a.order) - int(b.order)
	})
	x.recs = slices.CompactFunc(x.recs, func(a, b assetRec) bool { return x.compare(&a, &b) == 0 })
}

// seal ends the adding: compacted, for remove and carried.
func (x *assetIndex) seal() {
	x.compact()
	x.recs = slices.Clip(x.recs)
	x.strNum = nil
}

// remove takes path out: the new build has a file of its own there.
func (x *assetIndex) remove(path string) {
	i, ok := slices.BinarySearchFunc(x.recs, path, func(r assetRec, p string) int { return comparePath(x.pathBytes(&r), p) })
	if ok && !x.recs[i].gone {
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
		f := releases.ManifestFile{Path: x.path(r), Size: r.size, From: x.strs[r.from],
			ContentType: x.strs[r.ct], CacheControl: x.strs[r.cc], ContentEncoding: x.strs[r.ce]}
		if r.hashed {
			f.SHA256 = hex.EncodeToString(r.sum[:])
		}
		out = append(out, f)
	}
	return out
}
