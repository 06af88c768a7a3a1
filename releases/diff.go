package releases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"sort"
	"strings"
)

// DiffFile is one file in a diff; OldSize is set for changed files.
type DiffFile struct {
	Path    string `json:"path"`
	Size    int64  `json:"size"`
	OldSize int64  `json:"old_size,omitempty"`
}

// Diff is what changed between two releases' builds: files added, removed
// and changed (by SHA-256, or by size where a manifest has no hash).
// Carried assets are not part of a build and are left out.
type Diff struct {
	Site         string     `json:"site"`
	From         string     `json:"from"`
	To           string     `json:"to"`
	Added        []DiffFile `json:"added"`
	Removed      []DiffFile `json:"removed"`
	Changed      []DiffFile `json:"changed"`
	Unchanged    int        `json:"unchanged"`
	BytesAdded   int64      `json:"bytes_added"`
	BytesRemoved int64      `json:"bytes_removed"`
	// BytesChanged is the net size change of the changed files.
	BytesChanged int64 `json:"bytes_changed"`
	// Commits is how many commits To's build is ahead of From's, when
	// publish recorded To's commit history (Manifest.Ancestors) and From's
	// commit is in it; nil when that is not known.
	Commits *int `json:"commits,omitempty"`
}

// Empty reports whether the two builds are the same.
func (d *Diff) Empty() bool { return len(d.Added)+len(d.Removed)+len(d.Changed) == 0 }

// DiffManifests compares build a (before) with build b (after). Lists are
// sorted by size, largest first, then path: the top of each list is what
// matters most to a reader.
func DiffManifests(a, b *Manifest) *Diff {
	idx := newDiffIndex(len(a.Files))
	for _, f := range a.Files {
		idx.add(f)
	}
	d := newDiff(a, b)
	for _, f := range b.Files {
		idx.compare(d, f)
	}
	idx.finish(d)
	return d
}

func newDiff(a, b *Manifest) *Diff {
	return &Diff{From: a.Version, To: b.Version, Added: []DiffFile{}, Removed: []DiffFile{}, Changed: []DiffFile{}, Commits: commitsAhead(a, b)}
}

// diffIndex is the older build of a diff, compact: path -> size, hash
// and encoding (some 160 bytes an entry with the path, 0.7 of the
// manifest's JSON), rather than the manifest's file list and a map of it
// (1.3 and more). The newer build streams past it.
type diffIndex struct {
	files map[string]diffEntry
	// encs interns the few content encodings a site uses ("gzip", "br").
	encs map[string]string
}

type diffEntry struct {
	size   int64
	sum    [sha256.Size]byte
	hasSum bool
	enc    string
}

func newDiffIndex(n int) *diffIndex {
	return &diffIndex{files: make(map[string]diffEntry, n), encs: map[string]string{}}
}

func (x *diffIndex) entry(f ManifestFile) diffEntry {
	e := diffEntry{size: f.Size}
	if f.ContentEncoding != "" {
		enc, ok := x.encs[f.ContentEncoding]
		if !ok {
			enc = f.ContentEncoding
			x.encs[enc] = enc
		}
		e.enc = enc
	}
	if f.SHA256 != "" {
		e.hasSum = true
		// A manifest read from the bucket has 64 hex digits here (it
		// is checked); one made in memory may not, and is compared by
		// a hash of what it says.
		if n, err := hex.Decode(e.sum[:], []byte(f.SHA256)); err != nil || n != sha256.Size || len(f.SHA256) != 2*sha256.Size {
			e.sum = sha256.Sum256([]byte(f.SHA256))
		}
	}
	return e
}

func (x *diffIndex) add(f ManifestFile) { x.files[f.Path] = x.entry(f) }

// compare puts file f of the newer build into d.
func (x *diffIndex) compare(d *Diff, f ManifestFile) {
	old, ok := x.files[f.Path]
	delete(x.files, f.Path)
	switch {
	case !ok:
		d.Added = append(d.Added, DiffFile{Path: f.Path, Size: f.Size})
		d.BytesAdded += f.Size
	case same(old, x.entry(f)):
		d.Unchanged++
	default:
		d.Changed = append(d.Changed, DiffFile{Path: f.Path, Size: f.Size, OldSize: old.size})
		d.BytesChanged += f.Size - old.size
	}
}

