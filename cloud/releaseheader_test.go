package cloud_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// assetsBehavior adds a cache behaviour /assets/* on the site's origin,
// running fn on event ev ("" none).
func assetsBehavior(ev cftypes.EventType, fn string) func(*cftypes.DistributionConfig) {
	return func(dc *cftypes.DistributionConfig) {
		b := cftypes.CacheBehavior{PathPattern: aws.String("/assets/*"), TargetOriginId: dc.DefaultCacheBehavior.TargetOriginId,
			ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyAllowAll}
		if fn != "" {
			b.FunctionAssociations = &cftypes.FunctionAssociations{Quantity: aws.Int32(1), Items: []cftypes.FunctionAssociation{{EventType: ev, FunctionARN: aws.String(fn)}}}
		}
		dc.CacheBehaviors = &cftypes.CacheBehaviors{Quantity: aws.Int32(1), Items: []cftypes.CacheBehavior{b}}
	}
}

// headerAt asks PoP pop for path until its answer names a release under
// either name, and returns its status, the two names' values and X-Cache.
func (e *kvsEnv) headerAt(t *testing.T, pop int, path string, ok func(short, meta string) bool) (status int, short, meta, xcache string) {
	t.Helper()
	var h http.Header
	// The status and the headers of one answer: eventually's own request
	// may have been answered before the edge caught up.
	e.eventually(t, pop, path, func(int, string) bool {
		status, _, h = e.at(t, pop, path, "")
		return ok(h.Get(releases.ReleaseHeader), h.Get(releases.MetadataHeader))
	})
	return status, h.Get(releases.ReleaseHeader), h.Get(releases.MetadataHeader), h.Get("X-Cache")
}

// routing-setup gives every cache behaviour of the site's origin the
// viewer-response function: answers through the edge name their release
// in x-deploybot-release, on misses and on hits, while a 404 page (the
// origin answered 403, so CloudFront runs no viewer-response function)
// keeps S3's name. kvs-setup keeps the function, and so does the way
// back; release_header: false takes it off.
func TestReleaseHeaderOnBothStrategies(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "home v1")
	e.put(t, "v1", "404.html", "gone v1")
	if err := e.Bucket.PutFile(ctx, e.Site, "v1", releases.File{Path: "assets/app.css", Body: strings.NewReader("css v1"), Size: 6,
		ContentType: "text/css", CacheControl: "public, max-age=3600"}); err != nil {
		t.Fatal(err)
	}
	e.setOriginPath(t, "/www/v1")
	e.changeDist(t, assetsBehavior(cftypes.EventTypeViewerResponse, ""))
	e.deployed(t) // an answer asked before would be a cached 403
	op := e.Site
	op.Strategy = releases.DefaultStrategy
	rs := &cloud.RoutingSetup{CF: e.CF, PollInterval: 10 * e.CDN.PollInterval}

	p, err := rs.Check(ctx, op)
	if err != nil || !strings.Contains(strings.Join(p, "\n"), "function "+cloud.ReleaseHeaderName(e.Site)+" is not published") ||
		!strings.Contains(strings.Join(p, "\n"), "cache behavior /assets/* runs no function on viewer responses") {
		t.Fatalf("check before setup: %q %v", p, err)
	}
	if c, short, meta, _ := e.headerAt(t, 0, "/index.html", func(_, m string) bool { return m != "" }); c != 200 || short != "" || meta != "v1" {
		t.Fatalf("before setup /index.html: %d %q %q, want S3's name only", c, short, meta)
	}
	rep, err := rs.Apply(ctx, op)
	if err != nil || rep.ReleaseHeaderReport.Function != cloud.ReleaseHeaderName(e.Site) || !rep.ReleaseHeaderReport.Created || !rep.Updated {
		t.Fatalf("routing-setup: %+v %v", rep, err)
	}
	if p, err := rs.Check(ctx, op); err != nil || len(p) != 0 {
		t.Fatalf("check after setup: %q %v", p, err)
	}
	dc := e.dist(t)
	for _, fa := range []*cftypes.FunctionAssociations{dc.DefaultCacheBehavior.FunctionAssociations, dc.CacheBehaviors.Items[0].FunctionAssociations} {
		if got := runs(fa, cftypes.EventTypeViewerResponse); got != rep.ReleaseHeaderReport.FunctionARN {
			t.Fatalf("a behaviour runs %q on viewer responses, want %s", got, rep.ReleaseHeaderReport.FunctionARN)
		}
	}
	e.deployed(t)
	named := func(s, m string) bool { return s == "v1" }
	for pop := range e.pops {
		for _, path := range []string{"/", "/assets/app.css"} {
			if c, short, meta, _ := e.headerAt(t, pop, path, named); c != 200 || short != "v1" || meta != "" {
				t.Fatalf("pop %d %s: %d, x-deploybot-release %q, x-amz-meta-deploybot-release %q", pop, path, c, short, meta)
			}
		}
		if _, short, _, xc := e.headerAt(t, pop, "/assets/app.css", named); short != "v1" || xc != "Hit from cloudfront" {
			t.Fatalf("pop %d: a cached copy: %q %s", pop, short, xc)
		}
	}
	if c, short, meta, _ := e.headerAt(t, 0, "/no/such/page", func(_, m string) bool { return m != "" }); c != 404 || short != "" || meta != "v1" {
		t.Fatalf("the 404 page: %d %q %q, want S3's name only (no viewer-response function on an origin error)", c, short, meta)
	}

	// kvs-setup keeps the function beside its own, and the way back
	// keeps it too.
	krep, err := e.setup.Apply(ctx, e.Site)
	if err != nil || krep.ReleaseHeaderReport.FunctionARN != rep.ReleaseHeaderReport.FunctionARN || krep.ReleaseHeaderReport.Created {
		t.Fatalf("kvs-setup: %+v %v", krep, err)
	}
	e.deployed(t)
	dc = e.dist(t)
	if runs(dc.DefaultCacheBehavior.FunctionAssociations, cftypes.EventTypeViewerResponse) != rep.ReleaseHeaderReport.FunctionARN ||
		!strings.HasSuffix(runs(dc.DefaultCacheBehavior.FunctionAssociations, cftypes.EventTypeViewerRequest), "/"+cloud.FunctionName(e.Site)) {
		t.Fatalf("after kvs-setup: %+v", dc.DefaultCacheBehavior.FunctionAssociations)
	}
	if c, short, meta, _ := e.headerAt(t, 1, "/", named); c != 200 || short != "v1" || meta != "" {
		t.Fatalf("kvs /: %d %q %q", c, short, meta)
	}
	if reverted, _, err := e.setup.Revert(ctx, op); err != nil || !reverted {
		t.Fatalf("revert: %v %v", reverted, err)
	}
	e.deployed(t)
	if p, err := rs.Check(ctx, op); err != nil || len(p) != 0 {
		t.Fatalf("check after the way back: %q %v", p, err)
	}

	// release_header: false: the check says what differs, and setup takes
	// the function off every behaviour.
	off := op
	off.NoReleaseHeader = true
	if p, err := rs.Check(ctx, off); err != nil || len(p) != 2 || !strings.Contains(p[0], "release_header: false turns off") {
		t.Fatalf("check with the header off: %q %v", p, err)
	}
	rep, err = rs.Apply(ctx, off)
	if err != nil || rep.ReleaseHeaderReport.Function != "" || !rep.Updated {
		t.Fatalf("routing-setup with the header off: %+v %v", rep, err)
	}
	e.deployed(t)
	dc = e.dist(t)
	if runs(dc.DefaultCacheBehavior.FunctionAssociations, cftypes.EventTypeViewerResponse) != "" || runs(dc.CacheBehaviors.Items[0].FunctionAssociations, cftypes.EventTypeViewerResponse) != "" {
		t.Fatalf("the function is still on: %+v", dc)
	}
	if c, short, meta, _ := e.headerAt(t, 2, "/", func(_, m string) bool { return m == "v1" }); c != 200 || short != "" || meta != "v1" {
		t.Fatalf("with the header off /: %d %q %q", c, short, meta)
	}
	if p, err := rs.Check(ctx, off); err != nil || len(p) != 0 {
		t.Fatalf("check after turning it off: %q %v", p, err)
	}
}

