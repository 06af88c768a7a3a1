package cloud

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Whether a key exists, without s3:ListBucket on it.
//
// HeadObject and GetObject of a key that is not there answer 404 only to a
// caller allowed s3:ListBucket on the bucket: "If you don't have the
// s3:ListBucket permission, Amazon S3 returns an HTTP status code 403
// Forbidden error"
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html,
// the same on API_GetObject.html). The policies deploybot iam-policy
// prints grant s3:ListBucket only under the sites' prefixes (an
// s3:prefix condition, see Policy), and a HEAD or GET carries no prefix
// parameter, so that condition never holds for one: to a caller with
// exactly those policies, a missing manifest, latest.json or lock is a
// 403, not a 404.
//
// ListObjectsV2 with Prefix set to the key itself is allowed by the
// condition, and answers for the key alone: keys are listed in binary
// order, and the key sorts before every other key it is a prefix of, so
// the first entry (MaxKeys 1) is the key when it exists. So:
//   - a check that expects the key to be absent (is this version
//     published?) lists it: one call, whose answer does not depend on
//     which of 404 and 403 the account gives, and which carries the ETag
//     and size a HEAD would (listKey);
//   - a read that expects the key to be there HEADs or GETs it as before,
//     and only a 403 is followed by that listing, to tell "missing" (the
//     read wraps errMissingKey, which isNotFound reports) from "denied"
//     (the 403 as it came) (headObject, getObject).
//
// A LIST costs more than a HEAD (S3 bills it as a PUT-class request),
// but the checks that list are one per publish or per approval; the hot
// reads keep their single HEAD or GET.

// errMissingKey: a HEAD or GET answered 403 and a listing showed the key
// is not there.
var errMissingKey = errors.New("the key is not there (S3 answered 403, not 404, to a caller without s3:ListBucket on it; a listing of the key found nothing)")

// missingKey is a 403 that a listing showed to be a missing key.
type missingKey struct{ err error }

func (m *missingKey) Error() string { return fmt.Sprintf("%v: %v", errMissingKey, m.err) }

func (m *missingKey) Unwrap() []error { return []error{errMissingKey, m.err} }

// listKey lists key alone: its entry, or nil when there is none.
func (b *S3Bucket) listKey(ctx context.Context, bucket, key string) (*types.Object, error) {
	out, err := b.Client.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(key), MaxKeys: aws.Int32(1)})
	if err != nil {
		return nil, fmt.Errorf("listing s3://%s/%s: %w", bucket, key, err)
	}
	for _, o := range out.Contents {
		if aws.ToString(o.Key) == key {
			return &o, nil
		}
	}
	return nil, nil
}

// missingOrDenied decides a 403 of a HEAD or GET of key: a missingKey
// error when a listing shows no such key, else the 403 itself (or, when
// the listing fails too, the 403 with why it could not be told apart).
func (b *S3Bucket) missingOrDenied(ctx context.Context, bucket, key string, forbidden error) error {
	o, err := b.listKey(ctx, bucket, key)
	switch {
	case err != nil:
		return fmt.Errorf("%w (and whether the key exists could not be listed: %v)", forbidden, err)
	case o == nil:
		return &missingKey{forbidden}
	}
	return forbidden
}

// headObject is HeadObject with a 403 told apart from a missing key.
func (b *S3Bucket) headObject(ctx context.Context, in *s3.HeadObjectInput) (*s3.HeadObjectOutput, error) {
	out, err := b.Client.HeadObject(ctx, in)
	if isAccessDenied(err) {
		return nil, b.missingOrDenied(ctx, aws.ToString(in.Bucket), aws.ToString(in.Key), err)
	}
	return out, err
}

// getObject is GetObject with a 403 told apart from a missing key.
func (b *S3Bucket) getObject(ctx context.Context, in *s3.GetObjectInput) (*s3.GetObjectOutput, error) {
	out, err := b.Client.GetObject(ctx, in)
	if isAccessDenied(err) {
		return nil, b.missingOrDenied(ctx, aws.ToString(in.Bucket), aws.ToString(in.Key), err)
	}
	return out, err
}
