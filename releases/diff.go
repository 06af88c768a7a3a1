package releases

import (
	"context"
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
	d := &Diff{From: a.Version, To: b.Version, Added: []DiffFile{}, Removed: []DiffFile{}, Changed: []DiffFile{}, Commits: commitsAhead(a, b)}
	before := make(map[string]ManifestFile, len(a.Files))
	for _, f := range a.Files {
		before[f.Path] = f
	}
	for _, f := range b.Files {
		old, ok := before[f.Path]
		delete(before, f.Path)
		switch {
		case !ok:
			d.Added = append(d.Added, DiffFile{Path: f.Path, Size: f.Size})
			d.BytesAdded += f.Size
		case same(old, f):
			d.Unchanged++
		default:
			d.Changed = append(d.Changed, DiffFile{Path: f.Path, Size: f.Size, OldSize: old.Size})
			d.BytesChanged += f.Size - old.Size
		}
	}
	for _, f := range before {
		d.Removed = append(d.Removed, DiffFile{Path: f.Path, Size: f.Size})
		d.BytesRemoved += f.Size
	}
	for _, l := range [][]DiffFile{d.Added, d.Removed, d.Changed} {
		sort.Slice(l, func(i, j int) bool {
			if l[i].Size != l[j].Size {
				return l[i].Size > l[j].Size
			}
			return l[i].Path < l[j].Path
		})
	}
	return d
}

func same(a, b ManifestFile) bool {
	if a.SHA256 != "" && b.SHA256 != "" {
		return a.SHA256 == b.SHA256 && a.ContentEncoding == b.ContentEncoding
	}
	return a.Size == b.Size
}

// Diff compares two releases of a site from their manifests (two reads).
func (s *Service) Diff(ctx context.Context, siteName, a, b string) (*Diff, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	return Inspect{Bucket: s.Bucket}.Diff(ctx, site, a, b)
}

// Diff compares two releases of site from their manifests.
func (in Inspect) Diff(ctx context.Context, site Site, a, b string) (*Diff, error) {
	var ms [2]*Manifest
	for i, v := range []string{a, b} {
		if err := ValidateVersion(v); err != nil {
			return nil, err
		}
		m, err := in.Bucket.ReadManifest(ctx, site, v)
		if err != nil {
			if ErrorCode(err) == ENOTFOUND {
				return nil, Errorf(ENOTFOUND, "site %s has no release %s (no manifest in the bucket)", site.Name, v)
			}
			return nil, err
		}
		ms[i] = m
	}
	d := DiffManifests(ms[0], ms[1])
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
