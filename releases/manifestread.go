package releases

import (
	"context"
)

// ManifestStreamer is what a Bucket adds so that its manifests are read
// within a ManifestBudget by their real size and as a stream (the S3
// adapter has it). A Bucket without it is read whole, each read weighed
// as MaxManifestBytes: the worst it could cost.
type ManifestStreamer interface {
	// StatManifest returns the size and ETag of version's manifest
	// without reading it (a HEAD); ENOTFOUND wrapping ErrNoManifest when
	// there is none.
	StatManifest(ctx context.Context, site Site, version string) (ManifestStat, error)
	// StreamManifest reads version's manifest as DecodeManifestFiles
	// does: each file goes to visit, and the Manifest returned holds
	// none. A manifest past MaxManifestBytes is refused (EINVALID, a
	// *RefusedManifest) before any of it is read; one larger than max,
	// the size it was weighed at (it changed since), is not read either,
	// and the error is not EINVALID: reading it again weighs it again.
	StreamManifest(ctx context.Context, site Site, version string, max int64, visit func(f ManifestFile, carried bool) error) (*Manifest, error)
}

// ManifestStat is a manifest object as a HEAD describes it.
type ManifestStat struct {
	Size int64
	ETag string
}

// manifestReader reads one bucket's manifests within a budget.
type manifestReader struct {
	bucket Bucket
	budget *ManifestBudget
}

func (s *Service) manifests() manifestReader {
	return manifestReader{bucket: s.Bucket, budget: s.ManifestBudget}
}

// stat weighs version's manifest: its size from a HEAD, or
// MaxManifestBytes when the bucket cannot say.
func (r manifestReader) stat(ctx context.Context, site Site, version string) (ManifestStat, error) {
	if st, ok := r.bucket.(ManifestStreamer); ok {
		return st.StatManifest(ctx, site, version)
	}
	etag, err := r.bucket.ManifestETag(ctx, site, version)
	return ManifestStat{Size: MaxManifestBytes, ETag: etag}, err
}

// stream reads a manifest weighed at max bytes, each file to visit. The
// caller holds the budget for it.
func (r manifestReader) stream(ctx context.Context, site Site, version string, max int64, visit func(ManifestFile, bool) error) (*Manifest, error) {
	if st, ok := r.bucket.(ManifestStreamer); ok {
		return st.StreamManifest(ctx, site, version, max, visit)
	}
	m, err := r.bucket.ReadManifest(ctx, site, version)
	if err != nil {
		return nil, err
	}
	for _, f := range m.Files {
		if err := visit(f, false); err != nil {
			return nil, err
		}
	}
	for _, f := range m.Carried {
		if err := visit(f, true); err != nil {
			return nil, err
		}
	}
	c := *m
	c.Files, c.Carried = nil, nil
	return &c, nil
}

// read weighs, holds and streams one manifest: for a reader done with it
// once the files went by. A known stat (a HEAD made already) saves one.
func (r manifestReader) read(ctx context.Context, site Site, version string, known *ManifestStat, visit func(ManifestFile, bool) error) (*Manifest, error) {
	var st ManifestStat
	if known != nil {
		st = *known
	} else {
		var err error
		if st, err = r.stat(ctx, site, version); err != nil {
			return nil, err
		}
	}
	release, err := r.budget.Hold(ctx, st.Size)
	if err != nil {
		return nil, err
	}
	defer release()
	return r.stream(ctx, site, version, st.Size, visit)
}

// readWhole reads one manifest with its files, within the budget while
// it is read; what the caller then keeps is outside it (a promote keeps
// its target's for the flip, one per site as the site's lock allows).
func (r manifestReader) readWhole(ctx context.Context, site Site, version string) (*Manifest, error) {
	var files, carried []ManifestFile
	m, err := r.read(ctx, site, version, nil, func(f ManifestFile, isCarried bool) error {
		if isCarried {
			carried = append(carried, f)
		} else {
			files = append(files, f)
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	m.Files, m.Carried = files, carried
	return m, nil
}
