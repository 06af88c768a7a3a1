package cloud

import (
	"context"
	"encoding/xml"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"reflect"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyauth "github.com/aws/smithy-go/auth"
	"github.com/aws/smithy-go/encoding/httpbinding"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// S3Putter is the one call a release upload makes per file, with the
// SDK's signature; *s3.Client and *DirectPut have it.
type S3Putter interface {
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
}

var (
	_ S3Putter = (*s3.Client)(nil)
	_ S3Putter = (*DirectPut)(nil)
)

// DirectPut sends the uploads of a publish, small objects that carry
// their own SHA-256 checksum, as one signed HTTP request each, past the
// SDK's per-call middleware; anything else, and any request that does
// not succeed at once, goes through the SDK client it wraps.
//
// Why: a site is thousands of small files, and per file the SDK's
// middleware stack (endpoint rules, auth resolution, retry bookkeeping,
// checksum and logging steps, each allocating) cost as much CPU as the
// HTTP exchange itself: measured on 2,000 files of a typical site against
// versitygw, 0.72 CPU-seconds through the SDK, 0.38 this way. On a
// two-core CI runner that is wall time.
//
// What it keeps from the SDK: the client's credentials (and their
// refresh), its HTTP client and connection pool, its endpoint resolution
// (the SDK's own rules, resolved once per bucket) and its SigV4 signer.
// What it leaves to the SDK: retries, clock-skew correction and error
// decoding. A request that fails in any way (an error answer, a broken
// connection) is sent again through the SDK, which retries and decodes
// the error as for any other call, and the direct way then pauses for a
// minute, so a throttled or failing endpoint sees only the SDK's backoff.
// The cost of a failure is one extra request (and, with a clock S3 finds
// skewed, which only the SDK corrects, one a minute). Before that, a
// request that met a kept-alive connection the server had just closed
// is resent by the HTTP transport itself, as for any idempotent request.
//
// The payload is signed as UNSIGNED-PAYLOAD: the x-amz-checksum-sha256
// the input must carry is what makes S3 refuse a body that is not the
// one meant, end to end (the same request the SDK sends for
// S3Bucket.PutFile). If-None-Match, the create-only condition every
// release file carries, goes directly too, and its answers (412 for a key
// that exists, 409 for a concurrent conditional write) are sent again
// through the SDK to decode them without pausing the direct way. Inputs
// without a checksum, with fields other than those of a plain upload
// (If-Match, encryption, ACLs, ...), over
// DirectMaxSize, with a body that cannot be rewound, or with optFns go
// through the SDK.
type DirectPut struct {
	client *s3.Client
	opts   s3.Options
	// regions, when set, is where each bucket is (NewS3Bucket), and
	// fallback the client that sends what does not go directly.
	regions  *Regions
	fallback S3Putter
	signer   *v4.Signer
	observe  func(Call)
	// Now is the clock for signing and for the pause after a failure
	// (time.Now unless set, for tests).
	Now func() time.Time

	endpoints sync.Map // bucket and region -> *directEndpoint (nil endpoint: not direct)
	pausedTil atomic.Int64
	stats     DirectStats
}

// DirectStats counts what DirectPut did, for tests and benchmarks.
type DirectStats struct {
	// Direct uploads succeeded; SDK uploads went through the SDK from the
	// start; Fallbacks failed directly and were sent again through it.
	Direct, SDK, Fallbacks atomic.Int64
}

// DirectMaxSize is the largest body DirectPut sends itself. Above it a
// request's own overhead is lost in the transfer, and the SDK sends
// `Expect: 100-continue`, sparing the upload of a body S3 will refuse.
const DirectMaxSize = 4 << 20

// directPause is how long the direct way stays off after a failure.
const directPause = time.Minute

// NewDirectPut wraps c; observe, when set, is told of each direct call
// as the SDK's calls are (Settings.Observe).
func NewDirectPut(c *s3.Client, observe func(Call)) *DirectPut {
	return &DirectPut{
		client: c, opts: c.Options(), observe: observe, Now: time.Now,
		// As the SDK's S3 client signs: S3 takes the path as sent, not
		// escaped a second time.
		signer: v4.NewSigner(func(o *v4.SignerOptions) { o.DisableURIPathEscaping = true }),
	}
}

// Stats are the counts so far.
func (d *DirectPut) Stats() *DirectStats { return &d.stats }

// directEndpoint is where a bucket's objects are and how requests to
// them are signed, from the SDK's endpoint rules.
type directEndpoint struct {
	base          url.URL // scheme, host, and the bucket's path when path-style
	signingName   string
	signingRegion string
}

// plainUpload lists the PutObjectInput fields a direct request carries;
// any other field set sends the input through the SDK. Checked by
// reflection so that a field a newer SDK adds is never silently dropped.
var plainUpload = map[string]bool{
	"Bucket": true, "Key": true, "Body": true, "ContentLength": true, "ChecksumSHA256": true,
	"ContentType": true, "CacheControl": true, "ContentEncoding": true, "Metadata": true,
	// A release's files are created only (If-None-Match: *, see
	// createonly.go).
	"IfNoneMatch": true,
}

var putObjectFields = func() []int {
	t := reflect.TypeOf(s3.PutObjectInput{})
	var others []int
	for i := range t.NumField() {
		if f := t.Field(i); f.IsExported() && !plainUpload[f.Name] {
			others = append(others, i)
		}
	}
	return others
}()

// PutObject uploads in directly when it can (see DirectPut), and through
// the SDK otherwise; either way an input with ChecksumSHA256 and no
// optFns is signed as UNSIGNED-PAYLOAD.
func (d *DirectPut) PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	body, ok := d.eligible(in, optFns)
	var ep *directEndpoint
	if ok {
		ep, ok = d.endpoint(ctx, aws.ToString(in.Bucket))
	}
	if !ok {
		d.stats.SDK.Add(1)
		return d.viaSDK(ctx, in, optFns)
	}
	// Where the body starts, to send it again from there: the SDK keeps
	// a body's position the same way for its retries.
	start, err := body.Seek(0, io.SeekCurrent)
	if err != nil {
		d.stats.SDK.Add(1)
		return d.viaSDK(ctx, in, optFns)
	}
	out, err := d.send(ctx, ep, in, body, start)
	if err == nil {
		d.stats.Direct.Add(1)
		return out, nil
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	// A 412 (the key exists) or 409 (a concurrent conditional write) is
	// S3 answering the condition, not failing: the SDK sends it again to
	// decode the answer, and the direct way stays on. So is a 301 or 400
	// for a bucket in another region than the one signed for: its region,
	// when the answer names it, is learnt here (else the SDK's call
	// learns it), and the next upload goes directly there. Any other
	// error pauses the direct way.
	answered := false
	if ds := (*directStatus)(nil); errors.As(err, &ds) {
		region, elsewhere := redirected(ds.status, ds.code, ds.region)
		if d.regions != nil && region != "" && region != ep.signingRegion {
			d.regions.Learn(aws.ToString(in.Bucket), region)
		}
		answered = ds.status == http.StatusPreconditionFailed || ds.status == http.StatusConflict || d.regions != nil && elsewhere
	}
	if !answered {
		d.pausedTil.Store(d.Now().Add(directPause).UnixNano())
	}
	if _, serr := body.Seek(start, io.SeekStart); serr != nil {
		return nil, fmt.Errorf("%w (and rewinding the body to retry failed: %v)", err, serr)
	}
	d.stats.Fallbacks.Add(1)
	return d.viaSDK(ctx, in, optFns)
}

func (d *DirectPut) viaSDK(ctx context.Context, in *s3.PutObjectInput, optFns []func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if len(optFns) == 0 && in.ChecksumSHA256 != nil {
		optFns = []func(*s3.Options){unsignedPayload}
	}
	if d.fallback != nil {
		return d.fallback.PutObject(ctx, in, optFns...)
	}
	return d.client.PutObject(ctx, in, optFns...)
}

// eligible is in's body when in is a plain upload DirectPut sends itself.
func (d *DirectPut) eligible(in *s3.PutObjectInput, optFns []func(*s3.Options)) (io.ReadSeeker, bool) {
	if len(optFns) > 0 || in.Bucket == nil || in.Key == nil || in.ChecksumSHA256 == nil ||
		in.ContentLength == nil || *in.ContentLength < 0 || *in.ContentLength > DirectMaxSize {
		return nil, false
	}
	if d.Now().UnixNano() < d.pausedTil.Load() {
		return nil, false
	}
	body, ok := in.Body.(io.ReadSeeker)
	if !ok && in.Body != nil {
		return nil, false
	}
	if in.Body == nil {
		if *in.ContentLength != 0 {
			return nil, false
		}
		body = strings.NewReader("")
	}
	v := reflect.ValueOf(in).Elem()
	for _, i := range putObjectFields {
		if !v.Field(i).IsZero() {
			return nil, false
		}
	}
	return body, true
}

// endpoint resolves bucket's endpoint with the SDK's rules and the
// client's options, as the SDK binds them for PutObject, once per
// bucket and region (a bucket's region is learnt from the first call the
// SDK makes to it: the redirect of a direct request to the wrong region
// is sent again through the SDK, which learns it). A bucket the rules
// send elsewhere than a plain SigV4 endpoint (S3 Express, access points,
// multi-region access points) is not direct.
func (d *DirectPut) endpoint(ctx context.Context, bucket string) (*directEndpoint, bool) {
	region := d.regions.For(bucket)
	key := bucket + "\x00" + region
	if v, ok := d.endpoints.Load(key); ok {
		ep := v.(*directEndpoint)
		return ep, ep != nil
	}
	ep := d.resolve(ctx, bucket, region)
	d.endpoints.Store(key, ep)
	return ep, ep != nil
}

func (d *DirectPut) resolve(ctx context.Context, bucket, region string) *directEndpoint {
	o := d.opts
	if region != "" {
		o.Region = region
	}
	if o.EndpointResolverV2 == nil || o.Credentials == nil || o.HTTPClient == nil || strings.Contains(o.Region, "fips") {
		return nil
	}
	if _, anonymous := o.Credentials.(aws.AnonymousCredentials); anonymous {
		return nil
	}
	params := s3.EndpointParameters{
		Bucket: aws.String(bucket), Endpoint: o.BaseEndpoint,
		UseFIPS:                        aws.Bool(o.EndpointOptions.UseFIPSEndpoint == aws.FIPSEndpointStateEnabled),
		UseDualStack:                   aws.Bool(o.EndpointOptions.UseDualStackEndpoint == aws.DualStackEndpointStateEnabled),
		ForcePathStyle:                 aws.Bool(o.UsePathStyle),
		Accelerate:                     aws.Bool(o.UseAccelerate),
		DisableMultiRegionAccessPoints: aws.Bool(o.DisableMultiRegionAccessPoints),
		UseArnRegion:                   aws.Bool(o.UseARNRegion),
		DisableS3ExpressSessionAuth:    o.DisableS3ExpressSessionAuth,
	}
	if o.Region != "" {
		params.Region = aws.String(o.Region)
	}
	endpt, err := o.EndpointResolverV2.ResolveEndpoint(ctx, params)
	if err != nil || len(endpt.Headers) > 0 || (endpt.URI.Scheme != "https" && endpt.URI.Scheme != "http") {
		return nil
	}
	ep := &directEndpoint{base: endpt.URI, signingName: "s3", signingRegion: o.Region}
	if auth, ok := smithyauth.GetAuthOptions(&endpt.Properties); ok && len(auth) > 0 {
		// The first scheme is the one the SDK would pick; direct requests
		// speak only plain SigV4 (named "sigv4" in the endpoint rules;
		// S3 Express is "sigv4-s3express", multi-region access points
		// "sigv4a").
		if id := auth[0].SchemeID; id != "sigv4" && id != smithyauth.SchemeIDSigV4 {
			return nil
		}
		if name, ok := smithyhttp.GetSigV4SigningName(&auth[0].SignerProperties); ok {
			ep.signingName = name
		}
		if region, ok := smithyhttp.GetSigV4SigningRegion(&auth[0].SignerProperties); ok {
			ep.signingRegion = region
		}
	}
	if ep.signingRegion == "" {
		return nil
	}
	// x-id names the operation, as the SDK's serializer adds it; S3
	// ignores it, and request logs show what the call was.
	ep.base.RawQuery, ep.base.Fragment = "x-id=PutObject", ""
	if ep.base.RawPath == "" {
		ep.base.RawPath = ep.base.Path
	}
	return ep
}

// send makes the one request: the headers the SDK's serializer would
// write for these fields, signed.
func (d *DirectPut) send(ctx context.Context, ep *directEndpoint, in *s3.PutObjectInput, body io.ReadSeeker, start int64) (*s3.PutObjectOutput, error) {
	key := aws.ToString(in.Key)
	u := ep.base
	u.Path = smithyhttp.JoinPath(u.Path, key)
	u.RawPath = smithyhttp.JoinPath(u.RawPath, httpbinding.EscapePath(key, false))
	req, err := http.NewRequestWithContext(ctx, http.MethodPut, u.String(), nil)
	if err != nil {
		return nil, err
	}
	// NewRequest reparses the URL; keep the path exactly as escaped.
	req.URL.Path, req.URL.RawPath = u.Path, u.RawPath
	size := *in.ContentLength
	req.ContentLength = size
	// The transport closes a request's body: never the caller's (a file
	// publish still needs if the SDK is to send it again).
	switch ra, ok := body.(io.ReaderAt); {
	case size == 0:
		req.Body = http.NoBody
	case ok:
		// A body read at offsets can be handed out again, whole and
		// independent of a send still in flight: the transport then
		// resends by itself a request whose kept-alive connection turned
		// out closed (see Idempotency-Key below), and the caller's
		// position never moves.
		req.GetBody = func() (io.ReadCloser, error) { return io.NopCloser(io.NewSectionReader(ra, start, size)), nil }
		req.Body, _ = req.GetBody()
	default:
		req.Body = io.NopCloser(body)
	}
	h := req.Header
	h["User-Agent"] = []string{"deploybot aws-sdk-go-v2/" + aws.SDKVersion}
	h["X-Amz-Checksum-Sha256"] = []string{*in.ChecksumSHA256}
	h["X-Amz-Content-Sha256"] = []string{unsignedPayloadHash}
	if in.ContentType != nil {
		h["Content-Type"] = []string{*in.ContentType}
	}
	if in.CacheControl != nil {
		h["Cache-Control"] = []string{*in.CacheControl}
	}
	if in.ContentEncoding != nil {
		h["Content-Encoding"] = []string{*in.ContentEncoding}
	}
	if in.IfNoneMatch != nil {
		h["If-None-Match"] = []string{*in.IfNoneMatch}
	}
	for k, v := range in.Metadata {
		h.Set("X-Amz-Meta-"+k, v)
	}
	creds, err := d.opts.Credentials.Retrieve(ctx)
	if err != nil {
		return nil, err
	}
	if err := d.signer.SignHTTP(ctx, creds, req, unsignedPayloadHash, ep.signingName, ep.signingRegion, d.Now().UTC()); err != nil {
		return nil, err
	}
	if req.GetBody != nil || req.Body == http.NoBody {
		// Putting the same bytes under the same key twice is harmless, so
		// the transport may resend the request on a connection the server
		// had closed; net/http's documented marker for that, which a nil
		// value keeps off the wire. Set after signing, so it is not a
		// signed header. With If-None-Match, a resend of a request that
		// had landed gets 412, and S3Bucket keeps the object it finds,
		// the same one.
		req.Header["Idempotency-Key"] = nil
	}
	if d.observe != nil {
		params := map[string]string{"Bucket": *in.Bucket, "Key": key}
		if in.IfNoneMatch != nil {
			params["IfNoneMatch"] = *in.IfNoneMatch
		}
		d.observe(Call{Service: "s3", Operation: "PutObject", Params: params})
	}
	resp, err := d.opts.HTTPClient.Do(req)
	if err != nil {
		return nil, err
	}
	defer resp.Body.Close()
	// Read (PutObject answers with no body; an error, with a small XML
	// document) so the connection is reused.
	errBody, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode != http.StatusOK {
		var doc struct{ Code string }
		_ = xml.Unmarshal(errBody, &doc)
		return nil, &directStatus{status: resp.StatusCode, code: doc.Code, region: resp.Header.Get("X-Amz-Bucket-Region")}
	}
	out := &s3.PutObjectOutput{ETag: header(resp, "ETag"), ChecksumSHA256: header(resp, "X-Amz-Checksum-Sha256"), VersionId: header(resp, "X-Amz-Version-Id")}
	return out, nil
}

// directStatus is a direct request's error answer; it never leaves
// DirectPut (the SDK sends the request again and decodes its own).
// region is x-amz-bucket-region, which a redirect to the bucket's own
// region carries.
type directStatus struct {
	status int
	code   string
	region string
}

func (e *directStatus) Error() string { return fmt.Sprintf("direct PutObject: HTTP %d", e.status) }

func header(resp *http.Response, name string) *string {
	if v := resp.Header.Get(name); v != "" {
		return &v
	}
	return nil
}

// unsignedPayloadHash is the x-amz-content-sha256 of a request whose
// body is not part of its signature.
const unsignedPayloadHash = "UNSIGNED-PAYLOAD"