// A behaviour of the site's origin that runs someone else's function on
// viewer responses is refused, named, with nothing changed (a behaviour
// runs one per event); with release_header: false setup leaves it be.
func TestReleaseHeaderLeavesAForeignFunction(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "home v1")
	e.setOriginPath(t, "/www/v1")
	other := e.publishOther(t, "security-headers")
	e.changeDist(t, assetsBehavior(cftypes.EventTypeViewerResponse, other))
	op := e.Site
	op.Strategy = releases.DefaultStrategy
	rs := &cloud.RoutingSetup{CF: e.CF, PollInterval: 10 * e.CDN.PollInterval}
	before := e.dist(t)
	_, err := rs.Apply(ctx, op)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "cache behavior /assets/* runs "+other+" on viewer responses") ||
		!strings.Contains(err.Error(), "release_header: false") {
		t.Fatalf("a foreign viewer-response function: %v", err)
	}
	after := e.dist(t)
	assocs := func(dc *cftypes.DistributionConfig) string {
		var out []string
		for _, fa := range []*cftypes.FunctionAssociations{dc.DefaultCacheBehavior.FunctionAssociations, dc.CacheBehaviors.Items[0].FunctionAssociations} {
			out = append(out, runs(fa, cftypes.EventTypeViewerRequest)+" "+runs(fa, cftypes.EventTypeViewerResponse))
		}
		return fmt.Sprint(out)
	}
	if a, b := assocs(after), assocs(before); a != b {
		t.Fatalf("the refusal changed the distribution: %s, was %s", a, b)
	}
	if _, err := e.setup.Apply(ctx, e.Site); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("kvs-setup with a foreign viewer-response function: %v", err)
	}

	// CloudFront refuses two functions for one event of a behaviour.
	second := e.publishOther(t, "more-headers")
	dc, err := e.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	fa := dc.DistributionConfig.CacheBehaviors.Items[0].FunctionAssociations
	fa.Items = append(fa.Items, cftypes.FunctionAssociation{EventType: cftypes.EventTypeViewerResponse, FunctionARN: aws.String(second)})
	fa.Quantity = aws.Int32(2)
	_, err = e.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(e.Site.DistributionID), IfMatch: dc.ETag, DistributionConfig: dc.DistributionConfig})
	var bad *cftypes.InvalidFunctionAssociation
	if !errors.As(err, &bad) {
		t.Fatalf("two viewer-response functions on one behaviour: %v", err)
	}

	op.NoReleaseHeader = true
	if _, err := rs.Apply(ctx, op); err != nil {
		t.Fatalf("routing-setup with release_header: false: %v", err)
	}
	if got := runs(e.dist(t).CacheBehaviors.Items[0].FunctionAssociations, cftypes.EventTypeViewerResponse); got != other {
		t.Fatalf("the foreign function was replaced by %q", got)
	}
	if p, err := rs.Check(ctx, op); err != nil || len(p) != 0 {
		t.Fatalf("check with release_header: false and a foreign function: %q %v", p, err)
	}
}
