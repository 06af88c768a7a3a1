package cloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"net/http/httputil"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
)

// upload is a plain release upload of body, as S3Bucket.PutFile makes it.
func upload(bucket, key string, body []byte) *s3.PutObjectInput {
	sum := sha256.Sum256(body)
	return &s3.PutObjectInput{
		Bucket: aws.String(bucket), Key: aws.String(key), Body: bytes.NewReader(body), ContentLength: aws.Int64(int64(len(body))),
		ChecksumSHA256: aws.String(base64.StdEncoding.EncodeToString(sum[:])),
		ContentType:    aws.String("text/html; charset=utf-8"), CacheControl: aws.String("public, max-age=31536000, immutable"),
		ContentEncoding: aws.String("gzip"), Metadata: map[string]string{"deploybot-release": "v1"},
	}
}

func versityClient(t *testing.T, endpoint string) *s3.Client {
	t.Helper()
	s3c, _, err := cloud.NewClients(context.Background(), cloud.Settings{Region: "us-east-1", Endpoint: endpoint,
		Credentials: cloud.StaticCredentials(testaws.AccessKey, testaws.SecretKey), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("site")}); err != nil {
		t.Fatal(err)
	}
	return s3c
}

// TestDirectPutAgainstVersityGW: a real S3 server checks each direct
// request's signature and checksum; what it stores is what the SDK's
// request would have stored, for keys that need escaping too.
func TestDirectPutAgainstVersityGW(t *testing.T) {
	ctx := context.Background()
	s3c := versityClient(t, testaws.StartVersityGW(t))
	var mu sync.Mutex
	var calls []cloud.Call
	d := cloud.NewDirectPut(s3c, func(c cloud.Call) { mu.Lock(); calls = append(calls, c); mu.Unlock() })

	keys := []string{
		"www/v1/index.html",
		"www/v1/name with spaces.html",
		"www/v1/ünïcødé/日本.html",
		"www/v1/plus+sign and %20 and %2F.html",
		"www/v1/tilde~star*paren(s)!quote'dollar$at@colon:semi;comma,eq=amp&.html",
		"www/v1/question?hash#bracket[]brace{}caret^pipe|back`tick.html",
		"www/v1/a//double/./dot/../segments.html",
		"www/v1/empty.txt",
	}
	for i, key := range keys {
		body := []byte(strings.Repeat("<p>"+key+"</p>", 1+i*50))
		if strings.HasSuffix(key, "empty.txt") {
			body = nil
		}
		if _, err := d.PutObject(ctx, upload("site", key, body)); err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site"), Key: aws.String(key)})
		if err != nil {
			t.Fatalf("%q: %v", key, err)
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if !bytes.Equal(got, body) || aws.ToString(out.ContentType) != "text/html; charset=utf-8" ||
			aws.ToString(out.CacheControl) != "public, max-age=31536000, immutable" || aws.ToString(out.ContentEncoding) != "gzip" ||
			out.Metadata["deploybot-release"] != "v1" {
			t.Fatalf("%q: stored %d bytes (want %d), type %q, cache %q, encoding %q, metadata %v", key, len(got), len(body),
				aws.ToString(out.ContentType), aws.ToString(out.CacheControl), aws.ToString(out.ContentEncoding), out.Metadata)
		}
	}
	st := d.Stats()
	if st.Direct.Load() != int64(len(keys)) || st.Fallbacks.Load() != 0 || st.SDK.Load() != 0 {
		t.Fatalf("direct %d, fallbacks %d, sdk %d: every upload should have gone directly", st.Direct.Load(), st.Fallbacks.Load(), st.SDK.Load())
	}
	if len(calls) != len(keys) || calls[1].Service != "s3" || calls[1].Operation != "PutObject" ||
		calls[1].Params["Bucket"] != "site" || calls[1].Params["Key"] != keys[1] {
		t.Fatalf("observed calls %+v", calls)
	}
}

// TestDirectPutRefusedBody: a body that does not match its checksum is
// refused by S3; the error is the SDK's, decoded as for any call, and
// the direct way pauses.
func TestDirectPutRefusedBody(t *testing.T) {
	ctx := context.Background()
	s3c := versityClient(t, testaws.StartVersityGW(t))
	d := cloud.NewDirectPut(s3c, nil)
	now := time.Date(2030, 1, 1, 0, 0, 0, 0, time.UTC)
	var clock atomic.Int64
	clock.Store(now.UnixNano())
	// Signing needs the real time; the pause is judged by the same clock,
	// moved on below.
	offset := func() time.Duration { return time.Duration(clock.Load() - now.UnixNano()) }
	d.Now = func() time.Time { return time.Now().Add(offset()) }

	in := upload("site", "www/v1/bad.html", []byte("the body"))
	in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(make([]byte, 32)))
	_, err := d.PutObject(ctx, in)
	var api smithy.APIError
	if !errors.As(err, &api) || api.ErrorCode() == "" {
		t.Fatalf("a body not matching its checksum: %v (%T), want the SDK's decoded S3 error", err, err)
	}
	if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site"), Key: aws.String("www/v1/bad.html")}); err == nil {
		t.Fatal("the refused body was stored")
	}
	st := d.Stats()
	if st.Fallbacks.Load() != 1 || st.Direct.Load() != 0 {
		t.Fatalf("fallbacks %d, direct %d", st.Fallbacks.Load(), st.Direct.Load())
	}
	// Paused: the next upload goes through the SDK.
	if _, err := d.PutObject(ctx, upload("site", "www/v1/good.html", []byte("good"))); err != nil {
		t.Fatal(err)
	}
	if st.SDK.Load() != 1 || st.Direct.Load() != 0 {
		t.Fatalf("during the pause: sdk %d, direct %d", st.SDK.Load(), st.Direct.Load())
	}
	// A minute on, direct again.
	clock.Add(int64(61 * time.Second))
	if _, err := d.PutObject(ctx, upload("site", "www/v1/later.html", []byte("later"))); err != nil {
		t.Fatal(err)
	}
	if st.Direct.Load() != 1 {
		t.Fatalf("after the pause: direct %d", st.Direct.Load())
	}
}

