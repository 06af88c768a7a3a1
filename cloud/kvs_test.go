package cloud_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"

	"github.com/deploybot/deploybot/cloud"
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
	srv, err := localaws.New(localaws.Options{DataDir: t.TempDir(), Propagation: 50 * time.Millisecond, Invalidation: 20 * time.Millisecond,
		Pops: pops, KVSPropagation: 400 * time.Millisecond})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	edge := httptest.NewServer(srv.Edge())
	t.Cleanup(edge.Close)
	ctx := context.Background()
	st := cloud.Settings{Region: "us-east-1", Endpoint: api.URL, Credentials: cloud.StaticCredentials("AKIDLOCAL", "secret"), MaxAttempts: 8}
	s3c, cfc, err := cloud.NewClients(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	kvsc, err := cloud.NewKVSClient(ctx, st)
	if err != nil {
		t.Fatal(err)
	}
	id, err := localaws.Provision(ctx, s3c, cfc, "site-bucket", t.Name())
	if err != nil {
		t.Fatal(err)
	}
	arn, err := srv.EnsureKVS("deploybot")
	if err != nil {
		t.Fatal(err)
	}
	site := releases.Site{Name: "www", Bucket: "site-bucket", Prefix: "www/", DistributionID: id, Strategy: cloud.StrategyKVS, KVSARN: arn}
	e := &env{srv: srv, api: api, edge: edge, s3: s3c, cf: cfc, site: site,
		bucket: &cloud.S3Bucket{Client: s3c}, cdn: &cloud.OriginPath{Client: cfc, PollInterval: 10 * time.Millisecond}}
	return &kvsEnv{env: e, kvsc: kvsc, kvs: &cloud.KVS{Client: kvsc, Propagation: 400 * time.Millisecond}, pops: pops,
		setup: &cloud.KVSSetup{CF: cfc, KVS: kvsc}}
}

// at asks PoP pop for path.
func (e *kvsEnv) at(t *testing.T, pop int, path string, cookie string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, e.edge.URL+path, nil)
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
		d, err := e.cf.GetDistribution(context.Background(), &cloudfront.GetDistributionInput{Id: aws.String(e.site.DistributionID)})
		if err == nil && aws.ToString(d.Distribution.Status) == "Deployed" {
			return
		}
		if time.Now().After(deadline) {
			t.Fatal("the distribution never deployed")
		}
		time.Sleep(10 * time.Millisecond)
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
// key value store holds, as each PoP sees it; a flip is one key write.
func TestKVSStrategyThroughSDK(t *testing.T) {
	e := newKVSEnv(t)
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		e.put(t, v, "index.html", "index of "+v)
		e.put(t, v, "docs/index.html", "docs of "+v)
	}
	if _, err := e.setup.Apply(ctx, e.site); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("setup with nothing live: %v", err)
	}
	// Live by origin path first, as a site is before it moves to kvs.
	cur, _ := e.cdn.Current(ctx, e.site)
	e.run(t, e.cdn.Plan(e.site, cur, "v1", "d1"))
	rep, err := e.setup.Apply(ctx, e.site)
	if err != nil {
		t.Fatal(err)
	}
	// The refused first run had created the function (harmless until a
	// distribution runs it); this one updates it.
	if rep.Created || !rep.KeyWritten || rep.Key != "v1" || !rep.Associated || rep.OldPath != "/www/v1" || !strings.HasSuffix(rep.FunctionARN, "/deploybot-www") {
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
	// CloudFront refuses an association with a function that is not
	// published; so does the stand-in.
	dc, err := e.cf.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	dc.DistributionConfig.DefaultCacheBehavior.FunctionAssociations.Items[0].FunctionARN = aws.String("arn:aws:cloudfront::123456789012:function/nope")
	_, err = e.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(e.site.DistributionID), IfMatch: dc.ETag, DistributionConfig: dc.DistributionConfig})
	var ifa *cftypes.InvalidFunctionAssociation
	if !errors.As(err, &ifa) {
		t.Fatalf("association with an unknown function: %v", err)
	}
	again, err := e.setup.Apply(ctx, e.site)
	if err != nil || again.Created || again.KeyWritten || again.Associated {
		t.Fatalf("second setup: %+v %v", again, err)
	}

	// A preview token in the header serves v2 to that request alone.
	key, err := e.kvs.PreviewKey(ctx, e.site)
	if err != nil || len(key) != 64 {
		t.Fatalf("preview key %q %v", key, err)
	}
	token := releases.PreviewToken(key, "www", "v2", time.Now().Add(time.Minute).Unix())
	req, _ := http.NewRequest(http.MethodGet, e.edge.URL+"/", nil)
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

	cur, err = e.kvs.Current(ctx, e.site)
	if err != nil || cur.Version != "v1" {
		t.Fatalf("current %+v %v", cur, err)
	}
	steps := e.kvs.Plan(e.site, cur, "v2", "d2")
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
	// Someone writes the key by hand: the next flip stops, changing nothing.
	cur, _ = e.kvs.Current(ctx, e.site)
	desc, _ := e.kvsc.DescribeKeyValueStore(ctx, &cloudfrontkeyvaluestore.DescribeKeyValueStoreInput{KvsARN: aws.String(e.site.KVSARN)})
	if _, err := e.kvsc.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(e.site.KVSARN), Key: aws.String("www"), Value: aws.String("v1"), IfMatch: desc.ETag}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kvsc.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(e.site.KVSARN), Key: aws.String("www"), Value: aws.String("v2"), IfMatch: desc.ETag}); err == nil {
		t.Fatal("a stale ETag was accepted")
	}
	err = e.kvs.Plan(e.site, cur, "v3", "d3")[0].Run(ctx)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "changed by someone else") {
		t.Fatalf("flip over a hand change: %v", err)
	}
	if now, _ := e.kvs.Current(ctx, e.site); now.Version != "v1" {
		t.Fatalf("the hand change was overwritten: %+v", now)
	}
	// Resume: a deploy stopped before its write changed nothing.
	_, _, err = e.kvs.Resume(ctx, e.site, releases.Deploy{Phase: cloud.PhaseKeyWrite, From: "v1", FromPath: "v1", To: "v2"})
	if err == nil || !strings.Contains(err.Error(), "nothing changed") {
		t.Fatalf("resume before the write: %v", err)
	}
	steps, flipped, err := e.kvs.Resume(ctx, e.site, releases.Deploy{Phase: cloud.PhaseKeyPropagate, From: "v2", FromPath: "v2", To: "v1"})
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
	// A prefix or site name that would break out of a JS string is quoted.
	code, err = cloud.FunctionCode(releases.Site{Name: "w\"w", Prefix: "a'b\\/"}, "id")
	if err != nil || !strings.Contains(code, `const SITE = "w\"w"`) || !strings.Contains(code, `const PREFIX = "/a'b\\/"`) {
		t.Fatalf("quoting: %v\n%s", err, code)
	}
}
