package cloud

import (
	"context"
	"errors"
	"io"
	"net/http"
	"sync"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"
)

// Regions remembers the region of each bucket a process has met, so that
// sites whose buckets live in different regions work from one
// configuration: `aws.region` is only where a bucket is looked for first.
//
// Why learnt and not asked: a HeadBucket per bucket at start would cost
// every command a call, and the CI role is granted s3:ListBucket only
// under a prefix condition, which HeadBucket does not meet. A bucket in
// another region answers its first call with a redirect that names the
// region (below); that call is sent again once, signed for it.
type Regions struct {
	m sync.Map // bucket -> region
}

// For is bucket's region, or "" when not learnt yet (the client's own).
func (r *Regions) For(bucket string) string {
	if r == nil {
		return ""
	}
	v, _ := r.m.Load(bucket)
	s, _ := v.(string)
	return s
}

// Learn records bucket's region.
func (r *Regions) Learn(bucket, region string) {
	if r != nil && bucket != "" && region != "" {
		r.m.Store(bucket, region)
	}
}

// movedTo is the region a refused call says its bucket is in, and
// whether the refusal is S3 saying the bucket is elsewhere at all. S3
// answers a request sent to (signed for) another region's endpoint with
// 301 PermanentRedirect, with x-amz-bucket-region (HeadBucket documents
// the header on every answer); a bucket in a region launched after March
// 2019 answers 400 IllegalLocationConstraintException, and a signature
// for the wrong region 400 AuthorizationHeaderMalformed, for which AWS
// documents no such header
// (https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html,
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/UsingRouting.html):
// then the region is "" and elsewhere true, and whereIs asks HeadBucket.
func movedTo(err error) (region string, elsewhere bool) {
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil {
		return "", false
	}
	return redirected(re.HTTPStatusCode(), apiCode(err), re.Response.Header.Get("X-Amz-Bucket-Region"))
}

// redirected reads an S3 answer (its status, error code and
// x-amz-bucket-region) as movedTo does, for the SDK's errors and
// DirectPut's own answers alike.
func redirected(status int, code, regionHeader string) (region string, elsewhere bool) {
	switch status {
	case http.StatusMovedPermanently:
		return regionHeader, true
	case http.StatusBadRequest:
		if regionHeader != "" {
			return regionHeader, true
		}
		switch code {
		case "IllegalLocationConstraintException", "AuthorizationHeaderMalformed", "PermanentRedirect":
			return "", true
		}
	}
	return "", false
}

// whereIs is the region of a bucket S3 said is elsewhere without naming
// it: HeadBucket's answer carries x-amz-bucket-region whoever asks, even
// a caller it refuses (403), and from any region's endpoint (301).
func whereIs(ctx context.Context, c BucketHeader, bucket string) string {
	st, err := HeadBucket(ctx, c, bucket)
	if err != nil {
		return ""
	}
	return st.Region
}

// RegionalS3 is an S3 client that signs each call for its bucket's
// region (Regions), learning it from the first redirect. It has every
// method the bucket adapter's narrow interfaces name, with the SDK's
// signatures.
type RegionalS3 struct {
	Client  *s3.Client
	Regions *Regions
}

// NewRegionalS3 wraps c, learning bucket regions as calls meet them.
func NewRegionalS3(c *s3.Client) *RegionalS3 { return &RegionalS3{Client: c, Regions: &Regions{}} }

var (
	_ CheckS3API   = (*RegionalS3)(nil)
	_ S3API        = (*RegionalS3)(nil)
	_ S3Multipart  = (*RegionalS3)(nil)
	_ S3Deleter    = (*RegionalS3)(nil)
	_ S3Copier     = (*RegionalS3)(nil)
	_ BucketHeader = (*RegionalS3)(nil)
)

