package localaws_test

import (
	"errors"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	awshttp "github.com/aws/aws-sdk-go-v2/aws/transport/http"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/cloud"
)

// s3In is an S3 client of the fixture's stand-in signing for region.
func (f *fixture) s3In(t *testing.T, region string) *s3.Client {
	t.Helper()
	c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: region, Endpoint: f.api.URL,
		Credentials: cloud.StaticCredentials("AKID", "secret"), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func status(err error) int {
	var re *awshttp.ResponseError
	if errors.As(err, &re) {
		return re.HTTPStatusCode()
	}
	return 0
}

// A bucket is in the region its location constraint names (none:
// us-east-1), which must be the region of the endpoint the request went
// to; S3 refuses us-east-1 as a constraint.
func TestCreateBucketLocationConstraint(t *testing.T) {
	f := newFixture(t, t.TempDir())
	eu := f.s3In(t, "eu-west-1")
	tests := []struct {
		name   string
		client *s3.Client
		bucket string
		lc     string
		code   string
	}{
		{"us-east-1 without a constraint", f.s3, "us-plain", "", ""},
		{"us-east-1 named as a constraint", f.s3, "us-named", "us-east-1", "InvalidLocationConstraint"},
		{"eu-west-1 at its endpoint", eu, "eu-bucket", "eu-west-1", ""},
		{"no constraint at eu-west-1's endpoint", eu, "eu-none", "", "IllegalLocationConstraintException"},
		{"another region's constraint", eu, "eu-other", "us-west-2", "IllegalLocationConstraintException"},
		{"eu-west-1 at us-east-1's endpoint", f.s3, "eu-at-us", "eu-west-1", "IllegalLocationConstraintException"},
		{"a region S3 does not have", f.s3, "nowhere", "mars-north-1", "InvalidLocationConstraint"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			in := &s3.CreateBucketInput{Bucket: aws.String(tt.bucket)}
			if tt.lc != "" {
				in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(tt.lc)}
			}
			_, err := tt.client.CreateBucket(ctx, in)
			if code(err) != tt.code || (tt.code == "") != (err == nil) {
				t.Fatalf("CreateBucket: %v, want %q", err, tt.code)
			}
		})
	}
	for bucket, want := range map[string]s3types.BucketLocationConstraint{"us-plain": "", "eu-bucket": "eu-west-1"} {
		out, err := f.s3.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String(bucket)})
		if err != nil || out.LocationConstraint != want {
			t.Fatalf("GetBucketLocation %s: %v %q, want %q", bucket, err, out.LocationConstraint, want)
		}
	}
}

// A request signed for another region than the bucket's is redirected
// (HEAD: 301 with x-amz-bucket-region; otherwise PermanentRedirect), or
// refused 400 for a bucket in a region launched after March 2019; every
// HeadBucket answer names the bucket's region.
func TestRequestToAnotherRegion(t *testing.T) {
	f := newFixture(t, t.TempDir())
	if err := f.srv.EnsureBucketIn("eu-site", "eu-west-1"); err != nil {
		t.Fatal(err)
	}
	if err := f.srv.EnsureBucketIn("cape-site", "af-south-1"); err != nil {
		t.Fatal(err)
	}
	eu := f.s3In(t, "eu-west-1")
	out, err := eu.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("eu-site")})
	if err != nil || aws.ToString(out.BucketRegion) != "eu-west-1" {
		t.Fatalf("HeadBucket in its region: %v %+v", err, out)
	}
	_, err = f.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("eu-site")})
	var re *awshttp.ResponseError
	if !errors.As(err, &re) || re.HTTPStatusCode() != 301 || re.Response.Header.Get("x-amz-bucket-region") != "eu-west-1" {
		t.Fatalf("HeadBucket from us-east-1: %v", err)
	}
	if _, err := eu.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("eu-site"), Key: aws.String("k"), Body: nil}); err != nil {
		t.Fatalf("PutObject in the bucket's region: %v", err)
	}
	_, err = f.s3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("eu-site"), Key: aws.String("k")})
	if code(err) != "PermanentRedirect" || status(err) != 301 {
		t.Fatalf("GetObject from us-east-1: %v, want 301 PermanentRedirect", err)
	}
	_, err = f.s3.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("cape-site")})
	if code(err) != "IllegalLocationConstraintException" || status(err) != 400 {
		t.Fatalf("ListObjectsV2 of an af-south-1 bucket from us-east-1: %v", err)
	}
	// GetBucketLocation answers from any region.
	loc, err := f.s3.GetBucketLocation(ctx, &s3.GetBucketLocationInput{Bucket: aws.String("cape-site")})
	if err != nil || loc.LocationConstraint != "af-south-1" {
		t.Fatalf("GetBucketLocation: %v %+v", err, loc)
	}
	// The default region's buckets answer us-east-1 clients as before.
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("home")}); err != nil {
		t.Fatal(err)
	}
	if out, err := f.s3.HeadBucket(ctx, &s3.HeadBucketInput{Bucket: aws.String("home")}); err != nil || aws.ToString(out.BucketRegion) != "us-east-1" {
		t.Fatalf("HeadBucket home: %v", err)
	}
}

