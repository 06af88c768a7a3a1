package cloud_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

type kvsEnv struct {
	*env
	kvsc  *cloudfrontkeyvaluestore.Client
	kvs   *cloud.KVS
	pops  int
	setup *cloud.KVSSetup
}

func newKVSEnv(t *testing.T) *kvsEnv {
	t.Helper()
	const pops = 4
	e := &env{testenv.New(t, testenv.Options{AWS: localaws.Options{Propagation: 50 * time.Millisecond, Invalidation: 20 * time.Millisecond,
		Pops: pops, KVSPropagation: 400 * time.Millisecond}, Provision: true, MaxAttempts: 8, Edge: true})}
	kvsc, err := cloud.NewKVSClient(context.Background(), e.Settings)
	if err != nil {
		t.Fatal(err)
	}
	arn, err := e.AWS.EnsureKVS("deploybot")
	if err != nil {
		t.Fatal(err)
	}
	e.Site.Strategy, e.Site.KVSARN, e.Site.Routing = cloud.StrategyKVS, arn, releases.DefaultRouting
	cfc := e.CF
	return &kvsEnv{env: e, kvsc: kvsc, kvs: &cloud.KVS{Client: kvsc, CF: cfc, Propagation: 400 * time.Millisecond}, pops: pops,
		setup: &cloud.KVSSetup{CF: cfc, KVS: kvsc, PollInterval: 10 * time.Millisecond}}
}

// at asks PoP pop for path.
func (e *kvsEnv) at(t *testing.T, pop int, path string, cookie string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.Edge+path, nil)
	req.Header.Set(localaws.PopHeader, fmt.Sprint(pop))
	if cookie != "" {
		req.Header.Set("Cookie", cookie)
	}
	resp, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

func (e *kvsEnv) deployed(t *testing.T) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for {
		d, err := e.CF.GetDistribution(context.Background(), &cloudfront.GetDistributionInput{Id: aws.String(e.Site.DistributionID)})
		if err == nil && aws.ToString(d.Distribution.Status) == "Deployed" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the distribution never deployed")
		}
		time.Sleep(10 * time.Millisecond)
	}
}

func (e *kvsEnv) setOriginPath(t *testing.T, path string) {
	t.Helper()
	ctx := context.Background()
	dc, err := e.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	dc.DistributionConfig.Origins.Items[0].OriginPath = aws.String(path)
	if _, err := e.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(e.Site.DistributionID), IfMatch: dc.ETag,
		DistributionConfig: dc.DistributionConfig}); err != nil {
		t.Fatal(err)
	}
}

func (e *kvsEnv) run(t *testing.T, steps []releases.Step) {
	t.Helper()
	for _, s := range steps {
		if err := s.Run(context.Background()); err != nil {
			t.Fatalf("%s: %v", s.Phase, err)
		}
	}
}

// The shipped function, run by the stand-in's edge, serves the version the
// key value store holds, as each PoP sees it; a flip is one key write. The
// steps run in order on one site, each starting from where the last left it.
func TestKVSStrategyThroughSDK(t *testing.T) {
	e := newKVSEnv(t)
	for _, v := range []string{"v1", "v2"} {
		e.put(t, v, "index.html", "index of "+v)
		e.put(t, v, "docs/index.html", "docs of "+v)
	}
	setupOverAForeignFolderIsRefused(t, e)
	setupMovesALiveSiteOntoKVS(t, e)
	unpublishedFunctionIsRefusedAndSetupIsIdempotent(t, e)
	previewTokenServesItsHolderAlone(t, e)
	flipReachesThePoPsOneByOne(t, e)
	handWrittenKeyStopsTheNextFlip(t, e)
	resumeKnowsWhetherTheKeyWasWritten(t, e)
}

// A distribution that serves a folder that is no release of the site is
// not switched: that would stop serving it.
func setupOverAForeignFolderIsRefused(t *testing.T, e *kvsEnv) {
	e.setOriginPath(t, "/legacy-site")
	if _, err := e.setup.Apply(context.Background(), e.Site); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), `origin path "/legacy-site"`) {
		t.Fatalf("setup over a folder that is no release: %v", err)
	}
}

