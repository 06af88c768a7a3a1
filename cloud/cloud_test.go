package cloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/publish"
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

func TestManifestWriteOnceAndList(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	if _, err := e.Bucket.ReadManifest(ctx, e.Site, "v1"); !errors.Is(err, releases.ErrNoManifest) || releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("missing manifest: got %v", err)
	}
	m := &releases.Manifest{Version: "v1", Commit: "abc", PublishedAt: time.Now().UTC().Truncate(time.Second),
		Files: []releases.ManifestFile{{Path: "index.html", Size: 3, SHA256: strings.Repeat("0", 64)}}}
	if err := e.Bucket.WriteManifest(ctx, e.Site, m); err != nil {
		t.Fatal(err)
	}
	m2 := *m
	m2.Commit = "other"
	if err := e.Bucket.WriteManifest(ctx, e.Site, &m2); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("second manifest write: want ECONFLICT, got %v", err)
	}
	got, err := e.Bucket.ReadManifest(ctx, e.Site, "v1")
	if err != nil || got.Commit != "abc" || len(got.Files) != 1 {
		t.Fatalf("read back %+v, %v", got, err)
	}
	// More than one page of manifests, plus noise that is not a manifest.
	for i := range 1203 {
		v := fmt.Sprintf("b%04d", i)
		if err := e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: v}); err != nil {
			t.Fatal(err)
		}
	}
	e.put(t, "v1", "index.html", "v1")
	vs, err := e.Bucket.ListVersions(ctx, e.Site)
	if err != nil {
		t.Fatal(err)
	}
	if len(vs) != 1204 {
		t.Fatalf("listed %d versions, want 1204", len(vs))
	}
}

func TestS3KeepsHeaders(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	e.put(t, "v1", "a/b c.html", "hello")
	out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v1/a/b c.html")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != "hello" || aws.ToString(out.ContentType) != "text/html; charset=utf-8" || aws.ToString(out.CacheControl) != "no-cache" {
		t.Fatalf("got %q %q %q", body, aws.ToString(out.ContentType), aws.ToString(out.CacheControl))
	}
	// CopyObject keeps metadata; If-Match on a stale ETag is refused.
	if _, err := e.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v2/x.html"),
		CopySource: aws.String("site-bucket/www/v1/a/b%20c.html")}); err != nil {
		t.Fatal(err)
	}
	head, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v2/x.html")})
	if err != nil || aws.ToString(head.CacheControl) != "no-cache" || aws.ToInt64(head.ContentLength) != 5 {
		t.Fatalf("copy: %+v %v", head, err)
	}
	_, err = e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v2/x.html"),
		Body: bytes.NewReader([]byte("new")), IfMatch: aws.String(`"0123"`)})
	if err == nil {
		t.Fatal("stale If-Match accepted")
	}
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

// onlyReader hides Seek, so the SDK streams the body (aws-chunked with a
// trailing checksum) instead of hashing it up front.
type onlyReader struct{ io.Reader }

func TestS3ChecksumsBothWays(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	body := strings.Repeat("0123456789", 10000)
	// The SDK streams with a trailing checksum only over TLS.
	tlsAPI := httptest.NewTLSServer(e.AWS.Handler())
	t.Cleanup(tlsAPI.Close)
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(cloud.StaticCredentials("AKIDLOCAL", "secret")))
	if err != nil {
		t.Fatal(err)
	}
	tlsS3 := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle, o.HTTPClient = aws.String(tlsAPI.URL), true, tlsAPI.Client()
	})
	for _, tc := range []struct {
		name string
		in   *s3.PutObjectInput
	}{
		{"seekable", &s3.PutObjectInput{Body: strings.NewReader(body)}},
		{"streamed", &s3.PutObjectInput{Body: onlyReader{strings.NewReader(body)}, ContentLength: aws.Int64(int64(len(body)))}},
		{"sha256", &s3.PutObjectInput{Body: strings.NewReader(body), ChecksumAlgorithm: "SHA256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Bucket, tc.in.Key = aws.String("site-bucket"), aws.String("ck/"+tc.name)
			if _, err := tlsS3.PutObject(ctx, tc.in); err != nil {
				t.Fatal(err)
			}
			out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: tc.in.Bucket, Key: tc.in.Key, ChecksumMode: "ENABLED"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || string(got) != body {
				t.Fatalf("read back %d bytes, err %v", len(got), err)
			}
			if aws.ToString(out.ChecksumCRC32) == "" && aws.ToString(out.ChecksumSHA256) == "" && aws.ToString(out.ChecksumCRC64NVME) == "" {
				t.Fatalf("no checksum returned")
			}
		})
	}
	// A wrong checksum is refused and nothing is stored.
	_, err = e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("ck/bad"),
		Body: strings.NewReader(body), ChecksumSHA256: aws.String("q2FkOgzUe5hwP6PaVZMw+G7QY3dvbdyIf5PeqEQIHhI=")})
	var ae interface{ ErrorCode() string }
	if !errors.As(err, &ae) || ae.ErrorCode() != "BadDigest" {
		t.Fatalf("bad checksum: %v", err)
	}
	if _, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("ck/bad")}); err == nil {
		t.Fatal("object with a bad checksum was stored")
	}
}

