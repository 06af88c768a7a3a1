package localaws_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/localaws"
)

// fixture is the stand-in behind the SDK, on a clock the test holds, so
// status transitions are checked without sleeping.
type fixture struct {
	dir   string
	clock *testclock.Clock
	srv   *localaws.Server
	api   *httptest.Server
	s3    *s3.Client
	cf    *cloudfront.Client
}

func newFixture(t *testing.T, dir string) *fixture {
	t.Helper()
	c := testclock.New(testclock.At(12, 0))
	return newFixtureWith(t, localaws.Options{DataDir: dir, Propagation: time.Minute, Invalidation: 30 * time.Second, Now: c.Now}, c)
}

func newFixtureWith(t *testing.T, opts localaws.Options, c *testclock.Clock) *fixture {
	t.Helper()
	dir := opts.DataDir
	srv, err := localaws.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	s3c, cfc, err := cloud.NewClients(context.Background(), cloud.Settings{Region: "us-east-1", Endpoint: api.URL,
		Credentials: cloud.StaticCredentials("AKID", "secret"), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return &fixture{dir: dir, clock: c, srv: srv, api: api, s3: s3c, cf: cfc}
}

func code(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

var ctx = context.Background()

func TestDistributionETagsAndStatus(t *testing.T) {
	f := newFixture(t, t.TempDir())
	id, err := localaws.Provision(ctx, f.s3, f.cf, "bkt", "ref-1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := f.cf.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	if s := aws.ToString(d.Distribution.Status); s != "InProgress" {
		t.Fatalf("new distribution status %q", s)
	}
	f.clock.Add(time.Minute)
	d, _ = f.cf.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String(id)})
	if s := aws.ToString(d.Distribution.Status); s != "Deployed" {
		t.Fatalf("status after propagation %q", s)
	}
	if len(d.Distribution.DistributionConfig.Origins.Items) != 1 || aws.ToString(d.Distribution.DomainName) == "" {
		t.Fatalf("distribution %+v", d.Distribution)
	}

	cfg, err := f.cf.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	etag1 := aws.ToString(cfg.ETag)
	cfg.DistributionConfig.Origins.Items[0].OriginPath = aws.String("/v1")
	up, err := f.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(id), IfMatch: aws.String(etag1), DistributionConfig: cfg.DistributionConfig})
	if err != nil {
		t.Fatal(err)
	}
	etag2 := aws.ToString(up.ETag)
	if etag2 == "" || etag2 == etag1 {
		t.Fatalf("ETag did not change: %q -> %q", etag1, etag2)
	}
	if s := aws.ToString(up.Distribution.Status); s != "InProgress" {
		t.Fatalf("status after update %q", s)
	}
	// Stale If-Match: 412 PreconditionFailed, typed by the SDK.
	_, err = f.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(id), IfMatch: aws.String(etag1), DistributionConfig: cfg.DistributionConfig})
	var pf *cftypes.PreconditionFailed
	if !errors.As(err, &pf) {
		t.Fatalf("stale If-Match: %v", err)
	}
	// No If-Match at all.
	_, err = f.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(id), DistributionConfig: cfg.DistributionConfig})
	if code(err) != "InvalidIfMatchVersion" {
		t.Fatalf("missing If-Match: %v", err)
	}
	// An origin path with a trailing slash is refused, as CloudFront does.
	cfg.DistributionConfig.Origins.Items[0].OriginPath = aws.String("/v1/")
	_, err = f.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(id), IfMatch: aws.String(etag2), DistributionConfig: cfg.DistributionConfig})
	if code(err) != "InvalidArgument" {
		t.Fatalf("trailing slash: %v", err)
	}
	// The config round-trips: what was sent is what is read back.
	cfg2, _ := f.cf.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(id)})
	if aws.ToString(cfg2.DistributionConfig.DefaultCacheBehavior.CachePolicyId) == "" || aws.ToString(cfg2.DistributionConfig.Origins.Items[0].OriginPath) != "/v1" {
		t.Fatalf("config lost fields: %+v", cfg2.DistributionConfig)
	}
	list, err := f.cf.ListDistributions(ctx, &cloudfront.ListDistributionsInput{})
	if err != nil || len(list.DistributionList.Items) != 1 || aws.ToString(list.DistributionList.Items[0].Id) != id {
		t.Fatalf("list: %+v %v", list, err)
	}
	if _, err := f.cf.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String("ENOPE")}); !errors.As(err, new(*cftypes.NoSuchDistribution)) {
		t.Fatalf("unknown distribution: %v", err)
	}
}

