package releases

import (
	"context"
	"fmt"
	"path"
	"strings"

	"golang.org/x/sync/errgroup"
)

// PhaseCarry is the step before a flip that gives the target release the
// fingerprinted assets of the live release that it lacks.
//
// Publish-time skew protection carries the previous releases' assets
// forward into each new release; it cannot help a flip to an older release
// (a rollback) or to one published before the live one, whose folders
// never had the live release's assets: pages loaded before the flip would
// ask the target folder for them and get 404s, which the CDN then caches
// (an error TTL, 10 s by default). The atomicity load test found exactly
// that. So, when the site's skew protection is on, the flip first copies
// them in, server side. They are not in the target's manifest (which is
// never rewritten), so verify, diff and prune see the release as
// published, and the copies go when the folder is pruned. Cost: one
// CopyObject per missing asset, and none for the usual promote of a newer
// release, which carries the live one's assets already.
const PhaseCarry Phase = "carry"

// carryConcurrency is how many copies run at once: a site has tens to a
// few hundred fingerprinted assets.
const carryConcurrency = 8

// carryStep returns the carry step of a flip from cur to target, or nil
// when there is nothing to carry (or nothing known: see below).
func (s *Service) carryStep(ctx context.Context, site Site, cur Current, target *Manifest) *Step {
	if site.SkewReleases <= 0 || cur.Version == "" || cur.Version == target.Version {
		return nil
	}
	have := make(map[string]bool, len(target.Files)+len(target.Carried))
	for _, f := range target.Files {
		have[f.Path] = true
	}
	for _, f := range target.Carried {
		have[f.Path] = true
	}
	// The live release's manifest streams past what the target has,
	// within the manifest budget: only the assets to copy are kept
	// (tens to a few hundred), not its file list.
	var missing []ManifestFile
	_, err := s.manifests().read(ctx, site, cur.Version, nil, func(f ManifestFile, carried bool) error {
		if (carried || Fingerprinted(f.Path)) && !have[f.Path] && f.Size <= MaxCopySize {
			missing = append(missing, f)
		}
		return nil
	})
	if ErrorCode(err) == ENOTFOUND {
		return nil // not one of ours (a hand flip) or pruned: nothing known to carry
	}
	if err != nil {
		// A live release whose manifest cannot be read (damaged, or S3
		// failing past the retries) must not stop the flip away from it,
		// least of all a rollback: skip the carry and say so.
		s.logger().WarnContext(ctx, "flip without carrying the live release's assets: its manifest cannot be read",
			"site", site.Name, "live", cur.Version, "err", err)
		return nil
	}
	if len(missing) == 0 {
		return nil
	}
	return &Step{Phase: PhaseCarry, Title: fmt.Sprintf("Copying %d assets of %s that open pages may still ask for", len(missing), cur.Version),
		Run: func(ctx context.Context) error {
			g, gctx := errgroup.WithContext(ctx)
			g.SetLimit(carryConcurrency)
			for _, f := range missing {
				g.Go(func() error {
					err := s.Bucket.CopyFile(gctx, site, cur.Version, f.Path, target.Version,
						File{Path: f.Path, Size: f.Size, ContentType: f.ContentType, CacheControl: f.CacheControl, ContentEncoding: f.ContentEncoding, SHA256: f.SHA256,
							// Not a file of the target's manifest: a copy an
							// earlier flip carried may be there, and the live
							// release's is the one its pages ask for.
							Replace: true})
					if ErrorCode(err) == ENOTFOUND {
						return nil // gone from the live folder; nothing to copy
					}
					return err
				})
			}
			return g.Wait()
		}}
}

// Fingerprinted reports whether a file name carries a content hash in the
// segment before its extension: app.3f9c1b2a.js, chunk-5QKZ7B3X.js,
// index-BxR3k9aF.js, 3f9c1b2a4d.js. Such a file gets a year of immutable
// caching, so a name that only looks like one is the costly mistake (a
// changed background1.jpg would stay stale for a year) and a missed hash
// the cheap one (revalidated caching, no skew carry). So the segment is
// 8+ letters and digits and:
//   - after a name (app.<hash>.js): hex, or letters and digits mixed
//     the way hashes are, switching between them at least twice
//     (5QKZ7B3X, CqRk1Xwz; not summer2024, a word and a number);
//   - the whole name (<hash>.js): hex with digits and letters both
//     (3f9c1b2a; not page000001, chapter10 or 20240101).
func Fingerprinted(name string) bool {
	base := path.Base(name)
	parts := strings.FieldsFunc(base, func(r rune) bool { return r == '.' || r == '-' || r == '_' })
	if len(parts) < 2 {
		return false
	}
	seg := parts[len(parts)-2]
	if len(seg) < 8 {
		return false
	}
	hex, digit, hexLetter, switches := true, false, false, 0
	prevDigit := seg[0] >= '0' && seg[0] <= '9'
	for _, c := range []byte(seg) {
		isDigit := c >= '0' && c <= '9'
		switch {
		case isDigit:
			digit = true
		case c >= 'a' && c <= 'f':
			hexLetter = true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			hex = false
		default:
			return false
		}
		if isDigit != prevDigit {
			switches++
		}
		prevDigit = isDigit
	}
	if len(parts) == 2 {
		return hex && digit && hexLetter
	}
	return hex || switches >= 2
}