// New buckets get S3's defaults since 2023; each setting can be read,
// changed and removed as S3 allows, and survives a restart.
func TestBucketSettings(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	b := aws.String("settings")
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	pab, err := f.s3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: b})
	if err != nil {
		t.Fatal(err)
	}
	if c := pab.PublicAccessBlockConfiguration; !aws.ToBool(c.BlockPublicAcls) || !aws.ToBool(c.IgnorePublicAcls) || !aws.ToBool(c.BlockPublicPolicy) || !aws.ToBool(c.RestrictPublicBuckets) {
		t.Fatalf("a new bucket's Block Public Access: %+v", c)
	}
	own, err := f.s3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: b})
	if err != nil || own.OwnershipControls.Rules[0].ObjectOwnership != s3types.ObjectOwnershipBucketOwnerEnforced {
		t.Fatalf("a new bucket's ownership: %v", err)
	}
	enc, err := f.s3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: b})
	if err != nil || enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm != s3types.ServerSideEncryptionAes256 {
		t.Fatalf("a new bucket's encryption: %v", err)
	}
	if _, err := f.s3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: b}); code(err) != "NoSuchBucketPolicy" {
		t.Fatalf("no policy: %v", err)
	}

	// Removed settings are not found; encryption goes back to SSE-S3.
	if _, err := f.s3.DeletePublicAccessBlock(ctx, &s3.DeletePublicAccessBlockInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: b}); code(err) != "NoSuchPublicAccessBlockConfiguration" {
		t.Fatalf("after DeletePublicAccessBlock: %v", err)
	}
	if _, err := f.s3.DeleteBucketOwnershipControls(ctx, &s3.DeleteBucketOwnershipControlsInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: b}); code(err) != "OwnershipControlsNotFoundError" {
		t.Fatalf("after DeleteBucketOwnershipControls: %v", err)
	}
	if _, err := f.s3.PutBucketEncryption(ctx, &s3.PutBucketEncryptionInput{Bucket: b, ServerSideEncryptionConfiguration: &s3types.ServerSideEncryptionConfiguration{
		Rules: []s3types.ServerSideEncryptionRule{{ApplyServerSideEncryptionByDefault: &s3types.ServerSideEncryptionByDefault{SSEAlgorithm: s3types.ServerSideEncryptionAwsKms, KMSMasterKeyID: aws.String("alias/site")}}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s3.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: b, OwnershipControls: &s3types.OwnershipControls{
		Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: s3types.ObjectOwnershipBucketOwnerPreferred}}}}); err != nil {
		t.Fatal(err)
	}
	_, err = f.s3.PutBucketOwnershipControls(ctx, &s3.PutBucketOwnershipControlsInput{Bucket: b, OwnershipControls: &s3types.OwnershipControls{
		Rules: []s3types.OwnershipControlsRule{{ObjectOwnership: "Everyone"}}}})
	if code(err) != "MalformedXML" {
		t.Fatalf("an ownership S3 does not have: %v", err)
	}

	// A restart keeps them.
	f2 := newFixture(t, dir)
	enc, err = f2.s3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: b})
	if err != nil || aws.ToString(enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.KMSMasterKeyID) != "alias/site" {
		t.Fatalf("encryption after a restart: %v", err)
	}
	if own, err := f2.s3.GetBucketOwnershipControls(ctx, &s3.GetBucketOwnershipControlsInput{Bucket: b}); err != nil || own.OwnershipControls.Rules[0].ObjectOwnership != s3types.ObjectOwnershipBucketOwnerPreferred {
		t.Fatalf("ownership after a restart: %v", err)
	}
	if _, err := f2.s3.GetPublicAccessBlock(ctx, &s3.GetPublicAccessBlockInput{Bucket: b}); code(err) != "NoSuchPublicAccessBlockConfiguration" {
		t.Fatalf("Block Public Access after a restart: %v", err)
	}
	if _, err := f2.s3.DeleteBucketEncryption(ctx, &s3.DeleteBucketEncryptionInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	enc, err = f2.s3.GetBucketEncryption(ctx, &s3.GetBucketEncryptionInput{Bucket: b})
	if err != nil || enc.ServerSideEncryptionConfiguration.Rules[0].ApplyServerSideEncryptionByDefault.SSEAlgorithm != s3types.ServerSideEncryptionAes256 {
		t.Fatalf("DeleteBucketEncryption resets to SSE-S3: %v", err)
	}
}