// NewS3Bucket is the bucket adapter every door uses: calls signed per
// bucket region, single-request uploads sent directly (DirectPut) to the
// same region. observe is Settings.Observe.
func NewS3Bucket(c *s3.Client, observe func(Call)) *S3Bucket {
	rc := NewRegionalS3(c)
	d := NewDirectPut(c, observe)
	d.regions, d.fallback = rc.Regions, rc
	return &S3Bucket{Client: rc, Uploads: d}
}

// regional makes one call signed for bucket's known region and, when S3
// answers that the bucket is elsewhere, learns where and sends it once
// more. body, when the call sends one, is rewound to where it stood; one
// that cannot be is not sent again (the redirect is the answer).
func regional[I, O any](ctx context.Context, r *RegionalS3, bucket string, body io.Reader,
	call func(context.Context, *I, ...func(*s3.Options)) (*O, error), in *I, opts []func(*s3.Options)) (*O, error) {
	known := r.Regions.For(bucket)
	var start int64
	seeker, _ := body.(io.Seeker)
	if seeker != nil {
		pos, err := seeker.Seek(0, io.SeekCurrent)
		if err != nil {
			seeker = nil
		}
		start = pos
	}
	out, err := call(ctx, in, withRegion(opts, known)...)
	region, elsewhere := movedTo(err)
	if !elsewhere {
		return out, err
	}
	if region == "" {
		region = whereIs(ctx, r.Client, bucket)
	}
	if region == "" || region == known || region == r.Client.Options().Region && known == "" {
		return out, err
	}
	r.Regions.Learn(bucket, region)
	if body != nil {
		if seeker == nil {
			return out, err
		}
		if _, serr := seeker.Seek(start, io.SeekStart); serr != nil {
			return out, err
		}
	}
	return call(ctx, in, withRegion(opts, region)...)
}

// withRegion puts the region first, so a caller's own options still
// apply after it.
func withRegion(opts []func(*s3.Options), region string) []func(*s3.Options) {
	if region == "" {
		return opts
	}
	return append(regionOpt(region), opts...)
}

func (r *RegionalS3) GetObject(ctx context.Context, in *s3.GetObjectInput, o ...func(*s3.Options)) (*s3.GetObjectOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.GetObject, in, o)
}

func (r *RegionalS3) PutObject(ctx context.Context, in *s3.PutObjectInput, o ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), in.Body, r.Client.PutObject, in, o)
}

func (r *RegionalS3) ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, o ...func(*s3.Options)) (*s3.ListObjectsV2Output, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.ListObjectsV2, in, o)
}

func (r *RegionalS3) HeadObject(ctx context.Context, in *s3.HeadObjectInput, o ...func(*s3.Options)) (*s3.HeadObjectOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.HeadObject, in, o)
}

func (r *RegionalS3) HeadBucket(ctx context.Context, in *s3.HeadBucketInput, o ...func(*s3.Options)) (*s3.HeadBucketOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.HeadBucket, in, o)
}

func (r *RegionalS3) GetBucketPolicy(ctx context.Context, in *s3.GetBucketPolicyInput, o ...func(*s3.Options)) (*s3.GetBucketPolicyOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.GetBucketPolicy, in, o)
}

func (r *RegionalS3) CopyObject(ctx context.Context, in *s3.CopyObjectInput, o ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.CopyObject, in, o)
}

func (r *RegionalS3) DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, o ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.DeleteObjects, in, o)
}

func (r *RegionalS3) DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, o ...func(*s3.Options)) (*s3.DeleteObjectOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.DeleteObject, in, o)
}

func (r *RegionalS3) CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, o ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.CreateMultipartUpload, in, o)
}

func (r *RegionalS3) UploadPart(ctx context.Context, in *s3.UploadPartInput, o ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), in.Body, r.Client.UploadPart, in, o)
}

func (r *RegionalS3) CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, o ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.CompleteMultipartUpload, in, o)
}

func (r *RegionalS3) AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, o ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error) {
	return regional(ctx, r, aws.ToString(in.Bucket), nil, r.Client.AbortMultipartUpload, in, o)
}
