package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/deploybot/deploybot/releases"
)

// S3API is the part of the S3 client the bucket adapter uses, with the
// SDK's own signatures, so *s3.Client satisfies it and tests may wrap it.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// S3Bucket keeps a site's releases in S3.
type S3Bucket struct {
	Client S3API
	// MultipartThreshold is the size from which files go up in parts
	// (zero: 64 MiB); PartSize is the part size (zero: 16 MiB, S3's
	// minimum is 5 MiB). Parts are retried alone, and four go at once.
	MultipartThreshold int64
	PartSize           int64
	// Uploads, when set, sends PutFile's single-request uploads (a
	// *DirectPut, which spares each the SDK's per-call middleware); nil:
	// Client.
	Uploads S3Putter
	// Budget bounds the manifest bytes ReadManifest reads at once; nil:
	// the process-wide releases.DefaultManifestBudget, which the service
	// shares.
	Budget *releases.ManifestBudget
}

// S3Multipart is what large uploads add to S3API.
type S3Multipart interface {
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var _ S3Multipart = (*s3.Client)(nil)

var _ releases.Bucket = (*S3Bucket)(nil)

var _ releases.ManifestStreamer = (*S3Bucket)(nil)

// eachObject calls fn for every object under prefix, a page of 1,000 per
// ListObjectsV2 call.
func (b *S3Bucket) eachObject(ctx context.Context, bucket, prefix string, fn func(types.Object)) error {
	p := s3.NewListObjectsV2Paginator(b.Client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			fn(o)
		}
	}
	return nil
}

// conditionalTries bounds the retries of a conditional write that meets
// another writer (about 10 s of backoff in all).
const conditionalTries = 8

// retryConditional runs put until it lands, or fails in a way retryable
// does not excuse, or conditionalTries are spent, backing off from 100 ms
// to 2 s between tries. A put that reads before it writes (If-Match on
// the ETag it read) reads again on each try. It returns put's last error.
func retryConditional(ctx context.Context, retryable func(error) bool, put func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := put()
		if err == nil || !retryable(err) || attempt == conditionalTries {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// isConflict: another conditional write to the key is in flight (409).
func isConflict(err error) bool { return apiCode(err) == "ConditionalRequestConflict" }

// lostRace: another writer changed the object since it was read (412),
// or is writing it now (409).
func lostRace(err error) bool { return isPreconditionFailed(err) || isConflict(err) }

func isNotFound(err error) bool {
	if errors.Is(err, errMissingKey) {
		return true
	}
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && apiCode(err) != "NoSuchBucket"
}

func isPreconditionFailed(err error) bool {
	if err == nil {
		return false
	}
	if apiCode(err) == "PreconditionFailed" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// optional is nil for "": an object stored without the header, rather
// than with an empty one.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