// finish lists what the newer build lacks and sorts the lists.
func (x *diffIndex) finish(d *Diff) {
	for p, f := range x.files {
		d.Removed = append(d.Removed, DiffFile{Path: p, Size: f.size})
		d.BytesRemoved += f.size
	}
	x.files = nil
	for _, l := range [][]DiffFile{d.Added, d.Removed, d.Changed} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Size != l[j].Size {
				return l[i].Size > l[j].Size
			}
			return l[i].Path < l[j].Path
		})
	}
}

func same(a, b diffEntry) bool {
	if a.hasSum && b.hasSum {
		return a.sum == b.sum && a.enc == b.enc
	}
	return a.size == b.size
}

// Diff compares two releases of a site from their manifests, one diff of
// a site at a time: another asked while one runs is refused (ECONFLICT)
// rather than queued, so repeated asks (a chat command typed again)
// cannot pile up waiting goroutines and answers. Across sites, diffs wait
// for the manifest budget.
func (s *Service) Diff(ctx context.Context, siteName, a, b string) (*Diff, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(ctx, site, "diff"); err != nil {
		return nil, err
	}
	if _, running := s.diffs.LoadOrStore(site.Name, struct{}{}); running {
		return nil, Errorf(ECONFLICT, "a diff of site %s is running; try again in a moment", site.Name)
	}
	defer s.diffs.Delete(site.Name)
	return Inspect{Bucket: s.Bucket, Budget: s.ManifestBudget}.Diff(ctx, site, a, b)
}

// Diff compares two releases of site from their manifests: the older
// indexed compactly, the newer streamed past it, both within the
// manifest budget (weighed together) until the diff is made. The diff
// itself, up to one entry per file, is the caller's.
func (in Inspect) Diff(ctx context.Context, site Site, a, b string) (*Diff, error) {
	r := manifestReader{bucket: in.Bucket, budget: in.Budget}
	var st [2]ManifestStat
	for i, v := range []string{a, b} {
		if err := ValidateVersion(v); err != nil {
			return nil, err
		}
		var err error
		if st[i], err = r.stat(ctx, site, v); err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return nil, Errorf(ENOTFOUND, "site %s has no release %s (no manifest in the bucket)", site.Name, v)
			}
			return nil, err
		}
	}
	release, err := r.budget.Hold(ctx, st[0].Size+st[1].Size)
	if err != nil {
		return nil, err
	}
	defer release()
	notFound := func(v string, err error) error {
		if ErrorCode(err) == ENOTFOUND {
			return Errorf(ENOTFOUND, "site %s has no release %s (no manifest in the bucket)", site.Name, v)
		}
		return err
	}
	idx := newDiffIndex(0)
	ma, err := r.stream(ctx, site, a, st[0].Size, func(f ManifestFile, carried bool) error {
		if !carried {
			idx.add(f)
		}
		return nil
	})
	if err != nil {
		return nil, notFound(a, err)
	}
	// What the newer build's files say goes into d as they stream by;
	// what names its commits may come after them, so the header of the
	// diff is filled in last.
	d := newDiff(&Manifest{}, &Manifest{})
	mb, err := r.stream(ctx, site, b, st[1].Size, func(f ManifestFile, carried bool) error {
		if !carried {
			idx.compare(d, f)
		}
		return nil
	})
	if err != nil {
		return nil, notFound(b, err)
	}
	d.From, d.To, d.Commits = ma.Version, mb.Version, commitsAhead(ma, mb)
	idx.finish(d)
	d.Site = site.Name
	return d, nil
}

// commitsAhead counts the commits from a's commit to b's in b's recorded
// history: the position of a's commit among b's ancestors, newest first
// (b's own commit is the first). Commits compare as hex prefixes of each
// other, seven digits at least, as git abbreviates them.
func commitsAhead(a, b *Manifest) *int {
	if len(b.Ancestors) == 0 || len(a.Commit) < 7 {
		return nil
	}
	for i, c := range b.Ancestors {
		if sameCommit(c, a.Commit) {
			return &i
		}
	}
	return nil
}

func sameCommit(x, y string) bool {
	n := min(len(x), len(y))
	return n >= 7 && strings.EqualFold(x[:n], y[:n])
}
