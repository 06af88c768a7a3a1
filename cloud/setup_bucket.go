package cloud

import (
	"context"
	"encoding/json"
	"fmt"
	"reflect"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/releases"
)

// The bucket's settings setup wants: Block Public Access on (visitors
// read through CloudFront alone), ACLs off (BucketOwnerEnforced: every
// object CI uploads belongs to the bucket's account), and default
// encryption SSE-S3. They are S3's defaults for buckets created since
// 2023 (https://docs.aws.amazon.com/AmazonS3/latest/userguide/create-bucket-overview.html);
// setup states them so an older bucket gets them too.
func (r *setupRun) bucketSettings(ctx context.Context) error {
	if r.newBucket {
		r.step("bucket settings", SetupCreate, "Block Public Access on, object ownership BucketOwnerEnforced, default encryption SSE-S3", "S3's defaults for new buckets, stated")
		return r.putBucketSettings(ctx, true, true, true)
	}
	var pab, own, enc bool
	var whys []string
	out, err := r.S3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: aws.String(r.site.Bucket)}, r.s3opt...)
	switch {
	case isCode(err, "NoSuchPublicAccessBlockConfiguration"):
		pab = true
	case err != nil:
		return awsProblem("reading the Block Public Access settings of bucket "+r.site.Bucket, "s3:GetBucketPublicAccessBlock", err)
	default:
		c := out.PublicAccessBlockConfiguration
		pab = c == nil || !aws.ToBool(c.BlockPublicAcls) || !aws.ToBool(c.IgnorePublicAcls) || !aws.ToBool(c.BlockPublicPolicy) || !aws.ToBool(c.RestrictPublicBuckets)
	}
	if pab {
		whys = append(whys, "turn Block Public Access on (all four settings): visitors read through CloudFront alone")
	}
	oc, err := r.S3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: aws.String(r.site.Bucket)}, r.s3opt...)
	switch {
	case isCode(err, "OwnershipControlsNotFoundError"):
		own = true
	case err != nil:
		return awsProblem("reading the object ownership of bucket "+r.site.Bucket, "s3:GetBucketOwnershipControls", err)
	default:
		own = oc.OwnershipControls == nil || len(oc.OwnershipControls.Rules) != 1 || oc.OwnershipControls.Rules[0].ObjectOwnership != s3types.ObjectOwnershipBucketOwnerEnforced
	}
	if own {
		whys = append(whys, "set object ownership to BucketOwnerEnforced: what CI uploads belongs to the bucket's account, which CloudFront's access control reads as")
	}
	kms := false
	ec, err := r.S3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: aws.String(r.site.Bucket)}, r.s3opt...)
	switch {
	case isCode(err, "ServerSideEncryptionConfigurationNotFoundError"):
		enc = true
	case err != nil:
		return awsProblem("reading the default encryption of bucket "+r.site.Bucket, "s3:GetEncryptionConfiguration", err)
	default:
		alg := encryptionOf(ec)
		enc = alg == ""
		kms = strings.HasPrefix(alg, "aws:kms")
	}
	if enc {
		whys = append(whys, "turn default encryption (SSE-S3) on")
	}
	if len(whys) == 0 {
		why := ""
		if kms {
			why = "default encryption is SSE-KMS, which setup keeps: the key's policy must let cloudfront.amazonaws.com decrypt for this distribution"
		}
		r.step("bucket settings", SetupOK, "Block Public Access on, BucketOwnerEnforced, default encryption on", why)
		return nil
	}
	r.step("bucket settings", SetupChange, strings.Join(whys, "; "), "a site's bucket is private, owned by its account, encrypted")
	return r.putBucketSettings(ctx, pab, own, enc)
}

func encryptionOf(ec *s3.GetBucketEncryptionOutput) string {
	if ec == nil || ec.ServerSideEncryptionConfiguration == nil {
		return ""
	}
	for _, rule := range ec.ServerSideEncryptionConfiguration.Rules {
		if d := rule.ApplyServerSideEncryptionByDefault; d != nil {
			return string(d.SSEAlgorithm)
		}
	}
	return ""
}

func (r *setupRun) putBucketSettings(ctx context.Context, pab, own, enc bool) error {
	if !r.apply {
		return nil
	}
	b := aws.String(r.site.Bucket)
	if pab {
		if _, err := r.S3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: b, PublicAccessBlockConfiguration: bucketPublicAccessBlock()}, r.s3opt...); err != nil {
			return awsProblem("turning Block Public Access on for bucket "+r.site.Bucket, "s3:PutBucketPublicAccessBlock", err)
		}
	}
	if own {
		if _, err := r.S3.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: b, OwnershipControls: bucketOwnership()}, r.s3opt...); err != nil {
			return awsProblem("setting the object ownership of bucket "+r.site.Bucket, "s3:PutBucketOwnershipControls", err)
		}
	}
	if enc {
		if _, err := r.S3.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: b, ServerSideEncryptionConfiguration: bucketEncryption()}, r.s3opt...); err != nil {
			return awsProblem("turning default encryption on for bucket "+r.site.Bucket, "s3:PutEncryptionConfiguration", err)
		}
	}
	return nil
}