// PutBucketPolicy takes a policy S3 takes and refuses the rest: malformed
// ones, and, while BlockPublicPolicy is on, public ones.
func TestBucketPolicy(t *testing.T) {
	f := newFixture(t, t.TempDir())
	b := aws.String("pol")
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	oac := `{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"},
		"Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol/*",
		"Condition": {"StringEquals": {"AWS:SourceArn": "arn:aws:cloudfront::000000000000:distribution/E1"}}}]}`
	public := `{"Version": "2012-10-17", "Statement": {"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol/*"}}`
	tests := []struct {
		name, policy, code string
	}{
		{"the OAC statement", oac, ""},
		{"not JSON", "Allow everyone", "MalformedPolicy"},
		{"no statement", `{"Version": "2012-10-17"}`, "MalformedPolicy"},
		{"an unknown version", `{"Version": "2020-01-01", "Statement": []}`, "MalformedPolicy"},
		{"an unknown effect", `{"Statement": [{"Effect": "Maybe", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol/*"}]}`, "MalformedPolicy"},
		{"no principal", `{"Statement": [{"Effect": "Allow", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol/*"}]}`, "MalformedPolicy"},
		{"another bucket", `{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "s3:GetObject", "Resource": "arn:aws:s3:::other/*"}]}`, "MalformedPolicy"},
		{"another service's action", `{"Statement": [{"Effect": "Allow", "Principal": {"AWS": "123456789012"}, "Action": "ec2:RunInstances", "Resource": "arn:aws:s3:::pol/*"}]}`, "MalformedPolicy"},
		{"public, while BlockPublicPolicy is on", public, "AccessDenied"},
		{"everyone, with a wildcard source", `{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol/*",
			"Condition": {"ArnLike": {"aws:SourceArn": "arn:aws:cloudfront::*"}}}]}`, "AccessDenied"},
		{"everyone, from one source account", `{"Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::pol/*",
			"Condition": {"StringEquals": {"aws:SourceAccount": "000000000000"}}}]}`, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			_, err := f.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: b, Policy: aws.String(tt.policy)})
			if code(err) != tt.code || (tt.code == "") != (err == nil) {
				t.Fatalf("PutBucketPolicy: %v, want %q", err, tt.code)
			}
		})
	}
	if _, err := f.s3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: b, PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
		BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: aws.Bool(true)}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: b, Policy: aws.String(public)}); err != nil {
		t.Fatalf("a public policy with BlockPublicPolicy off: %v", err)
	}
	st, err := f.s3.GetBucketPolicyStatus(ctx, &s3.GetBucketPolicyStatusInput{Bucket: b})
	if err != nil || !aws.ToBool(st.PolicyStatus.IsPublic) {
		t.Fatalf("GetBucketPolicyStatus: %v", err)
	}
	got, err := f.s3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: b})
	if err != nil || aws.ToString(got.Policy) != public {
		t.Fatalf("GetBucketPolicy: %v %q", err, aws.ToString(got.Policy))
	}
	if _, err := f.s3.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: b}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: b}); code(err) != "NoSuchBucketPolicy" {
		t.Fatalf("after DeleteBucketPolicy: %v", err)
	}
}