// Live by origin path first, as a site is before it moves to kvs; setup
// then writes the key and associates the function, and every PoP serves v1.
func setupMovesALiveSiteOntoKVS(t *testing.T, e *kvsEnv) {
	ctx := context.Background()
	cur, _ := e.CDN.Current(ctx, e.Site)
	e.run(t, e.CDN.Plan(e.Site, cur, "v1", "d1"))
	rep, err := e.setup.Apply(ctx, e.Site)
	if err != nil {
		t.Fatal(err)
	}
	// The refused first run had created the function (harmless until a
	// distribution runs it); this one updates it.
	if rep.Created || !rep.KeyWritten || rep.Key != "v1" || !rep.Associated || rep.OldPath != "/www/v1" || !strings.HasSuffix(rep.FunctionARN, "/"+cloud.FunctionName(e.Site)) {
		t.Fatalf("setup %+v", rep)
	}
	e.deployed(t)
	time.Sleep(450 * time.Millisecond) // the key reaches every PoP
	for p := range e.pops {
		if c, b, _ := e.at(t, p, "/", ""); c != 200 || b != "index of v1" {
			t.Fatalf("pop %d after setup: %d %q", p, c, b)
		}
	}
	if c, b, _ := e.at(t, 0, "/docs/", ""); c != 200 || b != "docs of v1" {
		t.Fatalf("directory index: %d %q", c, b)
	}
}

// CloudFront refuses an association with a function that is not
// published; so does the stand-in. A second setup then changes nothing.
func unpublishedFunctionIsRefusedAndSetupIsIdempotent(t *testing.T, e *kvsEnv) {
	ctx := context.Background()
	dc, err := e.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	dc.DistributionConfig.DefaultCacheBehavior.FunctionAssociations.Items[0].FunctionARN = aws.String("arn:aws:cloudfront::123456789012:function/nope")
	_, err = e.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(e.Site.DistributionID), IfMatch: dc.ETag, DistributionConfig: dc.DistributionConfig})
	var ifa *cftypes.InvalidFunctionAssociation
	if !errors.As(err, &ifa) {
		t.Fatalf("association with an unknown function: %v", err)
	}
	again, err := e.setup.Apply(ctx, e.Site)
	if err != nil || again.Created || again.KeyWritten || again.Associated {
		t.Fatalf("second setup: %+v %v", again, err)
	}
}

