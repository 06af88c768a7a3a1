package localaws_test

import (
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
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/localaws"
)

func TestCachePolicyTTL(t *testing.T) {
	p := localaws.CachingOptimized
	tests := []struct {
		status int
		cc     string
		want   time.Duration
	}{
		{200, "", 24 * time.Hour},
		{200, "no-cache", time.Second},
		{200, "no-store", time.Second},
		{200, "private, max-age=600", 600 * time.Second},
		{200, "public, max-age=31536000, immutable", 365 * 24 * time.Hour},
		{200, "max-age=99999999999", 365 * 24 * time.Hour},
		{200, "max-age=0", time.Second},
		{200, "max-age=60, s-maxage=5", 5 * time.Second},
		{200, "S-MAXAGE=30", 30 * time.Second},
		{200, "max-age=\"120\"", 120 * time.Second},
		{200, "max-age=abc", 24 * time.Hour},
		{200, "max-age=-5", 24 * time.Hour},
		{404, "", 10 * time.Second},
		{404, "no-cache", 0},
		{410, "no-store", 0},
		{403, "no-cache", 10 * time.Second},
		{503, "private", 10 * time.Second},
		{404, "max-age=300", 300 * time.Second},
		{404, "max-age=1", 10 * time.Second},
	}
	for _, tt := range tests {
		if got := p.TTL(tt.status, tt.cc); got != tt.want {
			t.Errorf("TTL(%d, %q) = %s, want %s", tt.status, tt.cc, got, tt.want)
		}
	}
	none := localaws.CachePolicy{DefaultTTL: time.Hour, MaxTTL: 2 * time.Hour}
	if got := none.TTL(200, "no-cache"); got != 0 {
		t.Errorf("min TTL 0 and no-cache: cached %s", got)
	}
	if got := none.TTL(404, ""); got != 0 {
		t.Errorf("error TTL 0: a 404 cached %s", got)
	}
}

// edgeFixture is a stand-in with pops PoPs (seeded, so the PoPs' moments
// are the same every run) and one site on bucket "site".
type edgeFixture struct {
	*fixture
	edge *httptest.Server
}

func newEdgeFixture(t *testing.T, pops int) *edgeFixture {
	t.Helper()
	c := testclock.New(testclock.At(12, 0))
	f := newFixtureWith(t, localaws.Options{DataDir: t.TempDir(), Propagation: time.Minute, Invalidation: 30 * time.Second,
		Now: c.Now, Pops: pops, Seed: 42}, c)
	if err := f.srv.EnsureSite("EDGE1", "site"); err != nil {
		t.Fatal(err)
	}
	edge := httptest.NewServer(f.srv.Edge())
	t.Cleanup(edge.Close)
	return &edgeFixture{fixture: f, edge: edge}
}

func (f *edgeFixture) put(t *testing.T, key, body, cacheControl string) {
	t.Helper()
	in := &s3.PutObjectInput{Bucket: aws.String("site"), Key: aws.String(key), Body: strings.NewReader(body), ContentType: aws.String("text/html")}
	if cacheControl != "" {
		in.CacheControl = aws.String(cacheControl)
	}
	if _, err := f.s3.PutObject(ctx, in); err != nil {
		t.Fatal(err)
	}
}

// get asks PoP pop for path.
func (f *edgeFixture) get(t *testing.T, pop int, path string) (int, string, http.Header) {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, f.edge.URL+path, nil)
	req.Header.Set(localaws.PopHeader, fmt.Sprint(pop))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b), resp.Header
}

// grantRead lets distribution EDGE1 read bucket through an origin
// access control, as its bucket policy would say it.
func (f *edgeFixture) grantRead(t *testing.T, bucket string) {
	t.Helper()
	d, err := f.cf.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String("EDGE1")})
	if err != nil {
		t.Fatal(err)
	}
	policy, _, err := localaws.GrantDistributionRead("", bucket, aws.ToString(d.Distribution.ARN))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
		t.Fatal(err)
	}
}

