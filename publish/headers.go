package publish

import (
	"mime"
	"net/http"
	"path"
	"strings"

	"github.com/deploybot/deploybot/releases"
)

// Rule overrides the default headers of matching files. A pattern
// without "/" matches the file name, one with "/" the path in the release.
type Rule struct {
	Match           string
	CacheControl    string
	ContentType     string
	ContentEncoding string
}

func (r Rule) matches(rel string) bool {
	name := rel
	if !strings.Contains(r.Match, "/") {
		name = path.Base(rel)
	}
	ok, _ := path.Match(r.Match, name)
	return ok
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

// Fingerprinted reports whether a file name carries a content hash
// (releases.Fingerprinted, kept here for callers of this package).
func Fingerprinted(name string) bool { return releases.Fingerprinted(name) }

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
