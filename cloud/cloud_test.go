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

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

type env struct{ *testenv.Env }

func newEnv(t *testing.T, propagation, invalidation time.Duration) *env {
	t.Helper()
	return newEnvSeeded(t, propagation, invalidation, 0)
}

// newEnvSeeded fixes the stand-in's random choices (which calls a fault
// rate hits, the PoPs' moments); seed 0 is a random one. The bucket and
// the distribution are made through the SDK, as an operator would.
func newEnvSeeded(t *testing.T, propagation, invalidation time.Duration, seed uint64) *env {
	t.Helper()
	return &env{testenv.New(t, testenv.Options{AWS: localaws.Options{Propagation: propagation, Invalidation: invalidation, Seed: seed},
		Provision: true, MaxAttempts: 8, Edge: true})}
}

func (e *env) put(t *testing.T, version, path, body string) {
	t.Helper()
	err := e.Bucket.PutFile(context.Background(), e.Site, version, releases.File{Path: path, Body: strings.NewReader(body),
		Size: int64(len(body)), ContentType: "text/html; charset=utf-8", CacheControl: "no-cache"})
	if err != nil {
		t.Fatal(err)
	}
}

func (e *env) get(t *testing.T, path string) (int, string) {
	t.Helper()
	resp, err := http.Get(e.Edge + path)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

func TestFlipThroughSDK(t *testing.T) {
	e := newEnv(t, 150*time.Millisecond, 100*time.Millisecond)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "one")
	e.put(t, "v2", "index.html", "two")
	cur, err := e.CDN.Current(ctx, e.Site)
	if err != nil || cur.Version != "" || cur.Path != "" {
		t.Fatalf("current before any flip: %+v %v", cur, err)
	}
	for _, v := range []string{"v1", "v2"} {
		cur, _ := e.CDN.Current(ctx, e.Site)
		for _, st := range e.CDN.Plan(e.Site, cur, v, "deploy-"+v) {
			if err := st.Run(ctx); err != nil {
				t.Fatalf("%s: %v", st.Phase, err)
			}
			if st.Phase == cloud.PhaseUpdate {
				// Not yet deployed: the edge still serves the old folder.
				if code, body := e.get(t, "/"); v == "v2" && (code != 200 || body != "one") {
					t.Fatalf("edge during propagation: %d %q", code, body)
				}
			}
		}
		if code, body := e.get(t, "/"); code != 200 || body != map[string]string{"v1": "one", "v2": "two"}[v] {
			t.Fatalf("edge after %s: %d %q", v, code, body)
		}
		cur, _ = e.CDN.Current(ctx, e.Site)
		if cur.Version != v || cur.Path != "/www/"+v {
			t.Fatalf("current after %s: %+v", v, cur)
		}
	}
}

func TestFlipRefusesWhenSomeoneElseFlipped(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	cur, _ := e.CDN.Current(ctx, e.Site)
	// Someone changes the origin path by hand between our read and update.
	other, _ := e.CDN.Current(ctx, e.Site)
	for _, st := range e.CDN.Plan(e.Site, other, "hand", "x")[:1] {
		if err := st.Run(ctx); err != nil {
			t.Fatal(err)
		}
	}
	steps := e.CDN.Plan(e.Site, cur, "v2", "deploy")
	err := steps[0].Run(ctx)
	if releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("want ECONFLICT, got %v", err)
	}
	now, _ := e.CDN.Current(ctx, e.Site)
	if now.Path != "/www/hand" {
		t.Fatalf("origin path changed to %q", now.Path)
	}
}

func TestInvalidationIdempotentByCallerReference(t *testing.T) {
	e := newEnv(t, 0, 50*time.Millisecond)
	ctx := context.Background()
	mk := func() string {
		out, err := e.CF.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String(e.Site.DistributionID),
			InvalidationBatch: &cftypesBatch})
		if err != nil {
			t.Fatal(err)
		}
		if s := aws.ToString(out.Invalidation.Status); s != "InProgress" {
			t.Fatalf("new invalidation status %q", s)
		}
		return aws.ToString(out.Invalidation.Id)
	}
	if a, b := mk(), mk(); a != b {
		t.Fatalf("same caller reference made two invalidations: %s %s", a, b)
	}
}

