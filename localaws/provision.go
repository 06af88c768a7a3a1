package localaws

import (
	"bytes"
	"context"
	"encoding/json"
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
// missing) and a distribution with that bucket as its only origin, read
// through an origin access control (made if missing, named after the
// bucket) that the bucket policy lets read the bucket, as
// https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html
// sets it up. It returns the distribution id. It works against the
// stand-in and, with suitable clients, against anything that speaks the
// same APIs.
func Provision(ctx context.Context, s3c *s3.Client, cfc *cloudfront.Client, bucket, callerRef string) (string, error) {
	if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			return "", fmt.Errorf("creating bucket %s: %w", bucket, err)
		}
	}
	oacID, err := provisionOAC(ctx, cfc, oacName(bucket))
	if err != nil {
		return "", err
	}
	const originID = "s3-origin"
	out, err := cfc.CreateDistribution(ctx, &cloudfront.CreateDistributionInput{DistributionConfig: &cftypes.DistributionConfig{
		CallerReference:   aws.String(callerRef),
		Comment:           aws.String("deploybot site " + bucket),
		Enabled:           aws.Bool(true),
		DefaultRootObject: aws.String("index.html"),
		Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{
			Id:                    aws.String(originID),
			DomainName:            aws.String(bucket + ".s3.us-east-1.amazonaws.com"),
			OriginPath:            aws.String(""),
			S3OriginConfig:        &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")},
			OriginAccessControlId: aws.String(oacID),
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
	var policy string
	got, err := s3c.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(bucket)})
	switch {
	case err == nil:
		policy = aws.ToString(got.Policy)
	case !strings.Contains(err.Error(), "NoSuchBucketPolicy"):
		return "", fmt.Errorf("reading the policy of bucket %s: %w", bucket, err)
	}
	policy, changed, err := GrantDistributionRead(policy, bucket, aws.ToString(out.Distribution.ARN))
	if err != nil {
		return "", err
	}
	if changed {
		if _, err := s3c.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(bucket), Policy: aws.String(policy)}); err != nil {
			return "", fmt.Errorf("letting distribution %s read bucket %s: %w", aws.ToString(out.Distribution.Id), bucket, err)
		}
	}
	return aws.ToString(out.Distribution.Id), nil
}

// oacName is the name Provision and EnsureSite give the origin access
// control of a bucket's distributions (at most 64 characters).
func oacName(bucket string) string {
	name := "localaws-" + bucket
	if len(name) > 64 {
		name = name[:64]
	}
	return name
}

// provisionOAC returns the id of the S3 origin access control called
// name (signing always, SigV4), creating it if missing.
func provisionOAC(ctx context.Context, cfc *cloudfront.Client, name string) (string, error) {
	list, err := cfc.ListOriginAccessControls(ctx, &cloudfront.ListOriginAccessControlsInput{})
	if err != nil {
		return "", fmt.Errorf("listing origin access controls: %w", err)
	}
	if list.OriginAccessControlList != nil {
		for _, o := range list.OriginAccessControlList.Items {
			if aws.ToString(o.Name) == name {
				return aws.ToString(o.Id), nil
			}
		}
	}
	out, err := cfc.CreateOriginAccessControl(ctx, &cloudfront.CreateOriginAccessControlInput{OriginAccessControlConfig: &cftypes.OriginAccessControlConfig{
		Name: aws.String(name), SigningProtocol: cftypes.OriginAccessControlSigningProtocolsSigv4,
		SigningBehavior: cftypes.OriginAccessControlSigningBehaviorsAlways, OriginAccessControlOriginType: cftypes.OriginAccessControlOriginTypesS3}})
	if err != nil {
		return "", fmt.Errorf("creating origin access control %s: %w", name, err)
	}
	return aws.ToString(out.OriginAccessControl.Id), nil
}

