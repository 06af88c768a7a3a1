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
	"io"
	"io/fs"
	"mime"
	"net/http"
	"os"
	"path"
	"path/filepath"
	"sort"
	"strings"
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
	Dir     string
	// Concurrency is how many uploads run at once. Zero: 16, which keeps
	// a CI runner's link busy with small files without tripping S3's
	// per-prefix request rates (3,500 writes/s).
	Concurrency int
}

// Result is what `publish --json` prints.
type Result struct {
	Version       string  `json:"version"`
	Files         int     `json:"files"`
	Bytes         int64   `json:"bytes"`
	Uploaded      int     `json:"uploaded"`
	Copied        int     `json:"copied"`
	BytesUploaded int64   `json:"bytes_uploaded"`
	Seconds       float64 `json:"seconds"`
}

// Publisher uploads releases into a bucket.
type Publisher struct {
	Bucket releases.Bucket
	Now    func() time.Time
}

type file struct {
	rel  string // forward slashes, relative to the release folder
	abs  string
	size int64
}

// Publish uploads req.Dir as release req.Version. It refuses a version that
// is already published before sending anything, so a repeated publish
// changes nothing; a publish that fails part way leaves no manifest, so the
// partial folder never goes live.
func (p *Publisher) Publish(ctx context.Context, req Request) (*Result, error) {
	now := time.Now
	if p.Now != nil {
		now = p.Now
	}
	start := now()
	if err := releases.ValidateVersion(req.Version); err != nil {
		return nil, err
	}
	files, err := walk(req.Dir)
	if err != nil {
		return nil, err
	}
	if _, err := p.Bucket.ReadManifest(ctx, req.Site, req.Version); err == nil {
		return nil, releases.Errorf(releases.ECONFLICT, "site %s: version %s is already published; releases are immutable, publish a new version", req.Site.Name, req.Version)
	} else if !errors.Is(err, releases.ErrNoManifest) {
		return nil, err
	}

	conc := req.Concurrency
	if conc <= 0 {
		conc = 16
	}
	entries := make([]releases.ManifestFile, len(files))
	var sent atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(conc)
	for i, f := range files {
		g.Go(func() error {
			e, err := p.upload(gctx, req, f)
			if err != nil {
				return err
			}
			entries[i] = e
			sent.Add(e.Size)
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, fmt.Errorf("publish %s of site %s stopped, no manifest written (the release does not exist): %w", req.Version, req.Site.Name, err)
	}
	m := &releases.Manifest{Version: req.Version, Commit: req.Commit, Message: req.Message,
		PublishedAt: now().UTC(), Files: entries}
	if err := p.Bucket.WriteManifest(ctx, req.Site, m); err != nil {
		return nil, err
	}
	res := &Result{Version: req.Version, Files: len(files), Uploaded: len(files), BytesUploaded: sent.Load(),
		Seconds: now().Sub(start).Seconds()}
	res.Bytes = res.BytesUploaded
	return res, nil
}

// upload hashes one file and sends it, streaming from disk both times so
// memory stays flat whatever the file size.
func (p *Publisher) upload(ctx context.Context, req Request, f file) (releases.ManifestFile, error) {
	fh, err := os.Open(f.abs)
	if err != nil {
		return releases.ManifestFile{}, err
	}
	defer fh.Close()
	h := sha256.New()
	head := make([]byte, 512)
	n, _ := io.ReadFull(fh, head)
	h.Write(head[:n])
	size, err := io.Copy(h, fh)
	if err != nil {
		return releases.ManifestFile{}, fmt.Errorf("reading %s: %w", f.abs, err)
	}
	size += int64(n)
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		return releases.ManifestFile{}, err
	}
	e := releases.ManifestFile{Path: f.rel, Size: size, SHA256: hex.EncodeToString(h.Sum(nil)),
		ContentType: ContentType(f.rel, head[:n]), CacheControl: CacheControl(f.rel)}
	err = p.Bucket.PutFile(ctx, req.Site, req.Version, releases.File{Path: f.rel, Body: fh, Size: size,
		ContentType: e.ContentType, CacheControl: e.CacheControl, SHA256: e.SHA256})
	return e, err
}

// walk lists the regular files under dir (following symlinks to files),
// sorted by path.
func walk(dir string) ([]file, error) {
	info, err := os.Stat(dir)
	if err != nil {
		return nil, releases.Errorf(releases.EINVALID, "publish: %v", err)
	}
	if !info.IsDir() {
		return nil, releases.Errorf(releases.EINVALID, "publish: %s is not a directory", dir)
	}
	var files []file
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return nil
		}
		st, err := os.Stat(p) // follows symlinks
		if err != nil {
			return err
		}
		if !st.Mode().IsRegular() {
			return nil
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		rel = filepath.ToSlash(rel)
		if !validPath(rel) {
			return releases.Errorf(releases.EINVALID, "publish: %q cannot be an S3 key under a release folder", rel)
		}
		files = append(files, file{rel: rel, abs: p, size: st.Size()})
		return nil
	})
	if err != nil {
		return nil, err
	}
	if len(files) == 0 {
		return nil, releases.Errorf(releases.EINVALID, "publish: %s has no files", dir)
	}
	sort.Slice(files, func(i, j int) bool { return files[i].rel < files[j].rel })
	return files, nil
}

