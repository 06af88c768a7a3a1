package cloud_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// changeDist edits the distribution's config through the SDK.
func (e *kvsEnv) changeDist(t *testing.T, change func(*cftypes.DistributionConfig)) {
	t.Helper()
	ctx := context.Background()
	dc, err := e.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	change(dc.DistributionConfig)
	if _, err := e.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(e.Site.DistributionID), IfMatch: dc.ETag,
		DistributionConfig: dc.DistributionConfig}); err != nil {
		t.Fatal(err)
	}
}

// eventually asks PoP pop for path until ok, for at most 5 s: a key
// write and a cached page reach the edge over time.
func (e *kvsEnv) eventually(t *testing.T, pop int, path string, ok func(int, string) bool) (int, string) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		c, b, _ := e.at(t, pop, path, "")
		if ok(c, b) || time.Now().After(deadline) {
			return c, b
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// runs is the ARN associated with event ev, or "".
func runs(fa *cftypes.FunctionAssociations, ev cftypes.EventType) string {
	if fa == nil {
		return ""
	}
	for _, a := range fa.Items {
		if a.EventType == ev {
			return aws.ToString(a.FunctionARN)
		}
	}
	return ""
}

func (e *kvsEnv) dist(t *testing.T) *cftypes.DistributionConfig {
	t.Helper()
	dc, err := e.CF.GetDistributionConfig(context.Background(), &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	return dc.DistributionConfig
}

func (e *kvsEnv) publishOther(t *testing.T, name string) string {
	t.Helper()
	ctx := context.Background()
	out, err := e.CF.CreateFunction(ctx, &cloudfront.CreateFunctionInput{Name: aws.String(name), FunctionCode: []byte("function handler(event) { return event.request; }"),
		FunctionConfig: &cftypes.FunctionConfig{Comment: aws.String("someone else's"), Runtime: cftypes.FunctionRuntimeCloudfrontJs20}})
	if err != nil {
		t.Fatal(err)
	}
	pub, err := e.CF.PublishFunction(ctx, &cloudfront.PublishFunctionInput{Name: aws.String(name), IfMatch: out.ETag})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(pub.FunctionSummary.FunctionMetadata.FunctionARN)
}

// kvs-setup clears the origin path every cache behaviour of that origin
// shares, so it must make each of them run the function; one that runs
// someone else's function is refused, named, with nothing changed.
func TestKVSSetupCoversEveryBehaviourOfTheOrigin(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "index of v1")
	e.put(t, "v1", "assets/app.css", "css of v1")
	e.setOriginPath(t, "/www/v1")
	other := e.publishOther(t, "auth-check")
	behavior := func(fn string) func(*cftypes.DistributionConfig) {
		return assetsBehavior(cftypes.EventTypeViewerRequest, fn)
	}
	e.changeDist(t, behavior(other))
	before := e.dist(t)
	_, err := e.setup.Apply(ctx, e.Site)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "cache behavior /assets/* runs "+other) {
		t.Fatalf("a foreign function on /assets/*: %v", err)
	}
	if after := e.dist(t); aws.ToString(after.Origins.Items[0].OriginPath) != aws.ToString(before.Origins.Items[0].OriginPath) || after.DefaultCacheBehavior.FunctionAssociations != nil && len(after.DefaultCacheBehavior.FunctionAssociations.Items) > 0 {
		t.Fatalf("the refusal changed the distribution: %+v", after)
	}

	e.changeDist(t, behavior(""))
	if _, err := e.setup.Apply(ctx, e.Site); err != nil {
		t.Fatal(err)
	}
	e.deployed(t)
	if err := e.kvs.Preflight(ctx, e.Site); err != nil {
		t.Fatalf("preflight after setup: %v", err)
	}
	for p := range e.pops {
		if c, b := e.eventually(t, p, "/assets/app.css", func(c int, b string) bool { return c == 200 && b == "css of v1" }); c != 200 || b != "css of v1" {
			t.Fatalf("pop %d: /assets/app.css through its own behaviour: %d %q", p, c, b)
		}
	}
	// Someone takes the function off /assets/* later: promotes are
	// refused until kvs-setup puts it back.
	e.changeDist(t, behavior(""))
	if err := e.kvs.Preflight(ctx, e.Site); err == nil || !strings.Contains(err.Error(), "cache behavior /assets/* runs no function") {
		t.Fatalf("preflight with /assets/* unrouted: %v", err)
	}
}