func TestInvalidationLifecycle(t *testing.T) {
	f := newFixture(t, t.TempDir())
	id, _ := localaws.Provision(ctx, f.s3, f.cf, "bkt", "ref")
	batch := func(ref string, paths ...string) *cftypes.InvalidationBatch {
		return &cftypes.InvalidationBatch{CallerReference: aws.String(ref), Paths: &cftypes.Paths{Quantity: aws.Int32(int32(len(paths))), Items: paths}}
	}
	out, err := f.cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String(id), InvalidationBatch: batch("d1", "/*")})
	if err != nil {
		t.Fatal(err)
	}
	inv := aws.ToString(out.Invalidation.Id)
	get := func() string {
		g, err := f.cf.GetInvalidation(ctx, &cloudfront.GetInvalidationInput{DistributionId: aws.String(id), Id: aws.String(inv)})
		if err != nil {
			t.Fatal(err)
		}
		return aws.ToString(g.Invalidation.Status)
	}
	if s := get(); s != "InProgress" {
		t.Fatalf("status %q", s)
	}
	f.clock.Add(30 * time.Second)
	if s := get(); s != "Completed" {
		t.Fatalf("status after the delay %q", s)
	}
	_, err = f.cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String(id), InvalidationBatch: batch("d1", "/index.html")})
	if code(err) != "InvalidationBatchAlreadyExists" {
		t.Fatalf("same caller reference, other paths: %v", err)
	}
	list, err := f.cf.ListInvalidations(ctx, &cloudfront.ListInvalidationsInput{DistributionId: aws.String(id)})
	if err != nil || len(list.InvalidationList.Items) != 1 {
		t.Fatalf("list %+v %v", list, err)
	}
}

func TestStatePersistsAcrossRestart(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	id, _ := localaws.Provision(ctx, f.s3, f.cf, "bkt", "ref")
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("a/b.txt"),
		Body: strings.NewReader("hello"), ContentType: aws.String("text/plain"), CacheControl: aws.String("no-cache")}); err != nil {
		t.Fatal(err)
	}
	f.api.Close()
	g := newFixture(t, dir)
	out, err := g.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("a/b.txt")})
	if err != nil {
		t.Fatal(err)
	}
	b, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(b) != "hello" || aws.ToString(out.CacheControl) != "no-cache" || aws.ToString(out.ContentType) != "text/plain" {
		t.Fatalf("after restart: %q %+v", b, out)
	}
	if _, err := g.cf.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String(id)}); err != nil {
		t.Fatalf("distribution lost: %v", err)
	}
}

func TestListObjectsV2(t *testing.T) {
	f := newFixture(t, t.TempDir())
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	keys := []string{"a.txt", "d/1", "d/2", "d/sub/3", "e/1", "z"}
	for i := range 25 {
		keys = append(keys, fmt.Sprintf("many/%03d", i))
	}
	for _, k := range keys {
		if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	out, err := f.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt"), Delimiter: aws.String("/")})
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, o := range out.Contents {
		got = append(got, aws.ToString(o.Key))
	}
	for _, p := range out.CommonPrefixes {
		got = append(got, aws.ToString(p.Prefix))
	}
	if fmt.Sprint(got) != "[a.txt z d/ e/ many/]" {
		t.Fatalf("delimiter listing %v", got)
	}
	// Pages of 7 under a prefix, across every key exactly once.
	var seen []string
	p := s3.NewListObjectsV2Paginator(f.s3, &s3.ListObjectsV2Input{Bucket: aws.String("bkt"), Prefix: aws.String("many/"), MaxKeys: aws.Int32(7)})
	pages := 0
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			t.Fatal(err)
		}
		pages++
		for _, o := range page.Contents {
			seen = append(seen, aws.ToString(o.Key))
		}
	}
	if len(seen) != 25 || pages != 4 || seen[0] != "many/000" || seen[24] != "many/024" {
		t.Fatalf("paged %d keys in %d pages: %v", len(seen), pages, seen)
	}
}