// A preview token in the header serves v2 to that request alone; one
// signed with another key is not honoured.
func previewTokenServesItsHolderAlone(t *testing.T, e *kvsEnv) {
	key, err := e.kvs.PreviewKey(context.Background(), e.Site)
	if err != nil || len(key) != 64 {
		t.Fatalf("preview key %q %v", key, err)
	}
	token := releases.PreviewToken(key, "www", "v2", time.Now().Add(time.Minute).Unix())
	req, _ := http.NewRequest(http.MethodGet, e.Edge+"/", nil)
	req.Header.Set("X-Deploybot-Preview", token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(resp.Body)
	resp.Body.Close()
	if string(b) != "index of v2" {
		t.Fatalf("with a preview header: %q", b)
	}
	if _, b, _ := e.at(t, 0, "/", ""); b != "index of v1" {
		t.Fatalf("without it: %q", b)
	}
	bad := releases.PreviewToken([]byte("not the key"), "www", "v2", time.Now().Add(time.Minute).Unix())
	if _, b, _ := e.at(t, 0, "/", "deploybot-preview="+bad); b != "index of v1" {
		t.Fatalf("a token signed with another key was honoured: %q", b)
	}
}

// The flip from v1 to v2 is a key write, then a wait while the key
// reaches the PoPs one by one; after the wait every PoP serves v2.
func flipReachesThePoPsOneByOne(t *testing.T, e *kvsEnv) {
	ctx := context.Background()
	cur, err := e.kvs.Current(ctx, e.Site)
	if err != nil || cur.Version != "v1" {
		t.Fatalf("current %+v %v", cur, err)
	}
	steps := e.kvs.Plan(e.Site, cur, "v2", "d2")
	if len(steps) != 2 || steps[0].Phase != cloud.PhaseKeyWrite || !steps[0].Flips {
		t.Fatalf("steps %+v", steps)
	}
	began := time.Now()
	if err := steps[0].Run(ctx); err != nil {
		t.Fatal(err)
	}
	seen := map[string]bool{}
	for time.Since(began) < 600*time.Millisecond {
		for p := range e.pops {
			_, b, _ := e.at(t, p, "/", "")
			seen[b] = true
		}
		time.Sleep(20 * time.Millisecond)
	}
	if !seen["index of v1"] || !seen["index of v2"] {
		t.Fatalf("the key did not reach the PoPs one by one: %v", seen)
	}
	if err := steps[1].Run(ctx); err != nil {
		t.Fatal(err)
	}
	for p := range e.pops {
		if _, b, h := e.at(t, p, "/", ""); b != "index of v2" {
			t.Fatalf("pop %d after the flip: %q %v", p, b, h)
		}
	}
}

// Someone writes the key by hand: the next flip stops, changing nothing.
func handWrittenKeyStopsTheNextFlip(t *testing.T, e *kvsEnv) {
	ctx := context.Background()
	cur, _ := e.kvs.Current(ctx, e.Site)
	desc, _ := e.kvsc.DescribeKeyValueStore(ctx, &cloudfrontkeyvaluestore.DescribeKeyValueStoreInput{KvsARN: aws.String(e.Site.KVSARN)})
	if _, err := e.kvsc.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(e.Site.KVSARN), Key: aws.String("www"), Value: aws.String("v1"), IfMatch: desc.ETag}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kvsc.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(e.Site.KVSARN), Key: aws.String("www"), Value: aws.String("v2"), IfMatch: desc.ETag}); err == nil {
		t.Fatal("a stale ETag was accepted")
	}
	err := e.kvs.Plan(e.Site, cur, "v3", "d3")[0].Run(ctx)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "changed by someone else") {
		t.Fatalf("flip over a hand change: %v", err)
	}
	if now, _ := e.kvs.Current(ctx, e.Site); now.Version != "v1" {
		t.Fatalf("the hand change was overwritten: %+v", now)
	}
}

// Resume: a deploy stopped before its write changed nothing; one stopped
// after it has flipped and has only the propagation wait left.
func resumeKnowsWhetherTheKeyWasWritten(t *testing.T, e *kvsEnv) {
	ctx := context.Background()
	_, _, err := e.kvs.Resume(ctx, e.Site, releases.Deploy{Phase: cloud.PhaseKeyWrite, From: "v1", FromPath: "v1", To: "v2"})
	if err == nil || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("resume before the write: %v", err)
	}
	steps, flipped, err := e.kvs.Resume(ctx, e.Site, releases.Deploy{Phase: cloud.PhaseKeyPropagate, From: "v2", FromPath: "v2", To: "v1"})
	if err != nil || !flipped || len(steps) != 1 || steps[0].Phase != cloud.PhaseKeyPropagate {
		t.Fatalf("resume after the write: %v %v %v", steps, flipped, err)
	}
}