// sectionFile is what publish hands PutFile: a seekable file that can be
// read at offsets, so parts stream from disk.
func TestLargeFilesGoUpInParts(t *testing.T) {
	for _, server := range []string{"localaws", "versitygw"} {
		t.Run(server, func(t *testing.T) {
			ctx := context.Background()
			var s3c *s3.Client
			site := releases.Site{Name: "www", Bucket: "site-bucket", Prefix: "www/"}
			if server == "localaws" {
				s3c = newEnv(t, 0, 0).S3
			} else {
				endpoint := testaws.StartVersityGW(t)
				var err error
				s3c, _, err = cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: endpoint, Credentials: cloud.StaticCredentials(testaws.AccessKey, testaws.SecretKey)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("site-bucket")}); err != nil {
					t.Fatal(err)
				}
			}
			b := &cloud.S3Bucket{Client: s3c, MultipartThreshold: 6 << 20, PartSize: 5 << 20}
			body := bytes.Repeat([]byte("0123456789abcdef"), (13<<20)/16+7) // 13 MiB + 112 B: three parts
			if err := b.PutFile(ctx, site, "v1", releases.File{Path: "big.bin", Body: bytes.NewReader(body), Size: int64(len(body)),
				ContentType: "application/octet-stream", CacheControl: "public, max-age=60"}); err != nil {
				t.Fatal(err)
			}
			out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v1/big.bin")})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, body) || aws.ToString(out.CacheControl) != "public, max-age=60" {
				t.Fatalf("read back %d bytes (want %d), cache %q", len(got), len(body), aws.ToString(out.CacheControl))
			}
			if !strings.HasSuffix(strings.Trim(aws.ToString(out.ETag), `"`), "-3") {
				t.Fatalf("ETag %s is not a 3-part multipart ETag", aws.ToString(out.ETag))
			}
			// The upload declared CRC32 and listed each part's on
			// Complete (partChecksum): the object keeps the composite
			// checksum of the parts' CRC32s.
			head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v1/big.bin"), ChecksumMode: "ENABLED"})
			if err != nil {
				t.Fatal(err)
			}
			var sums []byte
			for off := 0; off < len(body); off += 5 << 20 {
				sums = binary.BigEndian.AppendUint32(sums, crc32.ChecksumIEEE(body[off:min(off+5<<20, len(body))]))
			}
			want := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(sums))) + "-3"
			if got := aws.ToString(head.ChecksumCRC32); got != want || head.ChecksumType != "COMPOSITE" {
				t.Fatalf("the object's checksum: CRC32 %q (%s), want %q COMPOSITE", got, head.ChecksumType, want)
			}
			// And through publish: a release with a large file.
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "big.bin"), body, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>big</h1>"), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := (&publish.Publisher{Bucket: b}).Publish(ctx, publish.Request{Site: site, Version: "v2", Dir: dir})
			if err != nil || res.Uploaded != 2 {
				t.Fatalf("publishing a release with a large file: %+v %v", res, err)
			}
			head, err = s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v2/big.bin"), ChecksumMode: "ENABLED"})
			if err != nil || aws.ToString(head.ChecksumCRC32) != want {
				t.Fatalf("the published large file: %v, CRC32 %q", err, aws.ToString(head.ChecksumCRC32))
			}
		})
	}
}

// checkPutFileSHA256 shows that the SHA-256 publish computed reaches S3 as
// the object's checksum, and that a body that does not match it is
// refused by S3 itself, with nothing stored.
func checkPutFileSHA256(t *testing.T, s3c *s3.Client, site releases.Site) {
	t.Helper()
	ctx := context.Background()
	b := &cloud.S3Bucket{Client: s3c}
	sum := sha256.Sum256([]byte("the real body"))
	hexSum := hex.EncodeToString(sum[:])
	body := "the real body"
	if err := b.PutFile(ctx, site, "ck", releases.File{Path: "ok.html", Body: strings.NewReader(body), Size: int64(len(body)), SHA256: hexSum}); err != nil {
		t.Fatal(err)
	}
	out, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(site.ReleasePath("ck") + "ok.html"), ChecksumMode: "ENABLED"})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.ChecksumSHA256); got != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("stored checksum %q, want the manifest's SHA-256", got)
	}
	bad := "a corrupted body"
	err = b.PutFile(ctx, site, "ck", releases.File{Path: "bad.html", Body: strings.NewReader(bad), Size: int64(len(bad)), SHA256: hexSum})
	if err == nil {
		t.Fatal("a body not matching its SHA-256 was accepted")
	}
	if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(site.ReleasePath("ck") + "bad.html")}); err == nil {
		t.Fatal("the corrupted body was stored")
	}
}