func (f *edgeFixture) flip(t *testing.T, path string) {
	t.Helper()
	cfg, err := f.cf.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String("EDGE1")})
	if err != nil {
		t.Fatal(err)
	}
	cfg.DistributionConfig.Origins.Items[0].OriginPath = aws.String(path)
	if _, err := f.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String("EDGE1"), IfMatch: cfg.ETag, DistributionConfig: cfg.DistributionConfig}); err != nil {
		t.Fatal(err)
	}
}

func (f *edgeFixture) invalidate(t *testing.T, ref string, paths ...string) {
	t.Helper()
	if _, err := f.cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String("EDGE1"),
		InvalidationBatch: &cftypes.InvalidationBatch{CallerReference: aws.String(ref),
			Paths: &cftypes.Paths{Quantity: aws.Int32(int32(len(paths))), Items: paths}}}); err != nil {
		t.Fatal(err)
	}
}

func (f *edgeFixture) status(t *testing.T) string {
	t.Helper()
	d, err := f.cf.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String("EDGE1")})
	if err != nil {
		t.Fatal(err)
	}
	return aws.ToString(d.Distribution.Status)
}

// Each PoP picks up an origin path change at its own moment inside the
// propagation window, never goes back, and all have it once Deployed.
func TestEdgePopsPickUpAChangeAtTheirOwnMoment(t *testing.T) {
	const pops = 8
	f := newEdgeFixture(t, pops)
	for _, v := range []string{"v1", "v2"} {
		f.put(t, v+"/index.html", v, "no-cache") // cached for the 1 s minimum TTL
		f.put(t, v+"/docs/index.html", "docs "+v, "no-cache")
	}
	f.flip(t, "/v1")
	f.clock.Add(time.Minute)
	for p := range pops {
		if c, b, _ := f.get(t, p, "/"); c != 200 || b != "v1" {
			t.Fatalf("pop %d after the first change deployed: %d %q", p, c, b)
		}
	}
	// A REST origin has no index document: only "/" gets the default
	// root object.
	if c, b, _ := f.get(t, 0, "/docs/"); c != 403 {
		t.Fatalf("a folder path on a REST origin: %d %q, want S3's 403", c, b)
	}
	if c, b, _ := f.get(t, 0, "/docs/index.html"); c != 200 || b != "docs v1" {
		t.Fatalf("the folder's index: %d %q", c, b)
	}
	f.flip(t, "/v2")
	adopted := make([]bool, pops)
	mixed := false
	for step := 0; step < 12; step++ {
		f.clock.Add(5 * time.Second)
		n := 0
		for p := range pops {
			_, b, _ := f.get(t, p, "/")
			switch b {
			case "v2":
				adopted[p] = true
				n++
			case "v1":
				if adopted[p] {
					t.Fatalf("pop %d went back to v1 at %ds", p, 5*(step+1))
				}
			default:
				t.Fatalf("pop %d served %q", p, b)
			}
		}
		if n > 0 && n < pops {
			mixed = true
		}
		if step == 11 && n != pops {
			t.Fatalf("%d of %d PoPs serve v2 once the change is Deployed (%s)", n, pops, f.status(t))
		}
	}
	if !mixed {
		t.Fatal("no moment with PoPs on both sides of the change: propagation is not modelled per PoP")
	}
}

