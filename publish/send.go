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

	"github.com/deploybot/deploybot/releases"
)

// sending is one publish's state, shared by its walker, its workers and
// its carries: what was sent, the carried assets that made it, and
// whether the bucket refuses conditional copies.
type sending struct {
	p   *Publisher
	req Request
	pl  *plan
	mf  *manifestFile

	files, copied                        atomic.Int64
	bytesAll, bytesCopied, bytesUploaded atomic.Int64
	// Once the bucket refuses a conditional copy it refuses them all
	// (conditional-writes-enforce.html): the rest are sent at once.
	copiesRefused atomic.Bool
	refused       atomic.Int64

	carriedMu sync.Mutex
	carriedOK []releases.ManifestFile
	excluded  []Excluded // the walker's alone until the walk ends
}

func (st *sending) tryCopy(do func() error) error {
	if st.copiesRefused.Load() {
		return releases.ErrCopyRefused
	}
	err := do()
	if errors.Is(err, releases.ErrCopyRefused) {
		st.copiesRefused.Store(true)
	}
	return err
}

// walk hands the directory's files to the workers through ch.
func (st *sending) walk(ctx context.Context, ch chan<- file) error {
	var err error
	st.excluded, err = walkEach(st.req.Dir, st.req.Inputs, func(f file) error {
		st.pl.carry.remove(f.rel) // this goroutine alone touches pl.carry until the walk ends
		select {
		case ch <- f:
			return nil
		case <-ctx.Done():
			return ctx.Err()
		}
	})
	return err
}

// carry copies an asset of an earlier release into this one.
func (st *sending) carry(ctx context.Context, c releases.ManifestFile) error {
	req := st.req
	f := releases.File{Path: c.Path, Size: c.Size, SHA256: c.SHA256, ContentType: c.ContentType, CacheControl: c.CacheControl, ContentEncoding: c.ContentEncoding}
	err := st.tryCopy(func() error { return st.p.Bucket.CopyFile(ctx, req.Site, c.From, c.Path, req.Version, f) })
	if errors.Is(err, releases.ErrCopyRefused) {
		st.refused.Add(1)
		err = st.p.relay(ctx, req, c, f, err)
	}
	if releases.ErrorCode(err) == releases.ENOTFOUND {
		return nil // that old release is gone; nothing to carry
	}
	if err == nil {
		st.carriedMu.Lock()
		st.carriedOK = append(st.carriedOK, c)
		st.carriedMu.Unlock()
	}
	return err
}

// send hashes one file, copies or uploads it, and adds its entry to the
// manifest.
func (st *sending) send(ctx context.Context, buf []byte, f file) error {
	req := st.req
	e, err := hashFile(req, f, buf)
	if err != nil {
		return err
	}
	if src, ok := st.pl.from(e); ok {
		err := st.tryCopy(func() error { return st.p.copy(ctx, req, src, &e) })
		switch {
		case err == nil:
			st.copied.Add(1)
			st.bytesCopied.Add(e.Size)
			e.from = src
		case errors.Is(err, releases.ErrCopyRefused):
			st.refused.Add(1) // sent below
		case releases.ErrorCode(err) != releases.ENOTFOUND:
			return err
		}
		// ENOTFOUND: the source went away (pruned meanwhile):
		// send it after all.
	}
	if e.from.version == "" {
		if err := st.p.upload(ctx, req, &e); err != nil {
			return err
		}
		st.bytesUploaded.Add(e.Size)
	}
	st.files.Add(1)
	st.bytesAll.Add(e.Size)
	return st.mf.add(e.ManifestFile)
}

// writeManifest writes the release's manifest, last, once everything it
// names is in the bucket.
func (st *sending) writeManifest(ctx context.Context, now func() time.Time) error {
	req := st.req
	// The first walk counted the files; the directory may have grown
	// since (the upload walks it again), and a manifest past the limit
	// would be a release nobody could read.
	if n := int(st.files.Load()) + len(st.carriedOK); n > releases.MaxManifestFiles {
		return releases.Errorf(releases.EINVALID, "publish %s of site %s: %s grew to %d files during the upload (with carried assets), over the %d a release holds; no manifest written (the release does not exist)",
			req.Version, req.Site.Name, req.Dir, n, releases.MaxManifestFiles)
	}
	sort.Slice(st.carriedOK, func(i, j int) bool { return st.carriedOK[i].Path < st.carriedOK[j].Path })
	m := &releases.Manifest{Version: req.Version, Commit: req.Commit, Message: req.Message, Build: req.Build, Ancestors: req.Ancestors,
		PublishedAt: now().UTC(), Carried: st.carriedOK, Stamped: true}
	size, err := st.mf.finish(m)
	if err != nil {
		return err
	}
	if size > releases.MaxManifestBytes {
		return releases.Errorf(releases.EINVALID, "publish %s of site %s: its manifest would be %d bytes, over the %d deploybot reads; no manifest written (the release does not exist)",
			req.Version, req.Site.Name, size, releases.MaxManifestBytes)
	}
	return st.p.Bucket.WriteManifestJSON(ctx, req.Site, req.Version, st.mf.f, size)
}

func (st *sending) result(start time.Time, now func() time.Time) *Result {
	sort.Slice(st.excluded, func(i, j int) bool { return st.excluded[i].Path < st.excluded[j].Path })
	n := int(st.files.Load())
	return &Result{Version: st.req.Version, Files: n, Bytes: st.bytesAll.Load(), Uploaded: n - int(st.copied.Load()), Copied: int(st.copied.Load()),
		Carried: len(st.carriedOK), BytesUploaded: st.bytesUploaded.Load(), BytesCopied: st.bytesCopied.Load(), CopiesRefused: int(st.refused.Load()),
		Excluded: st.excluded, Seconds: now().Sub(start).Seconds()}
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
