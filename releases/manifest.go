package releases

import (
	"bytes"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf8"
)

// ParseManifest reads the manifest stored for version. A manifest is
// outside input (anyone who can write to the bucket can write one), and
// promote, verify, the flip's carry and prune act on what it lists, so it
// is checked, not trusted: it names the version it is stored as; every
// path is a clean relative path inside the release folder, listed once;
// sizes are not negative; hashes are SHA-256 in hex; carried files name
// the release they came from. Unknown fields are allowed (a newer
// deploybot may add some).
func ParseManifest(raw []byte, version string) (*Manifest, error) {
	var m Manifest
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(&m); err != nil {
		return nil, Errorf(EINVALID, "manifest of %s is not valid JSON: %w", version, err)
	}
	if dec.More() {
		return nil, Errorf(EINVALID, "manifest of %s has data after the JSON object", version)
	}
	if m.Version != version {
		return nil, Errorf(EINVALID, "manifest stored as %s says it is version %q", version, m.Version)
	}
	seen := make(map[string]bool, len(m.Files)+len(m.Carried))
	check := func(kind string, f ManifestFile) error {
		if err := ValidPath(f.Path); err != nil {
			return Errorf(EINVALID, "manifest of %s: %s %q: %v", version, kind, f.Path, err)
		}
		if seen[f.Path] {
			return Errorf(EINVALID, "manifest of %s lists %q twice", version, f.Path)
		}
		seen[f.Path] = true
		if f.Size < 0 {
			return Errorf(EINVALID, "manifest of %s: %s %q has a negative size", version, kind, f.Path)
		}
		if f.SHA256 != "" {
			if b, err := hex.DecodeString(f.SHA256); err != nil || len(b) != 32 {
				return Errorf(EINVALID, "manifest of %s: %s %q: sha256 is not 64 hex digits", version, kind, f.Path)
			}
		}
		return nil
	}
	for _, f := range m.Files {
		if err := check("file", f); err != nil {
			return nil, err
		}
	}
	for _, f := range m.Carried {
		if err := check("carried file", f); err != nil {
			return nil, err
		}
		if ValidateVersion(f.From) != nil {
			return nil, Errorf(EINVALID, "manifest of %s: carried file %q names no valid release it came from (%q)", version, f.Path, f.From)
		}
	}
	return &m, nil
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