// CloudFront caches by viewer path: after an origin path change a cached
// object stays until it expires or an invalidation purges it, PoP by PoP.
func TestEdgeCachesUntilInvalidated(t *testing.T) {
	const pops = 4
	f := newEdgeFixture(t, pops)
	f.put(t, "v1/app.css", "css v1", "") // default TTL, a day
	f.put(t, "v2/app.css", "css v2", "")
	f.flip(t, "/v1")
	f.clock.Add(time.Minute)
	for p := range pops {
		if _, b, h := f.get(t, p, "/app.css"); b != "css v1" || h.Get("X-Cache") != "Miss from cloudfront" || h.Get("X-Amz-Cf-Pop") != fmt.Sprintf("LOCAL%d", p) {
			t.Fatalf("pop %d first read: %q %v", p, b, h)
		}
	}
	f.clock.Add(3 * time.Second)
	if _, b, h := f.get(t, 1, "/app.css"); b != "css v1" || h.Get("X-Cache") != "Hit from cloudfront" || h.Get("Age") != "3" {
		t.Fatalf("second read: %q %v", b, h)
	}
	f.flip(t, "/v2")
	f.clock.Add(2 * time.Minute)
	if st := f.status(t); st != "Deployed" {
		t.Fatalf("status %s", st)
	}
	for p := range pops {
		if _, b, _ := f.get(t, p, "/app.css"); b != "css v1" {
			t.Fatalf("pop %d dropped its cached copy without an invalidation: %q", p, b)
		}
	}
	f.invalidate(t, "inv-1", "/*")
	purged := make([]bool, pops)
	for step := 0; step < 6; step++ {
		f.clock.Add(5 * time.Second)
		for p := range pops {
			_, b, _ := f.get(t, p, "/app.css")
			if b == "css v2" {
				purged[p] = true
			} else if purged[p] {
				t.Fatalf("pop %d served the purged copy again", p)
			}
		}
	}
	for p := range pops {
		if !purged[p] {
			t.Fatalf("pop %d still serves the old copy after the invalidation completed", p)
		}
	}
	// A path invalidation purges only what it names.
	f.put(t, "v2/other.css", "other", "")
	f.get(t, 0, "/other.css")
	f.put(t, "v2/app.css", "css v2b", "")
	f.put(t, "v2/other.css", "other b", "")
	f.invalidate(t, "inv-2", "/app*")
	f.clock.Add(31 * time.Second)
	if _, b, _ := f.get(t, 0, "/app.css"); b != "css v2b" {
		t.Fatalf("prefix invalidation: %q", b)
	}
	if _, b, _ := f.get(t, 0, "/other.css"); b != "other" {
		t.Fatalf("an invalidation of /app* purged /other.css: %q", b)
	}
}

// An error (S3's 403 for a key it lacks, under origin access control) is
// cached for the error TTL, so an asset that appears later is not seen at
// once: what a release missing an old asset costs.
func TestEdgeCachesErrors(t *testing.T) {
	f := newEdgeFixture(t, 2)
	f.put(t, "v1/index.html", "v1", "no-cache")
	f.flip(t, "/v1")
	f.clock.Add(time.Minute)
	if c, _, h := f.get(t, 0, "/late.js"); c != 403 || h.Get("X-Cache") != "Error from cloudfront" {
		t.Fatalf("missing object: %d %v", c, h)
	}
	f.put(t, "v1/late.js", "late", "public, max-age=31536000, immutable")
	f.clock.Add(5 * time.Second)
	if c, _, _ := f.get(t, 0, "/late.js"); c != 403 {
		t.Fatalf("the cached 403 was not served within the error TTL: %d", c)
	}
	if c, b, _ := f.get(t, 1, "/late.js"); c != 200 || b != "late" {
		t.Fatalf("the other PoP never cached the 403: %d %q", c, b)
	}
	f.clock.Add(6 * time.Second)
	if c, b, _ := f.get(t, 0, "/late.js"); c != 200 || b != "late" {
		t.Fatalf("after the error TTL: %d %q", c, b)
	}
}

func TestEdgePopChoice(t *testing.T) {
	f := newEdgeFixture(t, 3)
	f.put(t, "index.html", "root", "")
	f.clock.Add(time.Minute)
	if c, _, _ := f.get(t, 3, "/"); c != 400 {
		t.Fatalf("PoP out of range: %d", c)
	}
	// Without the header the client address picks the PoP: always the same one.
	var first string
	for i := range 5 {
		resp, err := http.Get(f.edge.URL + "/")
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		pop := resp.Header.Get("X-Amz-Cf-Pop")
		if i == 0 {
			first = pop
		} else if pop != first {
			t.Fatalf("one client went to %s and then %s", first, pop)
		}
	}
	if !strings.HasPrefix(first, "LOCAL") {
		t.Fatalf("X-Amz-Cf-Pop %q", first)
	}
}