// ReadStatement is the bucket policy statement that lets the site's
// distribution, and no other, read the site's objects through its origin
// access control
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html).
// The site's prefix bounds it: another site sharing the bucket needs its
// own statement.
func ReadStatement(site releases.Site, distributionARN string) Statement {
	return Statement{
		Sid:       readSid(site),
		Effect:    "Allow",
		Principal: map[string]string{"Service": "cloudfront.amazonaws.com"},
		Action:    []string{"s3:GetObject"},
		Resource:  []string{fmt.Sprintf("arn:%s:s3:::%s/%s*", partitionOfARN(distributionARN), site.Bucket, site.Prefix)},
		Condition: map[string]map[string][]string{"StringEquals": {"AWS:SourceArn": {distributionARN}}},
	}
}

// readSid names the site's statement; IAM's Sid takes letters and digits
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_sid.html).
func readSid(site releases.Site) string {
	var b strings.Builder
	b.WriteString("DeploybotRead")
	for _, c := range accountName(site, "") {
		if c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' {
			b.WriteRune(c)
		}
	}
	return b.String()
}

func partitionOfARN(arn string) string {
	if parts := strings.SplitN(arn, ":", 3); len(parts) == 3 && parts[1] != "" {
		return parts[1]
	}
	return "aws"
}

// bucketPolicy adds (or corrects) the site's read statement, keeping
// every other statement of the bucket's policy as it is.
func (r *setupRun) bucketPolicy(ctx context.Context) error {
	arn := r.rep.DistributionARN
	if arn == "" {
		arn = "arn:aws:cloudfront::ACCOUNT:distribution/NEW"
	}
	want := ReadStatement(r.site, arn)
	var current string
	if !r.newBucket {
		out, err := r.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(r.site.Bucket)}, r.s3opt...)
		switch {
		case isCode(err, "NoSuchBucketPolicy"):
		case err != nil:
			return awsProblem("reading the policy of bucket "+r.site.Bucket, "s3:GetBucketPolicy", err)
		default:
			current = aws.ToString(out.Policy)
		}
	}
	merged, changed, err := mergeStatement(current, want)
	if err != nil {
		return releases.Errorf(releases.EINVALID, "bucket %s: its policy is not JSON setup can read (%v); add this statement by hand: %s", r.site.Bucket, err, mustJSON(want))
	}
	res := "bucket policy of " + r.site.Bucket
	if !changed {
		r.step(res, SetupOK, "statement "+want.Sid+" lets the distribution read "+r.site.Prefix+"*", "")
		return nil
	}
	action := SetupChange
	if current == "" {
		action = SetupCreate
	}
	r.step(res, action, "statement "+want.Sid+": cloudfront.amazonaws.com may s3:GetObject on "+r.site.Prefix+"* for this distribution alone (AWS:SourceArn)", "the origin access control reads as CloudFront's service principal; other statements are kept")
	if !r.apply {
		return nil
	}
	if _, err := r.S3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: aws.String(r.site.Bucket), Policy: aws.String(merged)}, r.s3opt...); err != nil {
		return awsProblem("writing the policy of bucket "+r.site.Bucket, "s3:PutBucketPolicy", err)
	}
	return nil
}

func mustJSON(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// mergeStatement puts want into the policy document current (JSON, ""
// for none) in place of a statement with its Sid, and reports whether
// that changed anything. Other statements are kept as they were written.
func mergeStatement(current string, want Statement) (string, bool, error) {
	doc := map[string]any{"Version": "2012-10-17"}
	var stmts []any
	if strings.TrimSpace(current) != "" {
		if err := json.Unmarshal([]byte(current), &doc); err != nil {
			return "", false, err
		}
		switch s := doc["Statement"].(type) {
		case nil:
		case []any:
			stmts = s
		case map[string]any: // IAM takes one statement without the list
			stmts = []any{s}
		default:
			return "", false, fmt.Errorf("Statement is neither a list nor an object")
		}
	}
	var wantAny any
	if err := json.Unmarshal([]byte(mustJSON(want)), &wantAny); err != nil {
		return "", false, err
	}
	found := false
	for i, s := range stmts {
		if m, ok := s.(map[string]any); ok && m["Sid"] == want.Sid {
			if reflect.DeepEqual(m, wantAny) {
				return current, false, nil
			}
			stmts[i], found = wantAny, true
			break
		}
	}
	if !found {
		stmts = append(stmts, wantAny)
	}
	doc["Statement"] = stmts
	out, err := json.Marshal(doc)
	return string(out), true, err
}