func TestConditionalWrites(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")})
	put := func(body string, in func(*s3.PutObjectInput)) (*s3.PutObjectOutput, error) {
		p := &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("k"), Body: strings.NewReader(body)}
		if in != nil {
			in(p)
		}
		return f.s3.PutObject(ctx, p)
	}
	first, err := put("one", func(p *s3.PutObjectInput) { p.IfNoneMatch = aws.String("*") })
	if err != nil {
		t.Fatal(err)
	}
	if _, err := put("two", func(p *s3.PutObjectInput) { p.IfNoneMatch = aws.String("*") }); code(err) != "PreconditionFailed" {
		t.Fatalf("If-None-Match on an existing key: %v", err)
	}
	second, err := put("two", func(p *s3.PutObjectInput) { p.IfMatch = first.ETag })
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(second.ETag) == aws.ToString(first.ETag) {
		t.Fatal("ETag unchanged by a new body")
	}
	if _, err := put("three", func(p *s3.PutObjectInput) { p.IfMatch = first.ETag }); code(err) != "PreconditionFailed" {
		t.Fatalf("stale If-Match: %v", err)
	}
	// Racing creators: exactly one wins.
	var wg sync.WaitGroup
	wins := make(chan int, 20)
	for i := range 20 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			p := &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("race"), Body: bytes.NewReader([]byte(fmt.Sprint(i))), IfNoneMatch: aws.String("*")}
			if _, err := f.s3.PutObject(ctx, p); err == nil {
				wins <- i
			}
		}()
	}
	wg.Wait()
	close(wins)
	if n := len(wins); n != 1 {
		t.Fatalf("%d racing creators succeeded", n)
	}
}

// CopyObject and CompleteMultipartUpload take If-None-Match: * as
// PutObject does: 412 PreconditionFailed when the destination exists, and
// the object there is left as it was
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).
func TestConditionalCopyAndComplete(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")})
	for _, k := range []string{"src", "taken"} {
		if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String(k), Body: strings.NewReader(k)}); err != nil {
			t.Fatal(err)
		}
	}
	copyTo := func(key string) error {
		_, err := f.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("bkt"), Key: aws.String(key), CopySource: aws.String("bkt/src"), IfNoneMatch: aws.String("*")})
		return err
	}
	if err := copyTo("new"); err != nil {
		t.Fatalf("conditional copy to a new key: %v", err)
	}
	if err := copyTo("taken"); code(err) != "PreconditionFailed" {
		t.Fatalf("conditional copy over an existing key: %v", err)
	}
	complete := func(key string) error {
		// The parts' checksum declared, and listed on Complete (see
		// partchecksum.go): the SDK adds a CRC32 to every part.
		up, err := f.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String(key),
			ChecksumAlgorithm: s3types.ChecksumAlgorithmCrc32})
		if err != nil {
			return err
		}
		part, err := f.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("bkt"), Key: aws.String(key), UploadId: up.UploadId,
			PartNumber: aws.Int32(1), Body: strings.NewReader("parts")})
		if err != nil {
			return err
		}
		_, err = f.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String(key), UploadId: up.UploadId,
			MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1), ChecksumCRC32: part.ChecksumCRC32}}},
			IfNoneMatch:     aws.String("*")})
		return err
	}
	if err := complete("big"); err != nil {
		t.Fatalf("conditional complete of a new key: %v", err)
	}
	if err := complete("taken"); code(err) != "PreconditionFailed" {
		t.Fatalf("conditional complete over an existing key: %v", err)
	}
	out, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("taken")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != "taken" {
		t.Fatalf("the refused writes changed the object: %q", body)
	}
}

// A bucket whose policy enforces conditional writes refuses what
// conditional-writes-enforce.html says it refuses, and nothing else.
func TestEnforcedConditionalWrites(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")})
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("src"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	f.srv.EnforceConditionalWrites("bkt", true)
	n := 0
	key := func() *string { n++; return aws.String(fmt.Sprint("k", n)) }
	tests := []struct {
		name string
		call func() error
		want string // error code, "" for success
	}{
		{"put without a condition", func() error {
			_, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: key(), Body: strings.NewReader("x")})
			return err
		}, "AccessDenied"},
		{"put with If-None-Match", func() error {
			_, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: key(), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")})
			return err
		}, ""},
		{"copy without a condition", func() error {
			_, err := f.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("bkt"), Key: key(), CopySource: aws.String("bkt/src")})
			return err
		}, "AccessDenied"},
		{"copy with If-None-Match (the page's note)", func() error {
			_, err := f.s3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("bkt"), Key: key(), CopySource: aws.String("bkt/src"), IfNoneMatch: aws.String("*")})
			return err
		}, "NotImplemented"},
		{"multipart parts are exempt, the complete is not", func() error {
			k := key()
			up, err := f.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: k})
			if err != nil {
				return fmt.Errorf("create: %w", err)
			}
			part, err := f.s3.UploadPart(ctx, &s3.UploadPartInput{Bucket: aws.String("bkt"), Key: k, UploadId: up.UploadId, PartNumber: aws.Int32(1), Body: strings.NewReader("p")})
			if err != nil {
				return fmt.Errorf("part: %w", err)
			}
			_, err = f.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("bkt"), Key: k, UploadId: up.UploadId,
				MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{{ETag: part.ETag, PartNumber: aws.Int32(1)}}}})
			return err
		}, "AccessDenied"},
	}
	for _, tt := range tests {
		if err := tt.call(); code(err) != tt.want || (tt.want == "" && err != nil) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.want)
		}
	}
	f.srv.EnforceConditionalWrites("bkt", false)
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("free"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("enforcement turned off: %v", err)
	}
}