// TestDirectPutCreateOnly: a create-only upload (If-None-Match: *) of a
// key that exists is answered 412 by S3: the error is the SDK's, the
// object stays as it was, and the direct way does not pause (S3 answered
// the condition; it did not fail).
func TestDirectPutCreateOnly(t *testing.T) {
	ctx := context.Background()
	s3c := versityClient(t, testaws.StartVersityGW(t))
	var mu sync.Mutex
	var calls []cloud.Call
	d := cloud.NewDirectPut(s3c, func(c cloud.Call) { mu.Lock(); calls = append(calls, c); mu.Unlock() })
	createOnly := func(key, body string) error {
		in := upload("site", key, []byte(body))
		in.IfNoneMatch = aws.String("*")
		_, err := d.PutObject(ctx, in)
		return err
	}
	if err := createOnly("www/v1/a.html", "first"); err != nil {
		t.Fatal(err)
	}
	var api smithy.APIError
	if err := createOnly("www/v1/a.html", "second"); !errors.As(err, &api) || api.ErrorCode() != "PreconditionFailed" {
		t.Fatalf("over an existing key: %v, want the SDK's PreconditionFailed", err)
	}
	out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site"), Key: aws.String("www/v1/a.html")})
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(got) != "first" {
		t.Fatalf("the object is %q after a refused create", got)
	}
	if err := createOnly("www/v1/b.html", "b"); err != nil {
		t.Fatal(err)
	}
	st := d.Stats()
	if st.Direct.Load() != 2 || st.Fallbacks.Load() != 1 || st.SDK.Load() != 0 {
		t.Fatalf("direct %d, fallbacks %d, sdk %d: want the upload after the 412 direct", st.Direct.Load(), st.Fallbacks.Load(), st.SDK.Load())
	}
	mu.Lock()
	defer mu.Unlock()
	for _, c := range calls {
		if c.Params["IfNoneMatch"] != "*" {
			t.Fatalf("observed call %+v lacks its condition", c)
		}
	}
}

// faultyFront is a proxy in front of a real S3 server that can break
// requests on the way: fault decides, per request, whether it answered
// itself; seen counts the PUTs that reached the proxy.
type faultyFront struct {
	s3c   *s3.Client
	fault atomic.Value // func(w, r) bool: true when it answered
	seen  atomic.Int64
}

func newFaultyFront(t *testing.T) *faultyFront {
	t.Helper()
	target, _ := url.Parse(testaws.StartVersityGW(t))
	proxy := httputil.NewSingleHostReverseProxy(target)
	f := &faultyFront{}
	f.pass()
	front := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodPut {
			f.seen.Add(1)
		}
		if f.fault.Load().(func(http.ResponseWriter, *http.Request) bool)(w, r) {
			return
		}
		proxy.ServeHTTP(w, r)
	}))
	t.Cleanup(front.Close)
	f.s3c = versityClient(t, front.URL)
	return f
}

// pass lets every request through.
func (f *faultyFront) pass() {
	f.fault.Store(func(http.ResponseWriter, *http.Request) bool { return false })
}

// once answers the first PUT with fault.
func (f *faultyFront) once(fault func(http.ResponseWriter, *http.Request)) {
	var done atomic.Bool
	f.fault.Store(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || done.Swap(true) {
			return false
		}
		fault(w, r)
		return true
	})
}

// direct answers with fault every PUT but the SDK's (which names its
// invocation): the transport's own resend on a new connection fails too.
func (f *faultyFront) direct(fault func(http.ResponseWriter, *http.Request)) {
	f.fault.Store(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut || r.Header.Get("Amz-Sdk-Invocation-Id") != "" {
			return false
		}
		fault(w, r)
		return true
	})
}

// hangUp closes the connection without an answer.
func hangUp(w http.ResponseWriter, r *http.Request) {
	if conn, _, err := http.NewResponseController(w).Hijack(); err == nil {
		conn.Close()
	}
}

