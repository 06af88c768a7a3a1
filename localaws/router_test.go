package localaws

import (
	"testing"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// The routing both generated functions share, run in the stand-in's
// function runtime: a table of viewer paths and the key each becomes, for
// a static site generator's layout, a single-page app, and routing off.
func TestGeneratedRouting(t *testing.T) {
	hugo := releases.DefaultRouting
	spa := releases.Routing{Index: "index.html", Fallback: "index.html"}
	tests := []struct {
		routing releases.Routing
		uri     string
		want    string // the URI the origin gets, or "400"
	}{
		{hugo, "/", "/index.html"},
		{hugo, "/docs/", "/docs/index.html"},
		{hugo, "/docs", "/docs/index.html"},
		{hugo, "/docs/intro/", "/docs/intro/index.html"},
		{hugo, "/app.3f9c1b2a.js", "/app.3f9c1b2a.js"},
		{hugo, "/v1.2/notes", "/v1.2/notes/index.html"}, // a dot in a folder name is not an extension
		{hugo, "/.well-known/apple-app-site-association", "/.well-known/apple-app-site-association"},
		{hugo, "/docs//x", "400"},
		{hugo, "/docs/../secret", "400"},
		{spa, "/", "/index.html"},
		{spa, "/settings/profile", "/index.html"},
		{spa, "/settings/profile/", "/index.html"},
		{spa, "/static/app.js", "/static/app.js"},
		{releases.Routing{}, "/", "/index.html"}, // the default root object's, whatever the routing
		{releases.Routing{}, "/docs/", "/docs/"},
		{releases.Routing{}, "/docs", "/docs"},
		{releases.Routing{Index: "default.htm"}, "/docs", "/docs/default.htm"},
	}
	for _, tt := range tests {
		site := releases.Site{Name: "www", Prefix: "www/", Routing: tt.routing}
		router, err := cloud.RouterCode(site)
		if err != nil {
			t.Fatal(err)
		}
		kvs, err := cloud.FunctionCode(site, "kvs-id")
		if err != nil {
			t.Fatal(err)
		}
		for name, code := range map[string]string{"router": router, "kvs": kvs} {
			fn, err := compileFunction(code)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			req := fnRequest{Method: "GET", URI: tt.uri, Querystring: map[string]fnValue{}, Headers: map[string]fnValue{}, Cookies: map[string]fnValue{}}
			res, err := fn.run(req, "127.0.0.1", func(_, key string) (string, bool) { return "v7", key == "www" })
			if err != nil {
				t.Fatalf("%s %s: %v", name, tt.uri, err)
			}
			got := res.URI
			if res.StatusCode != 0 {
				got = "400"
				if res.StatusCode != 400 {
					t.Fatalf("%s %s: status %d", name, tt.uri, res.StatusCode)
				}
			} else if name == "kvs" {
				// The kvs function puts the release folder in front.
				want := "/www/v7" + tt.want
				if got != want {
					t.Errorf("%s %+v %s: %s, want %s", name, tt.routing, tt.uri, got, want)
				}
				continue
			}
			if got != tt.want {
				t.Errorf("%s %+v %s: %s, want %s", name, tt.routing, tt.uri, got, tt.want)
			}
		}
	}
}