func TestRetriesThroughFaults(t *testing.T) {
	// A fixed seed, and faults in streaks of at most 5: unbounded, 40%
	// faults now and then hit one call eight times in a row (about one run
	// in forty), which no retry budget of 8 outlasts.
	e := newEnvSeeded(t, 20*time.Millisecond, 20*time.Millisecond, 20261202)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "one")
	e.AWS.SetFaults(localaws.Faults{ErrorRate: 0.2, ThrottleRate: 0.2, MaxStreak: 5})
	for i := range 30 {
		e.put(t, "v1", fmt.Sprintf("f%d.html", i), "x")
	}
	cur, err := e.CDN.Current(ctx, e.Site)
	if err != nil {
		t.Fatal(err)
	}
	for _, st := range e.CDN.Plan(e.Site, cur, "v1", "d1") {
		if err := st.Run(ctx); err != nil {
			t.Fatalf("%s under faults: %v", st.Phase, err)
		}
	}
	e.AWS.SetFaults(localaws.Faults{})
	calls := e.AWS.Calls()
	if calls["s3 PutObject"] <= 31 {
		t.Fatalf("expected retried PutObject calls, saw %d", calls["s3 PutObject"])
	}
	if code, body := e.get(t, "/"); code != 200 || body != "one" {
		t.Fatalf("edge: %d %q", code, body)
	}
}

var cftypesBatch = cftypes.InvalidationBatch{CallerReference: aws.String("same-ref"),
	Paths: &cftypes.Paths{Quantity: aws.Int32(1), Items: []string{"/*"}}}

// With CloudFront's 15 wildcard invalidations in progress, a flip's
// invalidation waits its turn, and says so, instead of failing the deploy.
func TestInvalidationQueuesBehindCloudFrontsLimit(t *testing.T) {
	e := newEnv(t, 20*time.Millisecond, 1500*time.Millisecond)
	ctx := context.Background()
	e.put(t, "v1", "index.html", "v1")
	if err := e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: "v1", PublishedAt: time.Now(),
		Files: []releases.ManifestFile{{Path: "index.html", Size: 2}}}); err != nil {
		t.Fatal(err)
	}
	for i := range 15 {
		if _, err := e.CF.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String(e.Site.DistributionID),
			InvalidationBatch: &cftypes.InvalidationBatch{CallerReference: aws.String(fmt.Sprintf("other-%d", i)),
				Paths: &cftypes.Paths{Quantity: aws.Int32(1), Items: []string{"/*"}}}}); err != nil {
			t.Fatal(err)
		}
	}
	_, err := e.CF.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String(e.Site.DistributionID),
		InvalidationBatch: &cftypes.InvalidationBatch{CallerReference: aws.String("one-too-many"), Paths: &cftypes.Paths{Quantity: aws.Int32(1), Items: []string{"/*"}}}})
	var tooMany *cftypes.TooManyInvalidationsInProgress
	if !errors.As(err, &tooMany) {
		t.Fatalf("a 16th wildcard invalidation in progress: %v", err)
	}
	e.OpenStore()
	svc := e.Service
	var notes []string
	out, err := svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, func(ev releases.Event) {
		if ev.Type == releases.EventPhaseNote {
			notes = append(notes, string(ev.Phase)+": "+ev.Title)
		}
	})
	if err != nil || out.Deploy.Phase != releases.PhaseDone {
		t.Fatalf("a flip behind the invalidation limit: %+v %v", out, err)
	}
	if len(notes) == 0 || !strings.Contains(notes[0], "invalidate: queued: 15 invalidation(s) are in progress") {
		t.Fatalf("notes %q", notes)
	}
}

// A distribution whose origin is the bucket's S3 website endpoint is
// refused, saying why and what to use instead: its redirects would double
// the release folder, and it cannot use Origin Access Control.
func TestWebsiteEndpointOriginIsRefused(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	dc, err := e.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	dc.DistributionConfig.Origins.Items[0].DomainName = aws.String("site-bucket.s3-website-us-east-1.amazonaws.com")
	if _, err := e.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(e.Site.DistributionID), IfMatch: dc.ETag,
		DistributionConfig: dc.DistributionConfig}); err != nil {
		t.Fatal(err)
	}
	_, err = e.CDN.Current(ctx, e.Site)
	if releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), "S3 website endpoint") || !strings.Contains(err.Error(), "site-bucket.s3.<region>.amazonaws.com") {
		t.Fatalf("a website endpoint origin: %v", err)
	}
}

// A configuration whose bucket is not the one the distribution's origin
// reads (a typo, say) is refused before anything changes, naming both:
// the flip would otherwise point the origin at a folder its bucket lacks,
// and every page would answer 403.
func TestPromoteRefusesAnOriginReadingAnotherBucket(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	typo := e.Site
	typo.Bucket = "site-bucket-typo"
	before, err := e.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	_, err = e.CDN.Current(ctx, typo)
	if releases.ErrorCode(err) != releases.EINVALID || !strings.Contains(err.Error(), "reads bucket "+e.Site.Bucket) || !strings.Contains(err.Error(), "bucket is site-bucket-typo") {
		t.Fatalf("an origin reading another bucket: %v", err)
	}
	after, err := e.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(e.Site.DistributionID)})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(before.ETag) != aws.ToString(after.ETag) {
		t.Fatal("the refused flip changed the distribution")
	}
}
