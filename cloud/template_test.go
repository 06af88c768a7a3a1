package cloud

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/releases"
)

// templateSites are the shapes of site the templates must cover: both
// strategies, with and without routing and the release header, a derived
// install name and one long enough to be shortened.
func templateSites() []releases.Site {
	long := strings.Repeat("a", 60)
	return []releases.Site{
		{Name: "www", Install: "prod", Bucket: "acme-sites", Prefix: "www/", Strategy: StrategyKVS,
			Routing: releases.Routing{Fallback: "index.html", NotFound: "404.html"}},
		{Name: "docs", Bucket: "acme-docs", Strategy: StrategyKVS, NoReleaseHeader: true},
		{Name: long, Install: "staging", Bucket: "acme-long", Prefix: "x/", Strategy: StrategyKVS, Routing: releases.Routing{Index: "index.html"}},
		{Name: "blog", Install: "prod", Bucket: "acme-sites", Prefix: "blog/", Routing: releases.Routing{Index: "index.html", NotFound: "404.html"}},
		{Name: "plain", Bucket: "acme-plain", NoReleaseHeader: true},
		{Name: "spa", Install: "prod", Bucket: "acme-spa", Strategy: "origin-path", Routing: releases.Routing{Fallback: "index.html"}},
	}
}

// Fake ids the tests resolve the templates' references to.
const (
	fakeAccount = "111122223333"
	fakeDist    = "E2EXAMPLE"
	fakeKVSID   = "a1b2c3d4-5678-90ab-cdef-EXAMPLE11111"
	fakeOAC     = "E3OACEXAMPLE"
	fakeDomain  = "bucket.s3.eu-west-1.amazonaws.com"
)

var (
	fakeDistARN = "arn:aws:cloudfront::" + fakeAccount + ":distribution/" + fakeDist
	fakeKVSARN  = "arn:aws:cloudfront::" + fakeAccount + ":key-value-store/" + fakeKVSID
)

func fakeFunctionARN(name string) string {
	return "arn:aws:cloudfront::" + fakeAccount + ":function/" + name
}

// wantFunctions are the functions setup gives the site: name, code (with
// the fake store) and event.
func wantFunctions(t *testing.T, site releases.Site) map[string][2]string {
	t.Helper()
	out := map[string][2]string{}
	if site.Strategy == StrategyKVS {
		code, err := FunctionCode(site, fakeKVSID)
		if err != nil {
			t.Fatal(err)
		}
		out[FunctionName(site)] = [2]string{code, "viewer-request"}
	} else if NeedsRouter(site) {
		code, err := RouterCode(site)
		if err != nil {
			t.Fatal(err)
		}
		out[RouterName(site)] = [2]string{code, "viewer-request"}
	}
	if !site.NoReleaseHeader {
		code, err := ReleaseHeaderCode(site)
		if err != nil {
			t.Fatal(err)
		}
		out[ReleaseHeaderName(site)] = [2]string{code, "viewer-response"}
	}
	return out
}

// wantErrorResponses is what setErrorPages gives a new distribution.
func wantErrorResponses(site releases.Site) []errorSpec {
	p := NotFoundPagePath(site)
	if p == "" {
		return nil
	}
	return []errorSpec{{403, p, "404", ErrorCachingTTL}, {404, p, "404", ErrorCachingTTL}}
}

func statementJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	var x any
	if err := json.Unmarshal(b, &x); err != nil {
		t.Fatal(err)
	}
	b, _ = json.Marshal(x)
	return string(b)
}

// TestDistributionSpecRefusesUnknownSettings: a setting
// newDistributionConfig gains must reach the templates, or they fail.
func TestDistributionSpecRefusesUnknownSettings(t *testing.T) {
	for name, change := range map[string]func(dc *cftypes.DistributionConfig){
		"PriceClass":     func(dc *cftypes.DistributionConfig) { dc.PriceClass = cftypes.PriceClassPriceClass100 },
		"OriginPath":     func(dc *cftypes.DistributionConfig) { dc.Origins.Items[0].OriginPath = aws.String("/www/v1") },
		"ConnectionAttm": func(dc *cftypes.DistributionConfig) { dc.Origins.Items[0].ConnectionAttempts = aws.Int32(2) },
		"SmoothStreaming": func(dc *cftypes.DistributionConfig) {
			dc.DefaultCacheBehavior.SmoothStreaming = aws.Bool(true)
		},
	} {
		dc := newDistributionConfig(templateSites()[0], "eu-west-1", "OAC")
		if _, err := distributionSpec(dc); err != nil {
			t.Fatalf("setup's own configuration: %v", err)
		}
		change(dc)
		if _, err := distributionSpec(dc); err == nil {
			t.Errorf("%s: no error", name)
		}
	}
}
