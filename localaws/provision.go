package localaws

import (
	"context"
	"errors"
	"fmt"
	"strings"

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

// EnsureSite creates, if missing, the bucket and a distribution with the
// given id serving it from its only S3 origin. Real CloudFront picks ids
// itself; fixing one here lets a configuration file name it in advance.
func (s *Server) EnsureSite(distributionID, bucket string) error {
	if !validBucketName(bucket) {
		return fmt.Errorf("localaws: invalid bucket name %q", bucket)
	}
	if distributionID == "" {
		return fmt.Errorf("localaws: empty distribution id")
	}
	if _, err := s.s3.ensureBucket(bucket, DefaultRegion); err != nil {
		return err
	}

	cf := s.cf
	cf.mu.Lock()
	defer cf.mu.Unlock()
	if _, ok := cf.dists[distributionID]; ok {
		return nil
	}
	raw := []byte(fmt.Sprintf(`<DistributionConfig xmlns="%s"><CallerReference>localaws-%s</CallerReference>`+
		`<Aliases><Quantity>0</Quantity></Aliases><DefaultRootObject>index.html</DefaultRootObject>`+
		`<Origins><Quantity>1</Quantity><Items><Origin><Id>s3-origin</Id><DomainName>%s.s3.us-east-1.amazonaws.com</DomainName>`+
		`<OriginPath></OriginPath><S3OriginConfig><OriginAccessIdentity></OriginAccessIdentity></S3OriginConfig></Origin></Items></Origins>`+
		`<DefaultCacheBehavior><TargetOriginId>s3-origin</TargetOriginId><ViewerProtocolPolicy>allow-all</ViewerProtocolPolicy>`+
		`<CachePolicyId>658327ea-f89d-4fab-a63d-7e88639e58f6</CachePolicyId></DefaultCacheBehavior>`+
		`<Comment>localaws site %s</Comment><Enabled>true</Enabled></DistributionConfig>`, cfNS, distributionID, bucket, bucket))
	c, cerr := parseConfig(raw)
	if cerr != nil {
		return fmt.Errorf("localaws: %s", cerr.Message)
	}
	now := cf.now().UTC()
	cf.dists[distributionID] = &distribution{ID: distributionID, ETag: newID('E'), Raw: raw, Config: c,
		LastModified: now, DeployedAt: now, DomainName: strings.ToLower("d"+distributionID) + ".cloudfront.net"}
	return cf.save()
}
