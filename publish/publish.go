// Package publish uploads a built site as a release: every file into the
// release's folder, then the manifest, last, so that a release exists only
// once all of it is in the bucket.
package publish

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/deploybot/deploybot/releases"
)

// Request is one publish.
type Request struct {
	Site    releases.Site
	Version string
	Commit  string
	Message string
	// Build is what CI knows (branch, run, pull request), checked here.
	Build releases.Build
	// Ancestors are the commit's history (GitAncestors), for the manifest.
	Ancestors []string
	Dir       string
	// Concurrency is how many uploads and copies run at once. Zero: 16,
	// which keeps a CI runner's link busy with small files without
	// tripping S3's per-prefix request rates (3,500 writes/s).
	Concurrency int
	// Rules are the site's cache rules, first match wins.
	Rules []Rule
	// SkewReleases is how many previous releases' fingerprinted assets
	// the new release carries (server-side copies); 0 turns it off.
	SkewReleases int
	// DryRun plans everything and writes nothing.
	DryRun bool
	// Inputs says what of Dir is published (excludes, links).
	Inputs Inputs
}

// FilePlan is what publish does with one file.
type FilePlan struct {
	Path            string `json:"path"`
	Size            int64  `json:"size"`
	Action          string `json:"action"` // upload, copy (same content as in From), carry (skew protection)
	From            string `json:"from,omitempty"`
	Rule            string `json:"rule"` // the cache rule that matched, or "default"
	ContentType     string `json:"content_type"`
	CacheControl    string `json:"cache_control"`
	ContentEncoding string `json:"content_encoding,omitempty"`
}

// Result is what `publish --json` prints.
type Result struct {
	Version       string `json:"version"`
	Files         int    `json:"files"`
	Bytes         int64  `json:"bytes"`
	Uploaded      int    `json:"uploaded"`
	Copied        int    `json:"copied"`
	Carried       int    `json:"carried"`
	BytesUploaded int64  `json:"bytes_uploaded"`
	BytesCopied   int64  `json:"bytes_copied"`
	// CopiesRefused counts the files publish meant to copy server-side
	// (unchanged files, carried assets) and sent instead, because the
	// bucket refuses conditional copies (a bucket policy that enforces
	// conditional writes, docs/aws.md): unchanged files sent count in
	// Uploaded, carried assets in Carried.
	CopiesRefused int        `json:"copies_refused,omitempty"`
	Seconds       float64    `json:"seconds"`
	DryRun        bool       `json:"dry_run,omitempty"`
	Plan          []FilePlan `json:"plan,omitempty"`
	// Excluded are the paths of the directory left out, and why.
	Excluded []Excluded `json:"excluded,omitempty"`
}

// Publisher uploads releases into a bucket.
type Publisher struct {
	Bucket releases.Bucket
	Now    func() time.Time
	// MaxCopySize is the largest file copied server-side; larger unchanged
	// files are sent again. Zero: releases.MaxCopySize (S3's limit).
	MaxCopySize int64
}

type file struct {
	rel string // forward slashes, relative to the release folder
	abs string
}