// On strategy kvs every custom error page is fetched without the
// function, at the bucket root: the 403 and 404 ones kvs-setup points at
// the live copy of the site's 404 page; others are refused, named.
func TestKVSSetupAndCustomErrorPages(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	e.changeDist(t, func(dc *cftypes.DistributionConfig) {
		dc.CustomErrorResponses = &cftypes.CustomErrorResponses{Quantity: aws.Int32(2), Items: []cftypes.CustomErrorResponse{
			{ErrorCode: aws.Int32(404), ResponsePagePath: aws.String("/index.html"), ResponseCode: aws.String("200")},
			{ErrorCode: aws.Int32(503), ResponsePagePath: aws.String("/maintenance.html"), ResponseCode: aws.String("503")}}}
	})
	_, err := e.setup.Apply(ctx, e.Site)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "custom error response for 503 shows /maintenance.html") {
		t.Fatalf("an error page that cannot resolve: %v", err)
	}
	e.changeDist(t, func(dc *cftypes.DistributionConfig) {
		dc.CustomErrorResponses.Items, dc.CustomErrorResponses.Quantity = dc.CustomErrorResponses.Items[:1], aws.Int32(1)
	})
	rep, err := e.setup.Apply(ctx, e.Site)
	if err != nil || !rep.ErrorPages {
		t.Fatalf("setup: %+v %v", rep, err)
	}
	got := map[int32]string{}
	for _, r := range e.dist(t).CustomErrorResponses.Items {
		got[aws.ToInt32(r.ErrorCode)] = aws.ToString(r.ResponsePagePath) + " " + aws.ToString(r.ResponseCode)
	}
	want := "/www/.deploybot/live/404.html 404"
	if len(got) != 2 || got[403] != want || got[404] != want {
		t.Fatalf("error responses after setup: %v", got)
	}

	// A flip copies the target's page there, and deletes the copy when
	// the target has none.
	e.put(t, "v1", "index.html", "v1")
	e.put(t, "v1", "404.html", "gone (v1)")
	e.put(t, "v2", "index.html", "v2")
	e.deployed(t)
	kvs := *e.kvs
	kvs.Pages = e.Bucket
	for _, v := range []string{"v1", "v2"} {
		cur, err := kvs.Current(ctx, e.Site)
		if err != nil {
			t.Fatal(err)
		}
		steps := kvs.Plan(e.Site, cur, v, "d-"+v)
		if steps[0].Phase != cloud.PhaseLivePage {
			t.Fatalf("the first step is %s", steps[0].Phase)
		}
		e.run(t, steps)
		c, b := e.eventually(t, 0, "/no/such/page", func(c int, b string) bool {
			return v == "v1" && c == 404 || v == "v2" && c == 403
		})
		switch v {
		case "v1":
			if c != 404 || b != "gone (v1)" {
				t.Fatalf("v1 live: %d %q", c, b)
			}
		case "v2":
			if c != 403 {
				t.Fatalf("v2, which has no 404 page, live: %d %q, want the page fetch's 403", c, b)
			}
		}
	}
}

// routing-setup gives an origin-path site its router on every behaviour of
// the origin; kvs-setup swaps it for the kvs function in the same update
// that clears the origin path, and Revert swaps it back.
func TestRouterSwapsWithTheKVSFunction(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "home v1")
	e.put(t, "v1", "docs/index.html", "docs v1")
	e.put(t, "v1", "404.html", "gone v1")
	e.setOriginPath(t, "/www/v1")
	op := e.Site
	op.Strategy = releases.DefaultStrategy
	rs := &cloud.RoutingSetup{CF: e.CF, PollInterval: 10 * e.CDN.PollInterval}
	if _, err := rs.Apply(ctx, e.Site); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("routing-setup on a kvs site: %v", err)
	}
	rep, err := rs.Apply(ctx, op)
	if err != nil || !rep.Created || !rep.Updated || !rep.ErrorPages {
		t.Fatalf("routing-setup: %+v %v", rep, err)
	}
	if p, err := rs.Check(ctx, op); err != nil || len(p) != 0 {
		t.Fatalf("check after setup: %v %v", p, err)
	}
	for path, want := range map[string]string{"/docs": "docs v1", "/docs/": "docs v1", "/nope": "gone v1"} {
		if _, b := e.eventually(t, 0, path, func(_ int, b string) bool { return b == want }); b != want {
			t.Fatalf("origin-path %s: %q, want %q", path, b, want)
		}
	}
	if _, err := e.setup.Apply(ctx, e.Site); err != nil {
		t.Fatalf("kvs-setup over the router: %v", err)
	}
	e.deployed(t)
	if kvsARN := runs(e.dist(t).DefaultCacheBehavior.FunctionAssociations, cftypes.EventTypeViewerRequest); !strings.HasSuffix(kvsARN, "/"+cloud.FunctionName(e.Site)) {
		t.Fatalf("after kvs-setup the default behaviour runs %s", kvsARN)
	}
	if reverted, live, err := e.setup.Revert(ctx, op); err != nil || !reverted || live != "v1" {
		t.Fatalf("revert: %v %q %v", reverted, live, err)
	}
	e.deployed(t)
	if p, err := rs.Check(ctx, op); err != nil || len(p) != 0 {
		t.Fatalf("after revert the router is back and the 404 page is the release's: %v %v", p, err)
	}
	if _, b := e.eventually(t, 1, "/docs", func(_ int, b string) bool { return b == "docs v1" }); b != "docs v1" {
		t.Fatalf("after revert /docs: %q", b)
	}
}

