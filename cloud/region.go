package cloud

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/deploybot/deploybot/releases"
)

// BucketHeader is what HeadBucket tells of a bucket.
type BucketHeader interface {
	HeadBucket(ctx context.Context, in *s3.HeadBucketInput, optFns ...func(*s3.Options)) (*s3.HeadBucketOutput, error)
}

var _ BucketHeader = (*s3.Client)(nil)

// BucketState is what one HeadBucket learnt of a bucket.
type BucketState struct {
	Exists bool
	// Region is the bucket's region, from the x-amz-bucket-region header
	// S3 puts on every HeadBucket answer, refusals and redirects included
	// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadBucket.html).
	Region string
	// Forbidden: the bucket exists and this caller may not read it
	// (another account's, or no s3:ListBucket on it).
	Forbidden bool
}

// HeadBucket asks S3 whether bucket exists and where. A bucket in another
// region than the client's answers 301 with its region; that is an
// answer, not an error.
func HeadBucket(ctx context.Context, c BucketHeader, bucket string) (BucketState, error) {
	out, err := c.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String(bucket)})
	if err == nil {
		return BucketState{Exists: true, Region: aws.ToString(out.BucketRegion)}, nil
	}
	var re *smithyhttp.ResponseError
	if !errors.As(err, &re) || re.Response == nil {
		return BucketState{}, fmt.Errorf("reading bucket %s: %w", bucket, err)
	}
	region := re.Response.Header.Get("X-Amz-Bucket-Region")
	switch re.HTTPStatusCode() {
	case http.StatusNotFound:
		return BucketState{}, nil
	case http.StatusMovedPermanently, http.StatusBadRequest:
		if region != "" {
			return BucketState{Exists: true, Region: region}, nil
		}
	case http.StatusForbidden:
		return BucketState{Exists: true, Region: region, Forbidden: true}, nil
	}
	return BucketState{}, fmt.Errorf("reading bucket %s: %w", bucket, err)
}

// regionOpt signs S3 calls for region ("": the client's own).
func regionOpt(region string) []func(*s3.Options) {
	if region == "" {
		return nil
	}
	return []func(*s3.Options){func(o *s3.Options) { o.Region = region }}
}

// bucketProblem turns a HeadBucket answer into what a person must do.
func bucketProblem(site releases.Site, st BucketState) error {
	if st.Forbidden {
		return releases.Errorf(releases.EUNAUTHORIZED, "bucket %s (sites[].bucket of site %s) exists, but this caller may not read it: another AWS account owns it (bucket names are global: choose another), or the caller lacks s3:ListBucket on it (deploybot iam-policy --role bot)", site.Bucket, site.Name)
	}
	return nil
}