// Publish uploads req.Dir as release req.Version. Files whose content is
// already in the newest release are copied server-side instead of sent;
// fingerprinted assets of the previous releases are carried over (skew
// protection). It refuses a version that is already published before
// doing anything, so a repeated publish changes nothing; the manifest is
// written last, so a publish that fails part way never goes live.
func (p *Publisher) Publish(ctx context.Context, req Request) (*Result, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	start := now()
	if err := releases.ValidateVersion(req.Version); err != nil {
		return nil, err
	}
	// A first walk checks the directory (links, excludes, that it has
	// files) before anything is sent, holding nothing per file; the
	// upload walks it again, streaming.
	count := 0
	if _, err := walkEach(req.Dir, req.Inputs, func(file) error { count++; return nil }); err != nil {
		return nil, err
	}
	if count > releases.MaxManifestFiles {
		return nil, releases.Errorf(releases.EINVALID, "publish: %s has %d files; a release holds at most %d", req.Dir, count, releases.MaxManifestFiles)
	}
	// A HEAD, not a read: a manifest there, valid or not, takes the
	// version, and a large one need not be fetched to say so.
	if _, err := p.Bucket.ManifestETag(ctx, req.Site, req.Version); err == nil {
		return nil, releases.Errorf(releases.ECONFLICT, "site %s: version %s is already published; releases are immutable, publish a new version", req.Site.Name, req.Version)
	} else if !errors.Is(err, releases.ErrNoManifest) {
		return nil, err
	}
	conc := req.Concurrency
	if conc <= 0 {
		conc = 16
	}
	maxCopy := p.MaxCopySize
	if maxCopy <= 0 {
		maxCopy = releases.MaxCopySize
	}
	pl := &plan{carry: newAssetIndex(), maxCopy: maxCopy,
		room: releases.MaxManifestFiles - count}
	// The releases to copy from: the newest for unchanged files, and the
	// last SkewReleases for carried assets. Their files are taken as they
	// are read, not kept: only what the plan needs stays.
	if _, err := p.Bucket.LatestManifests(ctx, req.Site, max(1, req.SkewReleases), pl.reader(req.SkewReleases)); err != nil {
		return nil, err
	}
	pl.carry.seal()
	if req.DryRun {
		return p.dryRun(ctx, req, pl, conc, start, now)
	}
	return p.publish(ctx, req, pl, conc, start, now)
}

type source struct{ version, path string }

// content names a file's content: its SHA-256 and size.
type content struct {
	sum  [sha256.Size]byte
	size int64
}

func contentOf(sha string, size int64) (content, bool) {
	c := content{size: size}
	n, err := hex.Decode(c.sum[:], []byte(sha))
	return c, err == nil && n == sha256.Size
}

// plan is what publish knows before it walks: the content of the newest
// release (a file of it for each content) and the assets it may carry.
// It holds 48 bytes and the path for each file of the newest release
// (contentIndex), 72 bytes and the path for each fingerprinted asset of
// the last SkewReleases (assetIndex), no pointers per file, and not
// their manifests (bench/README measures it).
type plan struct {
	have    *contentIndex // nil: no release to copy from
	carry   *assetIndex   // by path, the newest earlier release's file
	maxCopy int64
	// room is how many carried files the manifest takes beside the
	// build's before it passes releases.MaxManifestFiles, which readers
	// refuse.
	room int
}

// reader takes the files of the newest releases into the plan as they
// are read: the first valid release gives the content index, and the
// first skew ones their fingerprinted assets (the newest release's copy
// of a path wins). What a release proves not valid after some of its
// files were read is taken out again when it is done: its content index
// is staged, and the assets it added are cut off at the mark taken when
// its first file came.
func (pl *plan) reader(skew int) *releases.ManifestFiles {
	taken := 0
	var version string
	var have *contentIndex
	var markRecs, markPaths int // where this release's assets start
	return &releases.ManifestFiles{
		File: func(v string, f releases.ManifestFile, carried bool) error {
			if v != version {
				version, have = v, nil
				markRecs, markPaths = pl.carry.mark()
				if taken == 0 {
					have = newContentIndex(v)
				}
			}
			if carried {
				return nil
			}
			c, hashed := contentOf(f.SHA256, f.Size)
			if hashed && have != nil {
				have.add(c, f.Path)
			}
			if taken < skew && Fingerprinted(f.Path) && f.Size <= pl.maxCopy {
				pl.carry.add(v, f, c, hashed)
			}
			return nil
		},
		Done: func(v string, ok bool) {
			switch {
			case ok && v == version:
				if taken == 0 && have != nil {
					have.seal()
					pl.have = have
				}
				pl.carry.sort()
				taken++
			case ok:
				taken++ // a release with no files
			case v == version:
				pl.carry.truncate(markRecs, markPaths)
			}
			version, have = "", nil
		},
	}
}

// from is where a file of this content can be copied from, if anywhere.
func (pl *plan) from(e entry) (source, bool) {
	c, ok := contentOf(e.SHA256, e.Size)
	if !ok {
		return source{}, false
	}
	src, ok := pl.have.lookup(c)
	return src, ok && e.Size <= pl.maxCopy
}