func TestDeleteObjects(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")})
	var ids []s3types.ObjectIdentifier
	for i := range 1001 {
		ids = append(ids, s3types.ObjectIdentifier{Key: aws.String(fmt.Sprintf("k%04d", i))})
	}
	for _, id := range ids[:3] {
		f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: id.Key, Body: strings.NewReader("x")})
	}
	_, err := f.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &s3types.Delete{Objects: ids}})
	if code(err) != "MalformedXML" {
		t.Fatalf("1,001 keys: %v", err)
	}
	out, err := f.s3.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &s3types.Delete{Objects: ids[:1000]}})
	if err != nil || len(out.Deleted) != 1000 {
		t.Fatalf("delete: %v %v", out, err)
	}
	list, _ := f.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt")})
	if len(list.Contents) != 0 {
		t.Fatalf("left: %d", len(list.Contents))
	}
}

func TestFaultsAreRetriedOrSurface(t *testing.T) {
	f := newFixture(t, t.TempDir())
	f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")})
	f.srv.SetFaults(localaws.Faults{ErrorRate: 1, Only: "s3 GetObject"})
	_, err := f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("x")})
	if code(err) != "InternalError" {
		t.Fatalf("5xx fault: %v", err)
	}
	f.srv.SetFaults(localaws.Faults{ThrottleRate: 1})
	_, err = f.cf.ListDistributions(ctx, &cloudfront.ListDistributionsInput{})
	if code(err) != "Throttling" {
		t.Fatalf("throttle fault: %v", err)
	}
	f.srv.SetFaults(localaws.Faults{Latency: 50 * time.Millisecond})
	start := time.Now()
	if _, err := f.s3.ListBuckets(ctx, &s3.ListBucketsInput{}); err != nil {
		t.Fatal(err)
	}
	if time.Since(start) < 50*time.Millisecond {
		t.Fatal("latency fault not applied")
	}
	// Admin endpoint sets the same knobs over HTTP.
	req, _ := http.NewRequest(http.MethodPut, f.api.URL+"/_localaws/faults", strings.NewReader(`{"error_rate":1,"path":"/bkt/only-this"}`))
	resp, err := http.DefaultClient.Do(req)
	if err != nil || resp.StatusCode != 204 {
		t.Fatalf("admin: %v %v", resp, err)
	}
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("other"), Body: strings.NewReader("x")}); err != nil {
		t.Fatalf("fault applied outside its path: %v", err)
	}
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("only-this"), Body: strings.NewReader("x")}); err == nil {
		t.Fatal("fault not applied on its path")
	}
}

// MaxStreak bounds the faults in a row one request meets: with every call
// faulted and a bound of 2, the third attempt of each goes through.
func TestFaultStreakIsBounded(t *testing.T) {
	f := newFixture(t, t.TempDir())
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("streak-bucket")}); err != nil {
		t.Fatal(err)
	}
	f.srv.SetFaults(localaws.Faults{ErrorRate: 1, MaxStreak: 2, Only: "PutObject"})
	for i := range 3 {
		before := f.srv.Calls()["s3 PutObject"]
		// The fixture's clients try once: drive the attempts by hand.
		var err error
		for attempt := 1; attempt <= 3; attempt++ {
			_, err = f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("streak-bucket"), Key: aws.String(fmt.Sprintf("k%d", i)), Body: strings.NewReader("x")})
			if (attempt < 3) != (err != nil) {
				t.Fatalf("object %d attempt %d: %v", i, attempt, err)
			}
		}
		if n := f.srv.Calls()["s3 PutObject"] - before; n != 3 {
			t.Fatalf("object %d took %d calls, want 3", i, n)
		}
	}
}