func validPath(rel string) bool {
	return rel != "" && len(rel) <= 900 && path.Clean(rel) == rel && !strings.HasPrefix(rel, "../") && !strings.ContainsAny(rel, "\x00\r\n")
}

// webTypes pins the types of common web files, so a release does not
// depend on the mime.types file of whichever CI runner built it.
var webTypes = map[string]string{
	".html": "text/html; charset=utf-8", ".htm": "text/html; charset=utf-8",
	".css": "text/css; charset=utf-8", ".js": "text/javascript; charset=utf-8",
	".mjs": "text/javascript; charset=utf-8", ".json": "application/json",
	".map": "application/json", ".webmanifest": "application/manifest+json",
	".xml": "application/xml", ".txt": "text/plain; charset=utf-8",
	".svg": "image/svg+xml", ".png": "image/png", ".jpg": "image/jpeg", ".jpeg": "image/jpeg",
	".gif": "image/gif", ".webp": "image/webp", ".avif": "image/avif", ".ico": "image/x-icon",
	".woff": "font/woff", ".woff2": "font/woff2", ".ttf": "font/ttf", ".otf": "font/otf",
	".wasm": "application/wasm", ".pdf": "application/pdf", ".mp4": "video/mp4", ".webm": "video/webm",
}

// ContentType is the MIME type for a file: by extension, else sniffed from
// its first bytes, else application/octet-stream.
func ContentType(name string, head []byte) string {
	if t, ok := webTypes[strings.ToLower(path.Ext(name))]; ok {
		return t
	}
	if t := mime.TypeByExtension(path.Ext(name)); t != "" {
		return t
	}
	if len(head) > 0 {
		return http.DetectContentType(head)
	}
	return "application/octet-stream"
}

// Fingerprinted reports whether a file name carries a content hash in the
// segment before its extension: app.3f9c1b2a.js, chunk-5QKZ7B3X.js. The
// segment is 8+ letters and digits, either hex or a mix of both.
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
	hex, digit, letter := true, false, false
	for _, c := range seg {
		switch {
		case c >= '0' && c <= '9':
			digit = true
		case c >= 'a' && c <= 'f':
			letter = true
		case c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z':
			letter, hex = true, false
		default:
			return false
		}
	}
	return hex || (digit && letter)
}

// CacheControl is the default Cache-Control of a file: fingerprinted files
// never change under their name and are cached for a year; everything else
// (HTML above all) is revalidated on every request, so a flip is seen at
// once.
func CacheControl(name string) string {
	if Fingerprinted(name) && !strings.HasSuffix(name, ".html") {
		return "public, max-age=31536000, immutable"
	}
	return "no-cache"
}