// A kvs deploy interrupted while copying the 404 page had not written the
// key: nothing visitors see changed, and it is not resumed.
func TestKVSResumeInTheLivePagePhase(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	kvs := *e.kvs
	kvs.Pages = e.Bucket
	_, _, err := kvs.Resume(ctx, e.Site, releases.Deploy{Phase: cloud.PhaseLivePage, To: "v2"})
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("resume before the key: %v", err)
	}
	if _, err := e.setup.Apply(ctx, e.Site); err != nil {
		t.Fatal(err)
	}
	e.run(t, kvs.Plan(e.Site, releases.Current{}, "v2", "d1"))
	steps, flipped, err := kvs.Resume(ctx, e.Site, releases.Deploy{Phase: cloud.PhaseLivePage, To: "v2"})
	if err != nil || !flipped || len(steps) != 1 || steps[0].Phase != cloud.PhaseKeyPropagate {
		t.Fatalf("resume after the key: %v %v %v", steps, flipped, err)
	}
}

// A distribution set up before install names runs "deploybot-<site>"
// functions, a name every installation with a site of that name shared.
// Setup takes them as the site's own and replaces them with the
// install's, rather than refusing them as someone else's; a function of
// another name is still refused.
func TestSetupReplacesFunctionsNamedBeforeInstallNames(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "index of v1")
	e.setOriginPath(t, "/www/v1")
	legacyReq := e.publishOther(t, "deploybot-www")
	legacyResp := e.publishOther(t, "deploybot-www-release")
	e.changeDist(t, func(dc *cftypes.DistributionConfig) {
		dc.DefaultCacheBehavior.FunctionAssociations = &cftypes.FunctionAssociations{Quantity: aws.Int32(2), Items: []cftypes.FunctionAssociation{
			{EventType: cftypes.EventTypeViewerRequest, FunctionARN: aws.String(legacyReq)},
			{EventType: cftypes.EventTypeViewerResponse, FunctionARN: aws.String(legacyResp)},
		}}
	})
	fs, err := (&cloud.Checker{S3: e.S3, CF: e.CF, Region: "us-east-1"}).Check(ctx, e.Site)
	if err != nil || !cloud.Failed(fs) || !strings.Contains(fmt.Sprint(fs), "function deploybot-www is named as versions before install names") {
		t.Fatalf("check before setup replaced the old functions: %v %+v", err, fs)
	}
	if _, err := e.setup.Apply(ctx, e.Site); err != nil {
		t.Fatalf("setup over the functions of an older version: %v", err)
	}
	if fs, _ := (&cloud.Checker{S3: e.S3, CF: e.CF, Region: "us-east-1"}).Check(ctx, e.Site); strings.Contains(fmt.Sprint(fs), "named as versions before") {
		t.Fatalf("check after setup still reports old functions: %+v", fs)
	}
	fa := e.dist(t).DefaultCacheBehavior.FunctionAssociations
	if got := runs(fa, cftypes.EventTypeViewerRequest); !strings.HasSuffix(got, "/"+cloud.FunctionName(e.Site)) || cloud.FunctionName(e.Site) == "deploybot-www" {
		t.Fatalf("viewer requests run %s, want %s", got, cloud.FunctionName(e.Site))
	}
	if got := runs(fa, cftypes.EventTypeViewerResponse); !strings.HasSuffix(got, "/"+cloud.ReleaseHeaderName(e.Site)) {
		t.Fatalf("viewer responses run %s, want %s", got, cloud.ReleaseHeaderName(e.Site))
	}

	// Another installation's function (another install name) is not ours.
	other := e.Site
	other.Install = "staging"
	foreign := e.publishOther(t, cloud.FunctionName(other))
	e.changeDist(t, func(dc *cftypes.DistributionConfig) {
		dc.DefaultCacheBehavior.FunctionAssociations.Items[0].FunctionARN = aws.String(foreign)
	})
	if _, err := e.setup.Apply(ctx, e.Site); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "staging-www") {
		t.Fatalf("setup over another installation's function: %v", err)
	}
}

// A site whose configuration names no distribution yet (setup has not
// run) is refused by every flip and status read, saying what to run.
func TestASiteBeforeSetupSaysToRunSetup(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	bare := e.Site
	bare.DistributionID = ""
	for name, cdn := range map[string]releases.CDN{"origin-path": e.CDN, "kvs": e.kvs} {
		if _, err := cdn.Current(ctx, bare); releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), "deploybot setup --site www --apply") {
			t.Fatalf("%s: current of a site without a distribution: %v", name, err)
		}
	}
	noStore := e.Site
	noStore.KVSARN = ""
	if err := e.kvs.Preflight(ctx, noStore); releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), "kvs.arn is empty") {
		t.Fatalf("kvs preflight without a store: %v", err)
	}
}