func TestFunctionCodeFitsCloudFront(t *testing.T) {
	code, err := cloud.FunctionCode(releases.Site{Name: "www", Prefix: "www/"}, "4b2f0c6e-1a2b-4c3d-9e8f-0123456789ab")
	if err != nil {
		t.Fatal(err)
	}
	if len(code) > cloud.MaxFunctionSize || !strings.Contains(code, `cf.kvs("4b2f0c6e-1a2b-4c3d-9e8f-0123456789ab")`) || !strings.Contains(code, `const PREFIX = "/www/"`) {
		t.Fatalf("%d bytes:\n%s", len(code), code)
	}
	// The viewer-response function of a kvs site sets the cohort cookie
	// of rolling releases, within the same limit.
	site := releases.Site{Name: "www", Prefix: "www/", Strategy: cloud.StrategyKVS}
	rh, err := cloud.ReleaseHeaderCode(site)
	if err != nil || len(rh) > cloud.MaxFunctionSize || !strings.Contains(rh, `const COHORT = "deploybot-cohort"`) || !strings.Contains(rh, "Secure; SameSite=Lax") {
		t.Fatalf("viewer-response function, %d bytes (%v):\n%s", len(rh), err, rh)
	}
	// A prefix or site name that would break out of a JS string is quoted.
	code, err = cloud.FunctionCode(releases.Site{Name: "w\"w", Prefix: "a'b\\/"}, "id")
	if err != nil || !strings.Contains(code, `const SITE = "w\"w"`) || !strings.Contains(code, `const PREFIX = "/a'b\\/"`) {
		t.Fatalf("quoting: %v\n%s", err, code)
	}
}

// A brand-new site moves onto kvs before its first release: kvs-setup
// publishes the function, writes the preview key and associates the
// function, and the site answers 503 "no live release" until the first
// promote writes the key. Until the distribution runs the site's current
// function, with no origin path, a flip is refused before it starts.
func TestKVSOnABrandNewSite(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "index of v1")
	notReady := func(step, want string) {
		t.Helper()
		err := e.kvs.Preflight(ctx, e.Site)
		if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), want) || !strings.Contains(err.Error(), "deploybot kvs-setup --site www --apply") {
			t.Fatalf("%s: preflight said %v, want %q and the command to run", step, err, want)
		}
	}
	notReady("before kvs-setup", "function "+cloud.FunctionName(e.Site)+" is not published")
	rep, err := e.setup.Apply(ctx, e.Site)
	if err != nil {
		t.Fatal(err)
	}
	if !rep.Created || rep.KeyWritten || rep.Key != "" || !rep.Associated || !rep.PreviewKey || rep.OldPath != "" {
		t.Fatalf("setup of a new site: %+v", rep)
	}
	// kvs-setup is done when the distribution is Deployed, as it says.
	d, err := e.CF.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil || aws.ToString(d.Distribution.Status) != "Deployed" {
		t.Fatalf("right after kvs-setup the distribution is %v (%v), want Deployed", aws.ToString(d.Distribution.Status), err)
	}
	if c, b, _ := e.at(t, 0, "/", ""); c != 503 || b != "no live release" {
		t.Fatalf("before the first promote: %d %q", c, b)
	}
	if err := e.kvs.Preflight(ctx, e.Site); err != nil {
		t.Fatalf("preflight after kvs-setup: %v", err)
	}
	cur, err := e.kvs.Current(ctx, e.Site)
	if err != nil || cur != (releases.Current{}) {
		t.Fatalf("current before the first promote: %+v %v", cur, err)
	}
	e.run(t, e.kvs.Plan(e.Site, cur, "v1", "d1"))
	for p := range e.pops {
		if c, b, _ := e.at(t, p, "/", ""); c != 200 || b != "index of v1" {
			t.Fatalf("pop %d after the first promote: %d %q", p, c, b)
		}
	}

	// Someone sets an origin path by hand: the function's prefix would
	// be added on top of it.
	e.setOriginPath(t, "/www/v1")
	notReady("origin path set again", `still has origin path "/www/v1"`)
	e.setOriginPath(t, "")
	// A function whose published code is not what this deploybot
	// generates (edited by hand, or made by an older version).
	fn, err := e.CF.DescribeFunction(ctx, &cloudfront.DescribeFunctionInput{Name: aws.String(cloud.FunctionName(e.Site)), Stage: cftypes.FunctionStageDevelopment})
	if err != nil {
		t.Fatal(err)
	}
	code, _ := cloud.FunctionCode(e.Site, cloud.KVSID(e.Site.KVSARN))
	up, err := e.CF.UpdateFunction(ctx, &cloudfront.UpdateFunctionInput{Name: aws.String(cloud.FunctionName(e.Site)), IfMatch: fn.ETag,
		FunctionCode: []byte(code + "\n// edited\n"), FunctionConfig: fn.FunctionSummary.FunctionConfig})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.kvs.Preflight(ctx, e.Site); err != nil {
		t.Fatalf("an unpublished edit is not what the edge runs, yet preflight refused: %v", err)
	}
	if _, err := e.CF.PublishFunction(ctx, &cloudfront.PublishFunctionInput{Name: aws.String(cloud.FunctionName(e.Site)), IfMatch: up.ETag}); err != nil {
		t.Fatal(err)
	}
	notReady("edited function", "published code of function "+cloud.FunctionName(e.Site)+" is not what this version of deploybot generates")
	if _, err := e.setup.Apply(ctx, e.Site); err != nil {
		t.Fatal(err)
	}
	if err := e.kvs.Preflight(ctx, e.Site); err != nil {
		t.Fatalf("preflight after kvs-setup ran again: %v", err)
	}
	// A distribution that runs no function.
	dc, err := e.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	dc.DistributionConfig.DefaultCacheBehavior.FunctionAssociations = &cftypes.FunctionAssociations{Quantity: aws.Int32(0)}
	if _, err := e.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(e.Site.DistributionID), IfMatch: dc.ETag,
		DistributionConfig: dc.DistributionConfig}); err != nil {
		t.Fatal(err)
	}
	notReady("no association", "runs no function on viewer requests")
}

