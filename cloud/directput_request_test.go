package cloud_test

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"strings"
	"sync"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
)

// capture answers every request 200 and keeps it, for comparing what
// DirectPut sends with what the SDK sends, without a network.
type capture struct {
	mu   sync.Mutex
	reqs []*http.Request
}

func (c *capture) Do(r *http.Request) (*http.Response, error) {
	if r.Body != nil {
		io.Copy(io.Discard, r.Body)
		r.Body.Close()
	}
	c.mu.Lock()
	c.reqs = append(c.reqs, r)
	c.mu.Unlock()
	return &http.Response{StatusCode: 200, Header: http.Header{"Etag": {`"abc"`}}, Body: io.NopCloser(strings.NewReader("")), Request: r}, nil
}

func (c *capture) last() *http.Request {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.reqs[len(c.reqs)-1]
}

type credentialsFunc func(context.Context) (aws.Credentials, error)

func (f credentialsFunc) Retrieve(ctx context.Context) (aws.Credentials, error) { return f(ctx) }

// captureClient is an S3 client whose requests hc keeps, signed with
// example keys (and token, when not empty).
func captureClient(hc *capture, region string, pathStyle bool, token string) *s3.Client {
	return s3.New(s3.Options{Region: region, UsePathStyle: pathStyle, HTTPClient: hc,
		Credentials: aws.NewCredentialsCache(credentialsFunc(func(context.Context) (aws.Credentials, error) {
			return aws.Credentials{AccessKeyID: "AKIDEXAMPLE", SecretAccessKey: "secret", SessionToken: token}, nil
		}))})
}

// authScope is the region/service/aws4_request part of a request's
// SigV4 credential scope.
func authScope(r *http.Request) string {
	a := r.Header.Get("Authorization")
	_, cred, _ := strings.Cut(a, "Credential=")
	cred, _, _ = strings.Cut(cred, ",")
	_, s, _ := strings.Cut(cred, "/")
	_, s, _ = strings.Cut(s, "/") // past the date
	return s
}

// signedHeaders is a request's SigV4 SignedHeaders list, ;-separated.
func signedHeaders(r *http.Request) string {
	_, s, _ := strings.Cut(r.Header.Get("Authorization"), "SignedHeaders=")
	s, _, _ = strings.Cut(s, ",")
	return s
}

// checkSameRequest checks mine goes where the SDK's went, with its
// headers, signed for the same scope and over the headers that matter.
func checkSameRequest(t *testing.T, mine, sdk *http.Request, region, token string, bodyLen int) {
	t.Helper()
	for _, h := range []string{"Content-Type", "Cache-Control", "Content-Encoding", "Content-Length", "X-Amz-Meta-Deploybot-Release",
		"X-Amz-Checksum-Sha256", "X-Amz-Content-Sha256", "X-Amz-Security-Token"} {
		if mine.Header.Get(h) != sdk.Header.Get(h) {
			t.Errorf("%s: %q; the SDK sends %q", h, mine.Header.Get(h), sdk.Header.Get(h))
		}
	}
	if mine.ContentLength != int64(bodyLen) {
		t.Errorf("content length %d", mine.ContentLength)
	}
	if authScope(mine) != authScope(sdk) || authScope(mine) != region+"/s3/aws4_request" {
		t.Errorf("signed for %q; the SDK for %q", authScope(mine), authScope(sdk))
	}
	for _, h := range []string{"host", "x-amz-checksum-sha256", "x-amz-content-sha256", "x-amz-date", "x-amz-meta-deploybot-release"} {
		if !strings.Contains(";"+signedHeaders(mine)+";", ";"+h+";") {
			t.Errorf("%s is not signed: %s", h, signedHeaders(mine))
		}
	}
	if token != "" && !strings.Contains(signedHeaders(mine), "x-amz-security-token") {
		t.Errorf("the session token is not signed: %s", signedHeaders(mine))
	}
}