// update changes the distribution's config through the SDK.
func (f *edgeFixture) update(t *testing.T, change func(*cftypes.DistributionConfig)) {
	t.Helper()
	cfg, err := f.cf.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String("EDGE1")})
	if err != nil {
		t.Fatal(err)
	}
	change(cfg.DistributionConfig)
	if _, err := f.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String("EDGE1"), IfMatch: cfg.ETag, DistributionConfig: cfg.DistributionConfig}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
}

// A custom error response answers with its page, fetched through the
// origin path (so an origin-path site's 404 page is the live release's),
// with its response code; a page that cannot be had gives the page
// fetch's own status.
func TestEdgeCustomErrorResponses(t *testing.T) {
	f := newEdgeFixture(t, 1)
	f.put(t, "v1/index.html", "v1", "no-cache")
	f.put(t, "v1/404.html", "not here (v1)", "no-cache")
	f.put(t, "v2/index.html", "v2", "no-cache")
	f.put(t, "v2/404.html", "not here (v2)", "no-cache")
	ttl := int64(0)
	f.update(t, func(c *cftypes.DistributionConfig) {
		c.Origins.Items[0].OriginPath = aws.String("/v1")
		c.CustomErrorResponses = &cftypes.CustomErrorResponses{Quantity: aws.Int32(1), Items: []cftypes.CustomErrorResponse{
			{ErrorCode: aws.Int32(403), ResponsePagePath: aws.String("/404.html"), ResponseCode: aws.String("404"), ErrorCachingMinTTL: &ttl}}}
	})
	if c, b, h := f.get(t, 0, "/nope/"); c != 404 || b != "not here (v1)" || h.Get("X-Cache") != "Error from cloudfront" {
		t.Fatalf("missing page: %d %q %v", c, b, h)
	}
	f.flip(t, "/v2")
	f.clock.Add(time.Minute)
	f.invalidate(t, "flip", "/*")
	f.clock.Add(time.Minute)
	if c, b, _ := f.get(t, 0, "/nope/"); c != 404 || b != "not here (v2)" {
		t.Fatalf("after the flip the 404 page is the live release's: %d %q", c, b)
	}
	// The page deleted: the viewer gets the status the page's fetch got.
	if _, err := f.s3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String("site"), Key: aws.String("v2/404.html")}); err != nil {
		t.Fatal(err)
	}
	f.clock.Add(time.Minute)
	if c, _, _ := f.get(t, 0, "/other"); c != 403 {
		t.Fatalf("a page that is gone: %d, want the page fetch's 403", c)
	}
}

// Each path goes through the cache behaviour its pattern picks, to that
// behaviour's origin.
func TestEdgeCacheBehaviorsPickTheOrigin(t *testing.T) {
	f := newEdgeFixture(t, 1)
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("media")}); err != nil {
		t.Fatal(err)
	}
	f.put(t, "v1/index.html", "site", "")
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("media"), Key: aws.String("img/a.png"), Body: strings.NewReader("png")}); err != nil {
		t.Fatal(err)
	}
	// As an operator would: the media origin reads through the site's
	// origin access control, and the media bucket lets the distribution.
	f.grantRead(t, "media")
	f.update(t, func(c *cftypes.DistributionConfig) {
		c.Origins.Items[0].OriginPath = aws.String("/v1")
		c.Origins.Items = append(c.Origins.Items, cftypes.Origin{Id: aws.String("media"), DomainName: aws.String("media.s3.us-east-1.amazonaws.com"),
			OriginPath: aws.String(""), S3OriginConfig: &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")},
			OriginAccessControlId: c.Origins.Items[0].OriginAccessControlId})
		c.Origins.Quantity = aws.Int32(2)
		c.CacheBehaviors = &cftypes.CacheBehaviors{Quantity: aws.Int32(1), Items: []cftypes.CacheBehavior{{PathPattern: aws.String("/img/*"),
			TargetOriginId: aws.String("media"), ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyAllowAll}}}
	})
	if c, b, _ := f.get(t, 0, "/img/a.png"); c != 200 || b != "png" {
		t.Fatalf("/img/* behaviour: %d %q", c, b)
	}
	if c, b, _ := f.get(t, 0, "/"); c != 200 || b != "site" {
		t.Fatalf("default behaviour: %d %q", c, b)
	}
}

