package releases

import (
	"context"
	"fmt"
	"sort"
	"strings"
)

// VerifyReport says whether a release's files are all in the bucket.
type VerifyReport struct {
	Site    string          `json:"site"`
	Version string          `json:"version"`
	Files   int             `json:"files"`
	Missing []string        `json:"missing"`
	Wrong   []WrongSizeFile `json:"wrong_size"`
}

// WrongSizeFile is a file whose object has another size than the manifest says.
type WrongSizeFile struct {
	Path string `json:"path"`
	Want int64  `json:"want"`
	Have int64  `json:"have"`
}

// OK reports a complete release.
func (r *VerifyReport) OK() bool { return len(r.Missing) == 0 && len(r.Wrong) == 0 }

// Summary names what is wrong, the first few files of each kind.
func (r *VerifyReport) Summary() string {
	if r.OK() {
		return fmt.Sprintf("all %d files present with the right sizes", r.Files)
	}
	var parts []string
	list := func(names []string) string {
		if len(names) > 5 {
			return strings.Join(names[:5], ", ") + fmt.Sprintf(" and %d more", len(names)-5)
		}
		return strings.Join(names, ", ")
	}
	if len(r.Missing) > 0 {
		parts = append(parts, fmt.Sprintf("%d file(s) missing: %s", len(r.Missing), list(r.Missing)))
	}
	if len(r.Wrong) > 0 {
		var names []string
		for _, w := range r.Wrong {
			names = append(names, fmt.Sprintf("%s (%d bytes, manifest says %d)", w.Path, w.Have, w.Want))
		}
		parts = append(parts, fmt.Sprintf("%d file(s) with the wrong size: %s", len(r.Wrong), list(names)))
	}
	return "release is damaged: " + strings.Join(parts, "; ")
}

// Verify checks every manifest entry (files and carried assets) exists in
// the release folder with the right size.
func (s *Service) Verify(ctx context.Context, siteName, version string) (*VerifyReport, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	if err := s.mayRead(ctx, site, "verify"); err != nil {
		return nil, err
	}
	return Inspect{Bucket: s.Bucket, Budget: s.ManifestBudget}.Verify(ctx, site, version)
}

// Inspect reads a site's releases from its bucket alone, without a store:
// what `verify` and `diff` need on a machine without serve's store (CI),
// and what the service uses for the same questions.
type Inspect struct {
	Bucket Bucket
	// Budget bounds the manifests read at once; nil: the process-wide
	// one (see ManifestBudget).
	Budget *ManifestBudget
}

// Verify checks every file of a release's manifest is in the bucket with
// the right size. The folder is listed first, then the manifest streams
// past the listing, so the files are never held; the budget is held for
// the manifest's size throughout, the listing (some 100 bytes an object)
// included.
func (i Inspect) Verify(ctx context.Context, site Site, version string) (*VerifyReport, error) {
	if err := ValidateVersion(version); err != nil {
		return nil, err
	}
	r := manifestReader{bucket: i.Bucket, budget: i.Budget}
	st, err := r.stat(ctx, site, version)
	if err != nil {
		return nil, err
	}
	release, err := r.budget.Hold(ctx, st.Size)
	if err != nil {
		return nil, err
	}
	defer release()
	have, err := i.Bucket.ReleaseObjects(ctx, site, version)
	if err != nil {
		return nil, err
	}
	rep := newVerifyReport(site, version)
	if _, err := r.stream(ctx, site, version, st.Size, func(f ManifestFile, _ bool) error {
		rep.check(f, have)
		return nil
	}); err != nil {
		return nil, err
	}
	sort.Strings(rep.Missing)
	return rep, nil
}

func (s *Service) verify(ctx context.Context, site Site, m *Manifest) (*VerifyReport, error) {
	return Inspect{Bucket: s.Bucket}.verify(ctx, site, m)
}

func (i Inspect) verify(ctx context.Context, site Site, m *Manifest) (*VerifyReport, error) {
	have, err := i.Bucket.ReleaseObjects(ctx, site, m.Version)
	if err != nil {
		return nil, err
	}
	rep := newVerifyReport(site, m.Version)
	for _, f := range m.Files {
		rep.check(f, have)
	}
	for _, f := range m.Carried {
		rep.check(f, have)
	}
	sort.Strings(rep.Missing)
	return rep, nil
}

func newVerifyReport(site Site, version string) *VerifyReport {
	return &VerifyReport{Site: site.Name, Version: version, Missing: []string{}, Wrong: []WrongSizeFile{}}
}

// check counts one manifest entry against the folder's objects.
func (r *VerifyReport) check(f ManifestFile, have map[string]int64) {
	r.Files++
	size, ok := have[f.Path]
	switch {
	case !ok:
		r.Missing = append(r.Missing, f.Path)
	case size != f.Size:
		r.Wrong = append(r.Wrong, WrongSizeFile{Path: f.Path, Want: f.Size, Have: size})
	}
}