func slowDown(w http.ResponseWriter, r *http.Request) {
	io.Copy(io.Discard, r.Body)
	w.Header().Set("Content-Type", "application/xml")
	w.WriteHeader(http.StatusServiceUnavailable)
	io.WriteString(w, `<?xml version="1.0" encoding="UTF-8"?><Error><Code>SlowDown</Code><Message>Please reduce your request rate.</Message></Error>`)
}

// TestDirectPutFaults: a request that fails on the way (an error answer,
// a connection closed without one) is sent again through the SDK, which
// retries with its own backoff; the object arrives once, whole.
func TestDirectPutFaults(t *testing.T) {
	f := newFaultyFront(t)
	cases := []struct {
		name  string
		fault func()
	}{
		{"503 SlowDown", func() { f.once(slowDown) }},
		{"connection closed", func() { f.direct(hangUp) }},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			ctx := context.Background()
			d := cloud.NewDirectPut(f.s3c, nil)
			c.fault()
			f.seen.Store(0)
			key := "www/v1/" + strings.ReplaceAll(c.name, " ", "-") + ".html"
			body := []byte(strings.Repeat("x", 10_000))
			if _, err := d.PutObject(ctx, upload("site", key, body)); err != nil {
				t.Fatal(err)
			}
			out, err := f.s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site"), Key: aws.String(key)})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, body) {
				t.Fatalf("stored %d bytes, want %d", len(got), len(body))
			}
			if d.Stats().Fallbacks.Load() != 1 || d.Stats().Direct.Load() != 0 || f.seen.Load() < 2 {
				t.Fatalf("fallbacks %d, direct %d, PUTs seen %d: want the direct one and the SDK's", d.Stats().Fallbacks.Load(), d.Stats().Direct.Load(), f.seen.Load())
			}
		})
	}
	t.Run("file body, connection closed", func(t *testing.T) { testFileBodySurvivesTheDirectTry(t, f) })
	t.Run("idle connection closed", func(t *testing.T) { testIdleConnectionClosed(t, f) })
	t.Run("cancelled", func(t *testing.T) { testCancelledIsNotSentAgain(t, f) })
}

// testFileBodySurvivesTheDirectTry: a file body survives the direct
// attempt (the transport closes a request's body; the caller's file must
// stay open for the SDK).
func testFileBodySurvivesTheDirectTry(t *testing.T, f *faultyFront) {
	d := cloud.NewDirectPut(f.s3c, nil)
	f.direct(hangUp)
	body := bytes.Repeat([]byte("file "), 5000)
	p := filepath.Join(t.TempDir(), "page.html")
	if err := os.WriteFile(p, body, 0o644); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(p)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	in := upload("site", "www/v1/from-file.html", body)
	in.Body = fh
	if _, err := d.PutObject(context.Background(), in); err != nil {
		t.Fatal(err)
	}
	if d.Stats().Fallbacks.Load() != 1 {
		t.Fatalf("fallbacks %d", d.Stats().Fallbacks.Load())
	}
	if _, err := fh.Seek(0, io.SeekStart); err != nil {
		t.Fatalf("the caller's file was closed: %v", err)
	}
}

// testIdleConnectionClosed: a kept-alive connection the server has
// closed is the transport's to retry (the request is marked idempotent),
// not a failure: no pause.
func testIdleConnectionClosed(t *testing.T, f *faultyFront) {
	d := cloud.NewDirectPut(f.s3c, nil)
	var mu sync.Mutex
	served := map[string]int{}
	var closed atomic.Bool
	f.fault.Store(func(w http.ResponseWriter, r *http.Request) bool {
		if r.Method != http.MethodPut {
			return false
		}
		mu.Lock()
		served[r.RemoteAddr]++
		again := served[r.RemoteAddr] > 1
		mu.Unlock()
		if !again || closed.Swap(true) {
			return false
		}
		hangUp(w, r)
		return true
	})
	for i := range 3 {
		if _, err := d.PutObject(context.Background(), upload("site", fmt.Sprintf("www/v1/keepalive-%d.html", i), []byte("k"))); err != nil {
			t.Fatal(err)
		}
	}
	if !closed.Load() {
		t.Fatal("no request came on a reused connection")
	}
	if d.Stats().Direct.Load() != 3 || d.Stats().Fallbacks.Load() != 0 {
		t.Fatalf("direct %d, fallbacks %d: want the transport's own resend", d.Stats().Direct.Load(), d.Stats().Fallbacks.Load())
	}
}

// testCancelledIsNotSentAgain: a cancelled upload is not sent again.
func testCancelledIsNotSentAgain(t *testing.T, f *faultyFront) {
	f.pass()
	d := cloud.NewDirectPut(f.s3c, nil)
	cctx, cancel := context.WithCancel(context.Background())
	cancel()
	f.seen.Store(0)
	if _, err := d.PutObject(cctx, upload("site", "www/v1/cancelled.html", []byte("x"))); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled: %v", err)
	}
	if f.seen.Load() != 0 || d.Stats().Fallbacks.Load() != 0 {
		t.Fatalf("cancelled: %d PUTs seen, %d fallbacks", f.seen.Load(), d.Stats().Fallbacks.Load())
	}
}
