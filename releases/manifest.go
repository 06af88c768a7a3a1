package releases

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"hash/maphash"
	"io"
	"strings"
	"unicode/utf8"
)

// Limits of a manifest. A 100,000-file site writes a manifest of about
// 22 MB (some 220 bytes an entry: path, size, SHA-256, headers) and its
// parsed form takes about 60 MB; the limits leave twice that room, and
// keep a hostile manifest (anyone who can write to the bucket can write
// one) from taking serve's memory: decoding stops at the first entry or
// byte past them.
const (
	MaxManifestBytes = 64 << 20
	MaxManifestFiles = 200_000 // files and carried files together
)

// RefusedManifest is a manifest in the bucket that is not valid, with the
// ETag of what was read: until the object changes, reading it again would
// only refuse it again. Its code is the wrapped error's (EINVALID).
type RefusedManifest struct {
	ETag string
	Err  error
}

func (e *RefusedManifest) Error() string { return e.Err.Error() }
func (e *RefusedManifest) Unwrap() error { return e.Err }

// ParseManifest reads the manifest stored for version; see DecodeManifest.
func ParseManifest(raw []byte, version string) (*Manifest, error) {
	return DecodeManifest(bytes.NewReader(raw), version)
}

// DecodeManifest reads the manifest stored for version from r, as a
// stream: it never holds more than one entry beyond what it keeps, and
// refuses a manifest past MaxManifestBytes or MaxManifestFiles as soon as
// it gets there. A manifest is outside input, and promote, verify, the
// flip's carry and prune act on what it lists, so it is checked, not
// trusted: it names the version it is stored as; every path is a clean
// relative path inside the release folder, listed once; sizes are not
// negative; hashes are SHA-256 in hex; carried files name the release they
// came from. Unknown fields are allowed (a newer deploybot may add some).
func DecodeManifest(r io.Reader, version string) (*Manifest, error) {
	var files, carried []ManifestFile
	m, err := DecodeManifestFiles(r, version, func(f ManifestFile, isCarried bool) error {
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

// DecodeManifestFiles is DecodeManifest for a reader that need not keep
// the files: each entry (Files, then Carried, as stored) goes to visit as
// soon as it is decoded and checked, and the Manifest returned has none.
// It holds about 40 bytes an entry (what tells a path listed twice), not
// the entries. visit sees the entries before the manifest is known to be
// whole and valid (the version it names may come after them): when
// DecodeManifestFiles returns an error, what visit saw must be dropped.
// An error from visit stops the decoding and is returned.
func DecodeManifestFiles(r io.Reader, version string, visit func(f ManifestFile, carried bool) error) (*Manifest, error) {
	lr := &limitedReader{r: r, left: MaxManifestBytes}
	dec := json.NewDecoder(lr)
	m, err := decodeManifest(dec, version, visit)
	if lr.over {
		return nil, Errorf(EINVALID, "manifest of %s is larger than %d bytes", version, MaxManifestBytes)
	}
	if err != nil {
		return nil, err
	}
	if dec.More() {
		return nil, Errorf(EINVALID, "manifest of %s has data after the JSON object", version)
	}
	if _, err := dec.Token(); err != io.EOF {
		if lr.over {
			return nil, Errorf(EINVALID, "manifest of %s is larger than %d bytes", version, MaxManifestBytes)
		}
		return nil, Errorf(EINVALID, "manifest of %s has data after the JSON object", version)
	}
	return checkManifest(m, version)
}

func decodeManifest(dec *json.Decoder, version string, visit func(ManifestFile, bool) error) (*Manifest, error) {
	bad := func(err error) error {
		return Errorf(EINVALID, "manifest of %s is not valid JSON: %w", version, err)
	}
	if t, err := dec.Token(); err != nil {
		return nil, bad(err)
	} else if t != json.Delim('{') {
		return nil, bad(fmt.Errorf("want an object, found %v", t))
	}
	var m Manifest
	entries := 0
	seen := entryCheck{paths: map[[2]uint64]struct{}{}}
	for dec.More() {
		t, err := dec.Token()
		if err != nil {
			return nil, bad(err)
		}
		key, _ := t.(string)
		switch key {
		case "files", "carried":
			carried := key == "carried"
			if t, err := dec.Token(); err != nil {
				return nil, bad(err)
			} else if t == nil {
				continue
			} else if t != json.Delim('[') {
				return nil, bad(fmt.Errorf("%s: want a list", key))
			}
			for dec.More() {
				if entries++; entries > MaxManifestFiles {
					return nil, Errorf(EINVALID, "manifest of %s lists more than %d files", version, MaxManifestFiles)
				}
				var f ManifestFile
				if err := dec.Decode(&f); err != nil {
					return nil, bad(err)
				}
				if err := seen.check(version, f, carried); err != nil {
					return nil, err
				}
				if err := visit(f, carried); err != nil {
					return nil, err
				}
			}
			if _, err := dec.Token(); err != nil {
				return nil, bad(err)
			}
		case "version":
			err = dec.Decode(&m.Version)
		case "commit":
			err = dec.Decode(&m.Commit)
		case "message":
			err = dec.Decode(&m.Message)
		case "branch":
			err = dec.Decode(&m.Branch)
		case "ci_url":
			err = dec.Decode(&m.CIURL)
		case "pull_request":
			err = dec.Decode(&m.PullRequest)
		case "ancestors":
			err = dec.Decode(&m.Ancestors)
		case "published_at":
			err = dec.Decode(&m.PublishedAt)
		case "stamped":
			err = dec.Decode(&m.Stamped)
		default:
			var skip json.RawMessage
			err = dec.Decode(&skip)
		}
		if err != nil {
			return nil, bad(err)
		}
	}
	if _, err := dec.Token(); err != nil {
		return nil, bad(err)
	}
	return &m, nil
}

// limitedReader reads at most left bytes and says when r had more.
type limitedReader struct {
	r    io.Reader
	left int64
	over bool
}

func (l *limitedReader) Read(p []byte) (int, error) {
	if l.left <= 0 {
		// One byte more tells a manifest of exactly the limit from a
		// larger one.
		var one [1]byte
		if n, _ := l.r.Read(one[:]); n > 0 {
			l.over = true
		}
		return 0, io.EOF
	}
	if int64(len(p)) > l.left {
		p = p[:l.left]
	}
	n, err := l.r.Read(p)
	l.left -= int64(n)
	return n, err
}

// entryCheck checks each entry of a manifest as it is decoded: its path
// is clean and listed once (kept as two 64-bit hashes of it, 16 bytes an
// entry rather than the path; a false "listed twice" needs both to
// collide), its size and hash are well-formed, and a carried file names
// the release it came from.
type entryCheck struct {
	paths map[[2]uint64]struct{}
}

var pathSeeds = [2]maphash.Seed{maphash.MakeSeed(), maphash.MakeSeed()}

func (c entryCheck) check(version string, f ManifestFile, carried bool) error {
	kind := "file"
	if carried {
		kind = "carried file"
	}
	if err := ValidPath(f.Path); err != nil {
		return Errorf(EINVALID, "manifest of %s: %s %q: %v", version, kind, f.Path, err)
	}
	key := [2]uint64{maphash.String(pathSeeds[0], f.Path), maphash.String(pathSeeds[1], f.Path)}
	if _, dup := c.paths[key]; dup {
		return Errorf(EINVALID, "manifest of %s lists %q twice", version, f.Path)
	}
	c.paths[key] = struct{}{}
	if f.Size < 0 {
		return Errorf(EINVALID, "manifest of %s: %s %q has a negative size", version, kind, f.Path)
	}
	if f.SHA256 != "" {
		if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
			return Errorf(EINVALID, "manifest of %s: %s %q: sha256 is not 64 hex digits", version, kind, f.Path)
		}
	}
	if carried && ValidateVersion(f.From) != nil {
		return Errorf(EINVALID, "manifest of %s: carried file %q names no valid release it came from (%q)", version, f.Path, f.From)
	}
	return nil
}

// checkManifest checks what DecodeManifestFiles knows only at the end.
func checkManifest(m *Manifest, version string) (*Manifest, error) {
	if m.Version != version {
		return nil, Errorf(EINVALID, "manifest stored as %s says it is version %q", version, m.Version)
	}
	if err := m.Build.Check(); err != nil {
		return nil, Errorf(EINVALID, "manifest of %s: %s", version, ErrorMessage(err))
	}
	if err := CheckAncestors(m.Ancestors); err != nil {
		return nil, Errorf(EINVALID, "manifest of %s: %s", version, ErrorMessage(err))
	}
	return m, nil
}

// ValidPath accepts what publish writes: forward slashes, no leading
// slash, no empty, "." or ".." segment, valid UTF-8, no control characters.
func ValidPath(p string) error {
	switch {
	case p == "":
		return fmt.Errorf("empty path")
	case len(p) > 900:
		return fmt.Errorf("longer than 900 bytes (S3 keys are at most 1,024, with the prefix and version)")
	case !utf8.ValidString(p):
		return fmt.Errorf("not UTF-8")
	case strings.HasPrefix(p, "/"):
		return fmt.Errorf("absolute path")
	case strings.ContainsAny(p, "\\\x00"):
		return fmt.Errorf("backslash or NUL")
	}
	for _, r := range p {
		if r < 0x20 || r == 0x7f {
			return fmt.Errorf("control character")
		}
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "" || seg == "." || seg == ".." {
			return fmt.Errorf("empty, \".\" or \"..\" segment")
		}
	}
	return nil
}