// GrantDistributionRead returns bucket policy (a JSON document, or "" for
// none) with the statement CloudFront's developer guide gives for an
// origin access control added if the policy does not already let
// distribution distARN read the bucket: s3:GetObject on every key for the
// service principal cloudfront.amazonaws.com, on the condition that
// AWS:SourceArn is the distribution
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html#oac-permission-to-access-s3).
// changed is false when the policy already does.
func GrantDistributionRead(policy, bucket, distARN string) (out string, changed bool, err error) {
	if policy != "" {
		doc, perr := parseBucketPolicy([]byte(policy), bucket)
		if perr != nil {
			return "", false, fmt.Errorf("the policy of bucket %s: %s", bucket, perr.Message)
		}
		if doc.decide(accessRequest{principalType: "Service", principal: "cloudfront.amazonaws.com", action: "s3:GetObject",
			resource: "arn:aws:s3:::" + bucket + "/index.html", context: map[string]string{"aws:sourcearn": distARN, "aws:sourceaccount": StandInAccount}}) {
			return policy, false, nil
		}
	}
	doc := map[string]any{"Version": "2012-10-17"}
	if policy != "" {
		if err := json.Unmarshal([]byte(policy), &doc); err != nil {
			return "", false, err
		}
	}
	var stmts []any
	switch st := doc["Statement"].(type) {
	case []any:
		stmts = st
	case map[string]any:
		stmts = []any{st}
	}
	stmts = append(stmts, map[string]any{
		"Sid":       "AllowCloudFrontServicePrincipal" + strings.NewReplacer("-", "", "_", "").Replace(distARN[strings.LastIndex(distARN, "/")+1:]),
		"Effect":    "Allow",
		"Principal": map[string]any{"Service": "cloudfront.amazonaws.com"},
		"Action":    "s3:GetObject",
		"Resource":  "arn:aws:s3:::" + bucket + "/*",
		"Condition": map[string]any{"StringEquals": map[string]any{"AWS:SourceArn": distARN}},
	})
	doc["Statement"] = stmts
	raw, err := json.MarshalIndent(doc, "", "  ")
	return string(raw), true, err
}

// EnsureSite creates, if missing, the bucket and a distribution with the
// given id serving it from its only S3 origin. Real CloudFront picks ids
// itself; fixing one here lets a configuration file name it in advance.
// As an operator would (see Provision), the origin reads through an
// origin access control and the bucket policy lets the distribution
// read. A distribution an earlier version of EnsureSite made, without
// one, gets it.
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

	if err := s.ensureSiteDistribution(distributionID, bucket); err != nil {
		return err
	}
	s.s3.mu.Lock()
	defer s.s3.mu.Unlock()
	b := s.s3.buckets[bucket]
	policy, changed, err := GrantDistributionRead(b.cfg.Policy, bucket, distributionARN(distributionID))
	if err != nil || !changed {
		return err
	}
	b.cfg.Policy = policy
	return b.saveConfig()
}

func (s *Server) ensureSiteDistribution(distributionID, bucket string) error {
	cf := s.cf
	cf.mu.Lock()
	defer cf.mu.Unlock()
	oacID, err := cf.ensureOAC(oacName(bucket))
	if err != nil {
		return err
	}
	if d, ok := cf.dists[distributionID]; ok {
		if d.Config.CallerReference != "localaws-"+distributionID || len(d.Config.Origins.Items) != 1 || d.Config.Origins.Items[0].OriginAccessControlID != "" {
			return nil
		}
		raw := bytes.Replace(d.Raw, []byte("<OriginAccessControlId></OriginAccessControlId>"), nil, 1)
		raw = bytes.Replace(raw, []byte("<Origin>"), []byte("<Origin><OriginAccessControlId>"+oacID+"</OriginAccessControlId>"), 1)
		c, cerr := parseConfig(raw)
		if cerr != nil {
			return fmt.Errorf("localaws: %s", cerr.Message)
		}
		d.Raw, d.Config, d.ETag = raw, c, newID('E')
		return cf.save()
	}
	raw := []byte(fmt.Sprintf(`<DistributionConfig xmlns="%s"><CallerReference>localaws-%s</CallerReference>`+
		`<Aliases><Quantity>0</Quantity></Aliases><DefaultRootObject>index.html</DefaultRootObject>`+
		`<Origins><Quantity>1</Quantity><Items><Origin><Id>s3-origin</Id><DomainName>%s.s3.us-east-1.amazonaws.com</DomainName><OriginAccessControlId>%s</OriginAccessControlId>`+
		`<OriginPath></OriginPath><S3OriginConfig><OriginAccessIdentity></OriginAccessIdentity></S3OriginConfig></Origin></Items></Origins>`+
		`<DefaultCacheBehavior><TargetOriginId>s3-origin</TargetOriginId><ViewerProtocolPolicy>allow-all</ViewerProtocolPolicy>`+
		`<CachePolicyId>658327ea-f89d-4fab-a63d-7e88639e58f6</CachePolicyId></DefaultCacheBehavior>`+
		`<Comment>localaws site %s</Comment><Enabled>true</Enabled></DistributionConfig>`, cfNS, distributionID, bucket, oacID, bucket))
	c, cerr := parseConfig(raw)
	if cerr != nil {
		return fmt.Errorf("localaws: %s", cerr.Message)
	}
	now := cf.now().UTC()
	cf.dists[distributionID] = &distribution{ID: distributionID, ETag: newID('E'), Raw: raw, Config: c,
		LastModified: now, DeployedAt: now, DomainName: strings.ToLower("d"+distributionID) + ".cloudfront.net"}
	return cf.save()
}
