package localaws

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// Provision creates, through the SDK as an operator would, a bucket (if
// missing) and a distribution with that bucket as its only origin. It
// returns the distribution id. It works against the stand-in and, with
// suitable clients, against anything that speaks the same APIs.
func Provision(ctx context.Context, s3c *s3.Client, cfc *cloudfront.Client, bucket, callerRef string) (string, error) {
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return "", fmt.Errorf("creating bucket %s: %w", bucket, err)
		}
	}
	const originID = "s3-origin"
	out, err := cfc.CreateDistribution(ctx, &cloudfront.CreateDistributionInput{DistributionConfig: &cftypes.DistributionConfig{
		CallerReference:   aws.String(callerRef),
		Comment:           aws.String("deploybot site " + bucket),
		Enabled:           aws.Bool(true),
		DefaultRootObject: aws.String("index.html"),
		Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{
			Id:             aws.String(originID),
			DomainName:     aws.String(bucket + ".s3.us-east-1.amazonaws.com"),
			OriginPath:     aws.String(""),
			S3OriginConfig: &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")},
		}}},
		DefaultCacheBehavior: &cftypes.DefaultCacheBehavior{
			TargetOriginId:       aws.String(originID),
			ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyRedirectToHttps,
			// CachingOptimized, the managed cache policy AWS recommends for S3.
			CachePolicyId: aws.String("658327ea-f89d-4fab-a63d-7e88639e58f6"),
		},
	}})
	if err != nil {
		return "", fmt.Errorf("creating distribution for %s: %w", bucket, err)
	}
	return aws.ToString(out.Distribution.Id), nil
}
