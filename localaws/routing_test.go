package localaws

import (
	"testing"
)

func TestMatchPathPattern(t *testing.T) {
	tests := []struct {
		pattern, path string
		want          bool
	}{
		{"/assets/*", "/assets/app.js", true},
		{"assets/*", "/assets/app.js", true}, // the leading slash is optional
		{"/assets/*", "/assets/", true},
		{"/assets/*", "/assets", false},
		{"/assets/*", "/Assets/app.js", false}, // case-sensitive
		{"*.js", "/a/b/c.js", true},            // "*" crosses slashes
		{"*.js", "/a/b/c.jsx", false},
		{"/images/*.jp?g", "/images/x.jpeg", true},
		{"/images/*.jp?g", "/images/x.jpg", false},
		{"/a*b*c", "/axxbyyc", true},
		{"/a*b*c", "/axxbyy", false},
		{"/exact.html", "/exact.html", true},
		{"/exact.html", "/exact.htm", false},
		{"*", "/anything/at/all", true},
	}
	for _, tt := range tests {
		if got := matchPathPattern(tt.pattern, tt.path); got != tt.want {
			t.Errorf("matchPathPattern(%q, %q) = %v, want %v", tt.pattern, tt.path, got, tt.want)
		}
	}
}

func TestBehaviorForTakesTheFirstMatch(t *testing.T) {
	var c distConfig
	c.DefaultCacheBehavior.TargetOriginID = "default"
	c.CacheBehaviors.Items = []cfBehavior{{PathPattern: "/assets/*.css", TargetOriginID: "css"}, {PathPattern: "/assets/*", TargetOriginID: "assets"}}
	for p, want := range map[string]string{"/assets/a.css": "css", "/assets/a.js": "assets", "/index.html": "default"} {
		if got := c.behaviorFor(p).TargetOriginID; got != want {
			t.Errorf("%s went to %s, want %s", p, got, want)
		}
	}
}

func TestCheckRoutingRefusesWhatCloudFrontRefuses(t *testing.T) {
	base := func() distConfig {
		var c distConfig
		c.Origins.Items = []cfOrigin{{ID: "o", DomainName: "b.s3.us-east-1.amazonaws.com"}}
		c.Origins.Quantity = 1
		c.DefaultCacheBehavior.TargetOriginID = "o"
		return c
	}
	ttl := int64(10)
	tests := []struct {
		name   string
		change func(*distConfig)
		code   string
	}{
		{"fine", func(c *distConfig) {}, ""},
		{"default behaviour names no origin", func(c *distConfig) { c.DefaultCacheBehavior.TargetOriginID = "x" }, "NoSuchOrigin"},
		{"behaviour names no origin", func(c *distConfig) {
			c.CacheBehaviors.Items, c.CacheBehaviors.Quantity = []cfBehavior{{PathPattern: "/a/*", TargetOriginID: "x"}}, 1
		}, "NoSuchOrigin"},
		{"duplicate pattern", func(c *distConfig) {
			c.CacheBehaviors.Items, c.CacheBehaviors.Quantity = []cfBehavior{{PathPattern: "/a/*", TargetOriginID: "o"}, {PathPattern: "/a/*", TargetOriginID: "o"}}, 2
		}, "InvalidArgument"},
		{"page without response code", func(c *distConfig) {
			c.CustomErrorResponses.Items, c.CustomErrorResponses.Quantity = []cfErrorResponse{{ErrorCode: 404, ResponsePagePath: "/404.html"}}, 1
		}, "InvalidResponseCode"},
		{"error code CloudFront does not take", func(c *distConfig) {
			c.CustomErrorResponses.Items, c.CustomErrorResponses.Quantity = []cfErrorResponse{{ErrorCode: 401}}, 1
		}, "InvalidErrorCode"},
		{"error code twice", func(c *distConfig) {
			c.CustomErrorResponses.Items, c.CustomErrorResponses.Quantity = []cfErrorResponse{{ErrorCode: 404}, {ErrorCode: 404}}, 2
		}, "InvalidErrorCode"},
		{"page path without slash", func(c *distConfig) {
			c.CustomErrorResponses.Items, c.CustomErrorResponses.Quantity = []cfErrorResponse{{ErrorCode: 403, ResponsePagePath: "404.html", ResponseCode: "404"}}, 1
		}, "InvalidArgument"},
		{"caching only", func(c *distConfig) {
			c.CustomErrorResponses.Items, c.CustomErrorResponses.Quantity = []cfErrorResponse{{ErrorCode: 503, ErrorCachingMinTTL: &ttl}}, 1
		}, ""},
	}
	for _, tt := range tests {
		c := base()
		tt.change(&c)
		err := checkRouting(c)
		switch {
		case tt.code == "" && err != nil:
			t.Errorf("%s: refused: %+v", tt.name, err)
		case tt.code != "" && (err == nil || err.Code != tt.code):
			t.Errorf("%s: got %+v, want %s", tt.name, err, tt.code)
		}
	}
}
