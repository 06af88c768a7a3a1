package cloud_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// account is an empty AWS account: the stand-in with no bucket and no
// distribution, its API and its edge.
type account struct {
	srv  *localaws.Server
	edge string
	s3   *s3.Client
	cf   *cloudfront.Client
	kvs  *cloudfrontkeyvaluestore.Client
	st   cloud.Settings
}

func newAccount(t *testing.T) *account {
	t.Helper()
	srv, err := localaws.New(localaws.Options{DataDir: t.TempDir()})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	edge := httptest.NewServer(srv.Edge())
	t.Cleanup(edge.Close)
	a := &account{srv: srv, edge: edge.URL, st: cloud.Settings{Region: "us-east-1", Endpoint: api.URL, Credentials: cloud.StaticCredentials("AKIDADMIN", "secret"), MaxAttempts: 2}}
	ctx := context.Background()
	if a.s3, a.cf, err = cloud.NewClients(ctx, a.st); err != nil {
		t.Fatal(err)
	}
	if a.kvs, err = cloud.NewKVSClient(ctx, a.st); err != nil {
		t.Fatal(err)
	}
	return a
}

func (a *account) setup() *cloud.Setup {
	return &cloud.Setup{S3: a.s3, CF: a.cf, KVS: a.kvs, Pages: &cloud.S3Bucket{Client: a.s3}, Region: "us-east-1", PollInterval: 10 * time.Millisecond}
}

func (a *account) page(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(a.edge + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func actions(rep *cloud.SetupReport) string {
	var out []string
	for _, s := range rep.Steps {
		out = append(out, s.Action+" "+strings.Fields(s.Resource)[0])
	}
	return strings.Join(out, ", ")
}

// planAndApply plans site on an empty account (which creates nothing),
// applies the plan, and returns the report and the site with the ids
// the apply recorded.
func (a *account) planAndApply(t *testing.T, su *cloud.Setup, site releases.Site) (*cloud.SetupReport, releases.Site) {
	t.Helper()
	ctx := context.Background()
	plan, err := su.Plan(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	if got := actions(plan); !strings.Contains(got, "create bucket") || !strings.Contains(got, "create origin") || !strings.Contains(got, "create distribution") || !strings.Contains(got, "create functions") {
		t.Fatalf("plan on an empty account: %s", got)
	}
	if _, err := a.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(site.Bucket)}); err == nil {
		t.Fatal("the plan created the bucket")
	}

	rep, err := su.Apply(ctx, site)
	if err != nil {
		t.Fatalf("apply: %v (steps: %s)", err, actions(rep))
	}
	id := rep.Record["distribution_id"]
	if id == "" || rep.DistributionID != id || !strings.HasPrefix(rep.DistributionARN, "arn:aws:cloudfront::") {
		t.Fatalf("apply recorded %v, report %+v", rep.Record, rep)
	}
	site.DistributionID = id
	if site.Strategy == cloud.StrategyKVS {
		if site.KVSARN = rep.Record["kvs.arn"]; site.KVSARN == "" {
			t.Fatalf("kvs apply recorded no store: %v", rep.Record)
		}
	}
	return rep, site
}

// checkBucketPolicy checks the bucket's policy is one statement, for the
// distribution distARN alone.
func (a *account) checkBucketPolicy(t *testing.T, site releases.Site, distARN string) {
	t.Helper()
	pol, err := a.s3.GetBucketPolicy(context.Background(), &s3.GetBucketPolicyInput{Bucket: aws.String(site.Bucket)})
	if err != nil {
		t.Fatal(err)
	}
	var doc struct{ Statement []cloud.Statement }
	if err := json.Unmarshal([]byte(aws.ToString(pol.Policy)), &doc); err != nil || len(doc.Statement) != 1 ||
		doc.Statement[0].Condition["StringEquals"]["AWS:SourceArn"][0] != distARN {
		t.Fatalf("bucket policy %s (%v)", aws.ToString(pol.Policy), err)
	}
}

// publishAndPromote publishes release v1 of site and promotes it with
// the site's strategy, after its preflight.
func (a *account) publishAndPromote(t *testing.T, site releases.Site) {
	t.Helper()
	ctx := context.Background()
	bucket := &cloud.S3Bucket{Client: a.s3}
	for _, f := range []struct{ path, body string }{{"index.html", "<title>release v1</title>"}, {"404.html", "not here"}} {
		if err := bucket.PutFile(ctx, site, "v1", releases.File{Path: f.path, Body: strings.NewReader(f.body), Size: int64(len(f.body)), ContentType: "text/html"}); err != nil {
			t.Fatal(err)
		}
	}
	if err := bucket.WriteManifest(ctx, site, &releases.Manifest{Version: "v1", PublishedAt: time.Now().UTC(),
		Files: []releases.ManifestFile{{Path: "index.html", Size: 26}, {Path: "404.html", Size: 8}}}); err != nil {
		t.Fatal(err)
	}
	var cdn releases.CDN = &cloud.OriginPath{Client: a.cf, PollInterval: 10 * time.Millisecond}
	if site.Strategy == cloud.StrategyKVS {
		cdn = &cloud.KVS{Client: a.kvs, CF: a.cf, Propagation: time.Millisecond, Pages: bucket}
	}
	if pf, ok := cdn.(releases.Preflighter); ok {
		if err := pf.Preflight(ctx, site); err != nil {
			t.Fatalf("preflight after setup: %v", err)
		}
	}
	cur, err := cdn.Current(ctx, site)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range cdn.Plan(site, cur, "v1", "d1") {
		if err := s.Run(ctx); err != nil {
			t.Fatalf("%s: %v", s.Phase, err)
		}
	}
}

// From an empty account to a live site: setup plans, applies, records the
// ids the configuration lacks; a second apply changes nothing; a release
// published and promoted is what the edge serves, through the origin
// access control and the bucket policy alone.
func TestSetupFromAnEmptyAccount(t *testing.T) {
	for _, strategy := range []string{releases.DefaultStrategy, cloud.StrategyKVS} {
		t.Run(strategy, func(t *testing.T) {
			a := newAccount(t)
			ctx := context.Background()
			site := releases.Site{Name: "www", Install: "test", Bucket: "fresh-site", Prefix: "www/", Strategy: strategy, Routing: releases.DefaultRouting}
			su := a.setup()
			rep, site := a.planAndApply(t, su, site)

			again, err := su.Apply(ctx, site)
			if err != nil || again.Changes() != 0 || len(again.Record) != 0 {
				t.Fatalf("second apply: %v, %d changes (%s), record %v", err, again.Changes(), actions(again), again.Record)
			}
			a.checkBucketPolicy(t, site, rep.DistributionARN)

			a.publishAndPromote(t, site)
			deadline := time.Now().Add(5 * time.Second)
			for {
				code, body := a.page(t, "/")
				if code == 200 && strings.Contains(body, "release v1") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the edge answers %d %q after setup and a promote", code, body)
				}
				time.Sleep(20 * time.Millisecond)
			}
			// Other objects of the bucket are not the site's: the policy
			// grants the prefix alone.
			if _, err := a.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String("private/secret.txt"), Body: strings.NewReader("x")}); err != nil {
				t.Fatal(err)
			}
			if code, _ := a.page(t, "/../private/secret.txt"); code == 200 {
				t.Fatal("the edge served an object outside the site's prefix")
			}
		})
	}
}