// carried are the assets left to carry, by path, as many as the
// manifest has room for: skew protection gives way before a release
// nobody could read.
func (pl *plan) carried() []releases.ManifestFile { return pl.carry.carried(max(0, pl.room)) }

// dryRun plans every file and writes nothing. The plan lists every file,
// so it holds them all.
func (p *Publisher) dryRun(ctx context.Context, req Request, pl *plan, conc int, start time.Time, now func() time.Time) (*Result, error) {
	files, excluded, err := walk(req.Dir, req.Inputs)
	if err != nil {
		return nil, err
	}
	for _, f := range files {
		pl.carry.remove(f.rel)
	}
	res := &Result{Version: req.Version, Files: len(files), DryRun: true, Excluded: excluded}
	entries := make([]entry, len(files))
	if err := forEach(ctx, files, conc, func(ctx context.Context, buf []byte, i int, f file) error {
		e, err := hashFile(req, f, buf)
		if e.SHA256 != "" {
			if src, ok := pl.from(e); ok {
				e.from = src
			}
		}
		e.body = nil // memory stays flat: only files in flight are held
		entries[i] = e
		return err
	}); err != nil {
		return nil, err
	}
	for _, e := range entries {
		fp := FilePlan{Path: e.Path, Size: e.Size, Action: "upload", Rule: e.rule,
			ContentType: e.ContentType, CacheControl: e.CacheControl, ContentEncoding: e.ContentEncoding}
		res.Bytes += e.Size
		if e.from.version != "" {
			fp.Action, fp.From = "copy", e.from.version
			res.Copied++
			res.BytesCopied += e.Size
		} else {
			res.Uploaded++
			res.BytesUploaded += e.Size
		}
		res.Plan = append(res.Plan, fp)
	}
	carried := pl.carried()
	for _, c := range carried {
		res.Plan = append(res.Plan, FilePlan{Path: c.Path, Size: c.Size, Action: "carry", From: c.From, Rule: "as published",
			ContentType: c.ContentType, CacheControl: c.CacheControl, ContentEncoding: c.ContentEncoding})
	}
	res.Carried = len(carried)
	res.Seconds = now().Sub(start).Seconds()
	return res, nil
}

// publish sends the files as the walk finds them: each worker hashes its
// file and at once copies or uploads it, so reading, hashing and sending
// overlap instead of running in phases, and appends its manifest entry
// to a file on disk. Nothing is kept per file in memory, so publish's
// memory does not grow with the site (bench/publish measures it); the
// manifest is then sent from that file, last.
func (p *Publisher) publish(ctx context.Context, req Request, pl *plan, conc int, start time.Time, now func() time.Time) (*Result, error) {
	mf, err := newManifestFile()
	if err != nil {
		return nil, err
	}
	defer mf.remove()
	st := &sending{p: p, req: req, pl: pl, mf: mf}
	g, gctx := errgroup.WithContext(ctx)
	ch := make(chan file, conc)
	// The carries' own context: the uploads' ends when their group is
	// waited for, and the carries may still be running then.
	carryCtx, stopCarries := context.WithCancel(ctx)
	defer stopCarries()
	carries, cctx := errgroup.WithContext(carryCtx)
	carries.SetLimit(conc)
	g.Go(func() error {
		defer close(ch)
		if err := st.walk(gctx, ch); err != nil {
			return err
		}
		// The walk is done long before the uploads: the carries run
		// beside them.
		for _, c := range pl.carried() {
			carries.Go(func() error { return st.carry(cctx, c) })
		}
		return nil
	})
	g.Go(func() error {
		return forEachFrom(gctx, chanSource(ch), conc, func(ctx context.Context, buf []byte, _ int, f file) error {
			return st.send(ctx, buf, f)
		})
	})
	err = g.Wait()
	if err != nil {
		stopCarries()
	}
	if cerr := carries.Wait(); err == nil {
		err = cerr
	}
	if err == nil {
		err = ctx.Err()
	}
	if err != nil {
		return nil, fmt.Errorf("publish %s of site %s stopped, no manifest written (the release does not exist): %w", req.Version, req.Site.Name, err)
	}
	if err := st.writeManifest(ctx, now); err != nil {
		return nil, err
	}
	return st.result(start, now), nil
}