func TestPutFileChecksSHA256(t *testing.T) {
	e := newEnv(t, 0, 0)
	checkPutFileSHA256(t, e.S3, e.Site)
}

// A malformed manifest in the bucket is refused where it is read, and the
// newest-manifests lookup publish uses goes past it.
func TestInvalidManifestIsSkipped(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	for _, v := range []string{"v1", "v3"} {
		if err := e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: v, PublishedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v9")),
		Body: strings.NewReader(`{"version":"v9","files":[{"path":"../v1/index.html"}]}`)}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Bucket.ReadManifest(ctx, e.Site, "v9"); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("reading the bad manifest: %v", err)
	}
	ms, err := e.Bucket.LatestManifests(ctx, e.Site, 2, nil)
	if err != nil || len(ms) != 2 || ms[0].Version != "v3" || ms[1].Version != "v1" {
		t.Fatalf("latest manifests: %v %v", ms, err)
	}
}

// A manifest refused once is not read again (one HEAD per reconcile
// instead of the whole object) until it changes; then it is read, and
// recorded when it is valid.
func TestRefusedManifestIsReadAgainOnlyOnceItChanges(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	e.OpenStore()
	svc := e.Service
	put := func(body string) {
		if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v9")),
			Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	put(`{"version":"v9","files":[{"path":"../v1/index.html","size":1}]}`)
	gets := func() int { return e.AWS.Calls()["s3 GetObject"] }
	if _, err := svc.Sync(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	before := gets()
	for range 3 {
		if _, err := svc.Sync(ctx, "www"); err != nil {
			t.Fatal(err)
		}
	}
	if n := gets() - before; n != 0 {
		t.Fatalf("the refused manifest was read %d more times", n)
	}
	put(`{"version":"v9","files":[{"path":"index.html","size":1}]}`)
	added, err := svc.Sync(ctx, "www")
	if err != nil || len(added) != 1 || added[0].Version != "v9" {
		t.Fatalf("after the manifest was fixed: %+v %v", added, err)
	}
}

// S3 answers 409 ConditionalRequestConflict to a conditional write while
// another is uploading to the same key; that asks for a retry and says
// nothing of the other's fate. A manifest write that meets one retries:
// here the other upload is abandoned, and the retry publishes the release
// (taking the 409 for "already published" would publish nothing).
func TestManifestWriteRetriesAConditionalConflict(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	pr, pw := io.Pipe()
	req, _ := http.NewRequest(http.MethodPut, e.API+"/"+e.Site.Bucket+"/"+e.Site.ManifestKey("v1"), pr)
	req.ContentLength = 1000
	req.Header.Set("If-None-Match", "*")
	first := make(chan error, 1)
	go func() {
		resp, err := http.DefaultClient.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		first <- err
	}()
	pw.Write([]byte(`{"version":"v1"`)) // the upload has begun, and stalls
	// Wait until the stand-in holds the key for it: a probe with If-Match
	// (which cannot create the object) then meets the conflict.
	deadline := time.Now().Add(5 * time.Second)
	for {
		probe, _ := http.NewRequest(http.MethodPut, e.API+"/"+e.Site.Bucket+"/"+e.Site.ManifestKey("v1"), strings.NewReader(""))
		probe.Header.Set("If-Match", `"nothing"`)
		resp, err := http.DefaultClient.Do(probe)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusConflict {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first upload never held the key")
		}
		time.Sleep(5 * time.Millisecond)
	}
	calls := e.AWS.Calls()["s3 PutObject"]
	done := make(chan error, 1)
	go func() {
		done <- e.Bucket.WriteManifest(ctx, e.Site, &releases.Manifest{Version: "v1", PublishedAt: time.Now()})
	}()
	for e.AWS.Calls()["s3 PutObject"] == calls { // the manifest write has met the conflict
		if time.Now().After(deadline) {
			t.Fatal("the manifest write never reached the stand-in")
		}
		time.Sleep(5 * time.Millisecond)
	}
	pw.CloseWithError(errors.New("the other writer gave up"))
	<-first
	if err := <-done; err != nil {
		t.Fatalf("the manifest write after a conflict: %v", err)
	}
	if m, err := e.Bucket.ReadManifest(ctx, e.Site, "v1"); err != nil || m.Version != "v1" {
		t.Fatalf("the release is not published: %v", err)
	}
}

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
