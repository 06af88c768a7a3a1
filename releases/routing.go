package releases

import (
	"regexp"
	"strings"
)

// Routing is how a site's paths map onto the files of the live release
// when a path does not name a file. CloudFront alone maps only "/" (the
// default root object); the rest is done at the edge by the site's
// viewer-request function (FunctionCode, RouterCode in package cloud) and
// by the distribution's custom error responses.
type Routing struct {
	// Index is the file a folder's path serves: "/docs/" and "/docs"
	// serve docs/<Index>. Empty: off.
	Index string
	// Fallback is the file every path without a file extension serves,
	// with status 200: a single-page app's client routes. It takes
	// precedence over Index. Empty: off.
	Fallback string
	// NotFound is the page served, with status 404, for a path the live
	// release lacks. Empty: CloudFront's own error.
	NotFound string
}

// DefaultRouting is what a site gets unless it says otherwise: what a
// static site generator (Hugo, Jekyll, Docusaurus, Eleventy) writes.
var DefaultRouting = Routing{Index: "index.html", NotFound: "404.html"}

var routingPathRE = regexp.MustCompile(`^[A-Za-z0-9._~-]+(/[A-Za-z0-9._~-]+)*$`)

// ValidRoutingPath reports whether p can name a routing file: a relative
// path of letters, digits and ._~- with no "." or ".." segment, at most
// 255 bytes. The rule keeps it a literal in the generated function and in
// the distribution's config.
func ValidRoutingPath(p string) bool {
	if len(p) > 255 || !routingPathRE.MatchString(p) {
		return false
	}
	for _, seg := range strings.Split(p, "/") {
		if seg == "." || seg == ".." {
			return false
		}
	}
	return true
}