// TestDirectPutSendsTheSDKsRequest: for the same input, against AWS's
// own endpoint rules, the direct request goes to the same URL with the
// same headers as the SDK's, signed for the same scope; buckets the rules
// send elsewhere (S3 Express, access points) go through the SDK.
func TestDirectPutSendsTheSDKsRequest(t *testing.T) {
	ctx := context.Background()
	for _, c := range []struct {
		name, region, bucket string
		pathStyle            bool
		token                string
		direct               bool
		url                  string
	}{
		{"virtual-hosted", "us-west-2", "my-site", false, "", true, "https://my-site.s3.us-west-2.amazonaws.com/www/v1/a%20b/%C3%BC%2B.html?x-id=PutObject"},
		{"session token", "eu-central-1", "my-site", false, "FQoGZXIvYXdzEJr//token", true, "https://my-site.s3.eu-central-1.amazonaws.com/www/v1/a%20b/%C3%BC%2B.html?x-id=PutObject"},
		{"dotted bucket, path-style", "us-east-1", "www.example.com", false, "", true, "https://s3.us-east-1.amazonaws.com/www.example.com/www/v1/a%20b/%C3%BC%2B.html?x-id=PutObject"},
		{"forced path-style", "ap-southeast-2", "my-site", true, "", true, "https://s3.ap-southeast-2.amazonaws.com/my-site/www/v1/a%20b/%C3%BC%2B.html?x-id=PutObject"},
		{"S3 Express", "us-west-2", "my-site--usw2-az1--x-s3", false, "", false, ""},
		{"access point ARN", "us-west-2", "arn:aws:s3:us-west-2:123456789012:accesspoint/site", false, "", true, "https://site-123456789012.s3-accesspoint.us-west-2.amazonaws.com/www/v1/a%20b/%C3%BC%2B.html?x-id=PutObject"},
		{"multi-region access point (SigV4A)", "us-west-2", "arn:aws:s3::123456789012:accesspoint/mfzwi23gnjvgw.mrap", false, "", false, ""},
	} {
		t.Run(c.name, func(t *testing.T) {
			hc := &capture{}
			client := captureClient(hc, c.region, c.pathStyle, c.token)
			d := cloud.NewDirectPut(client, nil)
			key := "www/v1/a b/ü+.html"
			body := []byte("<h1>hello</h1>")
			if _, err := d.PutObject(ctx, upload(c.bucket, key, body)); err != nil && c.direct {
				t.Fatal(err)
			}
			if got := d.Stats().Direct.Load() == 1; got != c.direct {
				t.Fatalf("direct: %v, want %v (sdk %d)", got, c.direct, d.Stats().SDK.Load())
			}
			if !c.direct {
				return
			}
			mine := hc.last()
			if _, err := client.PutObject(ctx, upload(c.bucket, key, body), func(o *s3.Options) {
				o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
			}); err != nil {
				t.Fatal(err)
			}
			sdk := hc.last()
			if mine.URL.String() != c.url || sdk.URL.String() != c.url {
				t.Fatalf("url %s; the SDK's %s; want %s", mine.URL, sdk.URL, c.url)
			}
			checkSameRequest(t, mine, sdk, c.region, c.token, len(body))
		})
	}
}

// TestDirectPutKeepsTheSDKForOtherInputs: inputs that are not a plain
// upload (a condition other than create-only, no checksum, too large, a
// body that cannot seek, options) go through the SDK, their condition
// kept; a create-only upload goes directly, with its condition.
func TestDirectPutKeepsTheSDKForOtherInputs(t *testing.T) {
	ctx := context.Background()
	hc := &capture{}
	d := cloud.NewDirectPut(captureClient(hc, "us-east-1", false, ""), nil)
	conditional := upload("b", "k", []byte("x"))
	conditional.IfMatch = aws.String(`"etag"`)
	unchecked := upload("b", "k", []byte("x"))
	unchecked.ChecksumSHA256 = nil
	large := upload("b", "k", make([]byte, cloud.DirectMaxSize+1))
	unseekable := upload("b", "k", []byte("x"))
	unseekable.Body = io.MultiReader(bytes.NewReader([]byte("x")))
	for name, in := range map[string]*s3.PutObjectInput{"conditional": conditional, "no checksum": unchecked, "large": large, "unseekable": unseekable} {
		before := d.Stats().SDK.Load()
		if _, err := d.PutObject(ctx, in); err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if d.Stats().SDK.Load() != before+1 || d.Stats().Direct.Load() != 0 {
			t.Fatalf("%s went directly", name)
		}
	}
	if _, err := d.PutObject(ctx, upload("b", "k", []byte("x")), func(o *s3.Options) {}); err != nil || d.Stats().Direct.Load() != 0 {
		t.Fatalf("with optFns: %v, direct %d", err, d.Stats().Direct.Load())
	}
	if _, err := d.PutObject(ctx, conditional); err != nil || hc.last().Header.Get("If-Match") != `"etag"` {
		t.Fatalf("the condition was dropped: %v %q", err, hc.last().Header.Get("If-Match"))
	}
	// A release file's create-only upload (If-None-Match: *) is a plain
	// upload: it goes directly, with its condition.
	createOnly := upload("b", "k", []byte("x"))
	createOnly.IfNoneMatch = aws.String("*")
	if _, err := d.PutObject(ctx, createOnly); err != nil || d.Stats().Direct.Load() != 1 || hc.last().Header.Get("If-None-Match") != "*" {
		t.Fatalf("create-only upload: %v, direct %d, If-None-Match %q", err, d.Stats().Direct.Load(), hc.last().Header.Get("If-None-Match"))
	}
}