// The preview function leaves no way off the site and no path for the
// origin to interpret: an empty, "." or ".." segment is refused (400), the
// redirect after a preview link stays on the site, and the preview cookie
// is Secure on an https site and lives as long as its token.
func TestPreviewFunctionHardening(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	e.Site.URL = "https://www.example.com"
	e.put(t, "v1", "index.html", "index of v1")
	e.put(t, "v2", "index.html", "index of v2")
	if _, err := e.setup.Apply(ctx, e.Site); err != nil {
		t.Fatal(err)
	}
	e.deployed(t)
	e.run(t, e.kvs.Plan(e.Site, releases.Current{}, "v1", "d1"))
	key, err := e.kvs.PreviewKey(ctx, e.Site)
	if err != nil {
		t.Fatal(err)
	}
	expires := time.Now().Add(20 * time.Minute).Unix()
	token := releases.PreviewToken(key, "www", "v2", expires)
	for _, p := range []string{"//evil.example/?deploybot-preview=" + token, "/a/../index.html", "/./index.html", "/a//index.html", "/..", "/docs/.."} {
		if code, body, _ := e.at(t, 0, p, ""); code != 400 || body != "bad path" {
			t.Errorf("GET %s: %d %q, want 400", p, code, body)
		}
	}
	code, _, h := e.at(t, 0, "/\\evil.example/?deploybot-preview="+token, "")
	if code != 302 || h.Get("Location") != "/evil.example/" {
		t.Fatalf("a preview link on /\\evil.example/: %d Location %q, want a path on the site", code, h.Get("Location"))
	}
	code, _, h = e.at(t, 0, "/?deploybot-preview="+token, "")
	cookie := h.Get("Set-Cookie")
	if code != 302 || h.Get("Location") != "/" || !strings.Contains(cookie, "; Secure;") || !strings.Contains(cookie, "HttpOnly") {
		t.Fatalf("opening a preview link: %d %q %q", code, h.Get("Location"), cookie)
	}
	var maxAge int64
	if _, err := fmt.Sscanf(cookie[strings.Index(cookie, "Max-Age=")+len("Max-Age="):], "%d", &maxAge); err != nil || maxAge < 19*60 || maxAge > 20*60 {
		t.Fatalf("the cookie lives %d s, want the token's remaining 20 minutes: %q", maxAge, cookie)
	}
}