// A website endpoint origin serves folders' index documents and redirects
// a folder's path without its slash, origin path included in the Location.
func TestEdgeWebsiteEndpointOrigin(t *testing.T) {
	f := newEdgeFixture(t, 1)
	f.put(t, "www/v1/index.html", "home", "")
	f.put(t, "www/v1/docs/index.html", "docs", "")
	// A website endpoint takes anonymous requests only: as an operator
	// would, the bucket is made public (reads, and lists, so that a
	// missing page is 404, not 403).
	if _, err := f.s3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: aws.String("site"),
		PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true),
			BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: aws.Bool(false)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String("site"), Policy: aws.String(`{"Version": "2012-10-17", "Statement": [
		{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::site/*"},
		{"Effect": "Allow", "Principal": "*", "Action": "s3:ListBucket", "Resource": "arn:aws:s3:::site"}]}`)}); err != nil {
		t.Fatal(err)
	}
	f.update(t, func(c *cftypes.DistributionConfig) {
		o := &c.Origins.Items[0]
		o.DomainName, o.OriginPath, o.S3OriginConfig = aws.String("site.s3-website-us-east-1.amazonaws.com"), aws.String("/www/v1"), nil
		o.OriginAccessControlId = nil
		o.CustomOriginConfig = &cftypes.CustomOriginConfig{HTTPPort: aws.Int32(80), HTTPSPort: aws.Int32(443), OriginProtocolPolicy: cftypes.OriginProtocolPolicyHttpOnly}
	})
	if c, b, _ := f.get(t, 0, "/docs/"); c != 200 || b != "docs" {
		t.Fatalf("index document: %d %q", c, b)
	}
	req, _ := http.NewRequest(http.MethodGet, f.edge.URL+"/docs", nil)
	resp, err := http.DefaultTransport.RoundTrip(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusFound || resp.Header.Get("Location") != "/www/v1/docs/" {
		t.Fatalf("a folder without its slash: %d Location %q, want 302 to /www/v1/docs/ (the doubled prefix viewers then get)", resp.StatusCode, resp.Header.Get("Location"))
	}
	if c, _, _ := f.get(t, 0, "/missing.html"); c != 404 {
		t.Fatalf("website endpoint miss: %d, want 404", c)
	}
}

// An object's user metadata reaches viewers as S3 answers it, from the
// origin and from the cache; S3 refuses more than 2 KB of it.
func TestEdgePassesUserMetadataAndS3BoundsIt(t *testing.T) {
	f := newEdgeFixture(t, 1)
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("site"), Key: aws.String("index.html"), Body: strings.NewReader("hi"),
		Metadata: map[string]string{"deploybot-release": "v7"}}); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"Miss from cloudfront", "Hit from cloudfront"} {
		_, _, h := f.get(t, 0, "/index.html")
		if h.Get("X-Amz-Meta-Deploybot-Release") != "v7" || h.Get("X-Cache") != want {
			t.Fatalf("answer headers %v, want the release metadata (%s)", h, want)
		}
	}
	big := map[string]string{"a": strings.Repeat("x", 2000), "b": strings.Repeat("y", 100)}
	_, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("site"), Key: aws.String("big"), Body: strings.NewReader("x"), Metadata: big})
	if code(err) != "MetadataTooLarge" {
		t.Fatalf("2,102 bytes of metadata: %v, want MetadataTooLarge", err)
	}
	_, err = f.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("site"), Key: aws.String("copy"), CopySource: aws.String("site/index.html"),
		MetadataDirective: s3types.MetadataDirectiveReplace, Metadata: big})
	if code(err) != "MetadataTooLarge" {
		t.Fatalf("a copy with 2,102 bytes of metadata: %v, want MetadataTooLarge", err)
	}
}
