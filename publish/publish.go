// Package publish uploads a built site as a release: every file into the
// release's folder, then the manifest, last, so that a release exists only
// once all of it is in the bucket.
package publish

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"sort"
	"sync"
	"sync/atomic"
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
	var files, copied atomic.Int64
	var bytesAll, bytesCopied, bytesUploaded atomic.Int64
	// Once the bucket refuses a conditional copy it refuses them all
	// (conditional-writes-enforce.html): the rest are sent at once.
	var copiesRefused atomic.Bool
	var refused atomic.Int64
	tryCopy := func(do func() error) error {
		if copiesRefused.Load() {
			return releases.ErrCopyRefused
		}
		err := do()
		if errors.Is(err, releases.ErrCopyRefused) {
			copiesRefused.Store(true)
		}
		return err
	}
	var carriedMu sync.Mutex
	var carriedOK []releases.ManifestFile
	var excluded []Excluded

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
		var err error
		excluded, err = walkEach(req.Dir, req.Inputs, func(f file) error {
			pl.carry.remove(f.rel) // this goroutine alone touches pl.carry until the walk ends
			select {
			case ch <- f:
				return nil
			case <-gctx.Done():
				return gctx.Err()
			}
		})
		if err != nil {
			return err
		}
		// The walk is done long before the uploads: the carries run
		// beside them.
		for _, c := range pl.carried() {
			carries.Go(func() error {
				f := releases.File{Path: c.Path, Size: c.Size, SHA256: c.SHA256, ContentType: c.ContentType, CacheControl: c.CacheControl, ContentEncoding: c.ContentEncoding}
				err := tryCopy(func() error { return p.Bucket.CopyFile(cctx, req.Site, c.From, c.Path, req.Version, f) })
				if errors.Is(err, releases.ErrCopyRefused) {
					refused.Add(1)
					err = p.relay(cctx, req, c, f, err)
				}
				if releases.ErrorCode(err) == releases.ENOTFOUND {
					return nil // that old release is gone; nothing to carry
				}
				if err == nil {
					carriedMu.Lock()
					carriedOK = append(carriedOK, c)
					carriedMu.Unlock()
				}
				return err
			})
		}
		return nil
	})
	g.Go(func() error {
		return forEachFrom(gctx, chanSource(ch), conc, func(ctx context.Context, buf []byte, _ int, f file) error {
			e, err := hashFile(req, f, buf)
			if err != nil {
				return err
			}
			if src, ok := pl.from(e); ok {
				err := tryCopy(func() error { return p.copy(ctx, req, src, &e) })
				switch {
				case err == nil:
					copied.Add(1)
					bytesCopied.Add(e.Size)
					e.from = src
				case errors.Is(err, releases.ErrCopyRefused):
					refused.Add(1) // sent below
				case releases.ErrorCode(err) != releases.ENOTFOUND:
					return err
				}
				// ENOTFOUND: the source went away (pruned meanwhile):
				// send it after all.
			}
			if e.from.version == "" {
				if err := p.upload(ctx, req, &e); err != nil {
					return err
				}
				bytesUploaded.Add(e.Size)
			}
			files.Add(1)
			bytesAll.Add(e.Size)
			return mf.add(e.ManifestFile)
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
	// The first walk counted the files; the directory may have grown
	// since (the upload walks it again), and a manifest past the limit
	// would be a release nobody could read.
	if n := int(files.Load()) + len(carriedOK); n > releases.MaxManifestFiles {
		return nil, releases.Errorf(releases.EINVALID, "publish %s of site %s: %s grew to %d files during the upload (with carried assets), over the %d a release holds; no manifest written (the release does not exist)",
			req.Version, req.Site.Name, req.Dir, n, releases.MaxManifestFiles)
	}
	sort.Slice(carriedOK, func(i, j int) bool { return carriedOK[i].Path < carriedOK[j].Path })
	m := &releases.Manifest{Version: req.Version, Commit: req.Commit, Message: req.Message, Build: req.Build, Ancestors: req.Ancestors,
		PublishedAt: now().UTC(), Carried: carriedOK, Stamped: true}
	size, err := mf.finish(m)
	if err != nil {
		return nil, err
	}
	if size > releases.MaxManifestBytes {
		return nil, releases.Errorf(releases.EINVALID, "publish %s of site %s: its manifest would be %d bytes, over the %d deploybot reads; no manifest written (the release does not exist)",
			req.Version, req.Site.Name, size, releases.MaxManifestBytes)
	}
	if err := p.Bucket.WriteManifestJSON(ctx, req.Site, req.Version, mf.f, size); err != nil {
		return nil, err
	}
	sort.Slice(excluded, func(i, j int) bool { return excluded[i].Path < excluded[j].Path })
	n := int(files.Load())
	return &Result{Version: req.Version, Files: n, Bytes: bytesAll.Load(), Uploaded: n - int(copied.Load()), Copied: int(copied.Load()),
		Carried: len(carriedOK), BytesUploaded: bytesUploaded.Load(), BytesCopied: bytesCopied.Load(), CopiesRefused: int(refused.Load()),
		Excluded: excluded, Seconds: now().Sub(start).Seconds()}, nil
}

// copy copies an unchanged file from an earlier release. Its content goes
// along (the bytes read while hashing, or the file), read only if an
// object is already at the destination, to compare.
func (p *Publisher) copy(ctx context.Context, req Request, src source, e *entry) error {
	f := e.file()
	if e.body != nil {
		f.Body = bytes.NewReader(e.body)
	} else if fh, err := os.Open(e.abs); err == nil {
		defer fh.Close()
		f.Body = fh
	}
	return p.Bucket.CopyFile(ctx, req.Site, src.version, src.path, req.Version, f)
}

// relay carries an asset whose server-side copy the bucket refused: it
// reads the file from its release and writes it into this one, with the
// SHA-256 the manifest records, so S3 refuses bytes that are not that
// file's. A bucket that cannot read files returns refused as it was.
func (p *Publisher) relay(ctx context.Context, req Request, c releases.ManifestFile, f releases.File, refused error) error {
	opener, ok := p.Bucket.(releases.FileOpener)
	if !ok {
		return refused
	}
	rc, err := opener.OpenFile(ctx, req.Site, c.From, c.Path)
	if err != nil {
		return err
	}
	defer rc.Close()
	if c.Size <= smallFile {
		body, err := io.ReadAll(io.LimitReader(rc, c.Size+1))
		if err != nil {
			return fmt.Errorf("reading %s of %s to carry it: %w", c.Path, c.From, err)
		}
		if int64(len(body)) != c.Size {
			return fmt.Errorf("carrying %s of %s: it is %d bytes, its manifest says %d", c.Path, c.From, len(body), c.Size)
		}
		f.Body = bytes.NewReader(body)
		return p.Bucket.PutFile(ctx, req.Site, req.Version, f)
	}
	// A large asset is spooled to disk, not held: PutFile reads it
	// again for a retry.
	tmp, err := os.CreateTemp("", "deploybot-carry-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	defer tmp.Close()
	n, err := io.Copy(tmp, io.LimitReader(rc, c.Size+1))
	if err != nil {
		return fmt.Errorf("reading %s of %s to carry it: %w", c.Path, c.From, err)
	}
	if n != c.Size {
		return fmt.Errorf("carrying %s of %s: it is %d bytes, its manifest says %d", c.Path, c.From, n, c.Size)
	}
	if _, err := tmp.Seek(0, io.SeekStart); err != nil {
		return err
	}
	f.Body = tmp
	return p.Bucket.PutFile(ctx, req.Site, req.Version, f)
}

type entry struct {
	releases.ManifestFile
	abs  string
	rule string
	from struct{ version, path string }
	// body holds a small file read while hashing (in the worker's
	// buffer), so it is uploaded without opening and reading it again;
	// nil for larger files and once the worker has moved on.
	body []byte
}

// smallFile is the size up to which a file is kept in memory between
// hashing and uploading: most of a site's files, at most concurrency x
// 64 KiB held at once.
const smallFile = 64 << 10

func (e *entry) file() releases.File {
	return releases.File{Path: e.Path, Size: e.Size, ContentType: e.ContentType, CacheControl: e.CacheControl,
		ContentEncoding: e.ContentEncoding, SHA256: e.SHA256}
}

// hashFile reads a file once for its SHA-256 and picks its headers. A
// small file is read whole into buf (at least smallFile+1 bytes), where
// the upload finds it; a larger one is streamed, never held in memory.
func hashFile(req Request, f file, buf []byte) (entry, error) {
	fh, err := os.Open(f.abs)
	if err != nil {
		return entry{}, err
	}
	defer fh.Close()
	e := entry{abs: f.abs, rule: "default"}
	var head []byte
	if st, err := fh.Stat(); err == nil && st.Size() <= smallFile {
		// One read for the hash, the sniffing and the upload, into a
		// buffer of the right size: io.ReadAll would start small and grow,
		// reading in pieces and copying as it goes. The extra byte tells a
		// file that grew since Stat.
		n, err := io.ReadFull(fh, buf[:st.Size()+1])
		switch {
		case err == nil:
			return entry{}, fmt.Errorf("reading %s: it changed while being published", f.abs)
		case err != io.EOF && err != io.ErrUnexpectedEOF:
			return entry{}, fmt.Errorf("reading %s: %w", f.abs, err)
		}
		body := buf[:n]
		sum := sha256.Sum256(body)
		e.Path, e.Size, e.SHA256, e.body = f.rel, int64(n), hex.EncodeToString(sum[:]), body
		head = body[:min(n, 512)]
	} else {
		h := sha256.New()
		head = buf[:512]
		n, _ := io.ReadFull(fh, head)
		head = head[:n]
		h.Write(head)
		rest, err := io.CopyBuffer(h, struct{ io.Reader }{fh}, buf) // the worker's buffer, not a fresh 32 KiB one
		if err != nil {
			return entry{}, fmt.Errorf("reading %s: %w", f.abs, err)
		}
		e.Path, e.Size, e.SHA256 = f.rel, int64(n)+rest, hex.EncodeToString(h.Sum(nil))
	}
	e.ContentType, e.CacheControl = ContentType(f.rel, head), CacheControl(f.rel)
	for _, r := range req.Rules {
		if r.matches(f.rel) {
			e.rule = r.Match
			if r.CacheControl != "" {
				e.CacheControl = r.CacheControl
			}
			if r.ContentType != "" {
				e.ContentType = r.ContentType
			}
			e.ContentEncoding = r.ContentEncoding
			break
		}
	}
	return e, nil
}

// upload sends one file: a small one from the bytes read while hashing,
// a larger one streamed from disk.
func (p *Publisher) upload(ctx context.Context, req Request, e *entry) error {
	if e.body != nil {
		f := e.file()
		f.Body = bytes.NewReader(e.body)
		return p.Bucket.PutFile(ctx, req.Site, req.Version, f)
	}
	fh, err := os.Open(e.abs)
	if err != nil {
		return err
	}
	defer fh.Close()
	f := e.file()
	f.Body = fh
	return p.Bucket.PutFile(ctx, req.Site, req.Version, f)
}
