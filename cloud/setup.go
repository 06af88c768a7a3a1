package cloud

import (
	"context"
	"errors"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/releases"
)

// This file is deploybot setup: a site's AWS side, from an empty account,
// planned and then applied. Each resource is read first, and setup adopts
// what is there; what it creates carries the site's install name. It
// never changes the live origin path or key (a deploy's job), and never
// touches a bucket or distribution the configuration does not name or
// that it did not create.
//
// Order, so that no step leaves visitors worse off: the bucket and its
// settings; the origin access control; the distribution; the bucket
// policy that lets the distribution read (before an adopted distribution
// is switched to the OAC, so the switch never answers 403); the key value
// store; the functions (kvs-setup or routing-setup, which setup calls).

// SetupS3API is the part of the S3 client setup uses.
type SetupS3API interface {
	BucketHeader
	CreateBucket(ctx context.Context, in *s3.CreateBucketInput, optFns ...func(*s3.Options)) (*s3.CreateBucketOutput, error)
	GetPublicAccessBlock(ctx context.Context, in *s3.GetPublicAccessBlockInput, optFns ...func(*s3.Options)) (*s3.GetPublicAccessBlockOutput, error)
	PutPublicAccessBlock(ctx context.Context, in *s3.PutPublicAccessBlockInput, optFns ...func(*s3.Options)) (*s3.PutPublicAccessBlockOutput, error)
	GetBucketOwnershipControls(ctx context.Context, in *s3.GetBucketOwnershipControlsInput, optFns ...func(*s3.Options)) (*s3.GetBucketOwnershipControlsOutput, error)
	PutBucketOwnershipControls(ctx context.Context, in *s3.PutBucketOwnershipControlsInput, optFns ...func(*s3.Options)) (*s3.PutBucketOwnershipControlsOutput, error)
	GetBucketEncryption(ctx context.Context, in *s3.GetBucketEncryptionInput, optFns ...func(*s3.Options)) (*s3.GetBucketEncryptionOutput, error)
	PutBucketEncryption(ctx context.Context, in *s3.PutBucketEncryptionInput, optFns ...func(*s3.Options)) (*s3.PutBucketEncryptionOutput, error)
	GetBucketPolicy(ctx context.Context, in *s3.GetBucketPolicyInput, optFns ...func(*s3.Options)) (*s3.GetBucketPolicyOutput, error)
	PutBucketPolicy(ctx context.Context, in *s3.PutBucketPolicyInput, optFns ...func(*s3.Options)) (*s3.PutBucketPolicyOutput, error)
}

var _ SetupS3API = (*s3.Client)(nil)

// SetupCFAPI is the part of the CloudFront client setup uses, beyond what
// the function setups use.
type SetupCFAPI interface {
	FunctionsAPI
	ListOriginAccessControls(ctx context.Context, in *cloudfront.ListOriginAccessControlsInput, optFns ...func(*cloudfront.Options)) (*cloudfront.ListOriginAccessControlsOutput, error)
	CreateOriginAccessControl(ctx context.Context, in *cloudfront.CreateOriginAccessControlInput, optFns ...func(*cloudfront.Options)) (*cloudfront.CreateOriginAccessControlOutput, error)
	GetOriginAccessControl(ctx context.Context, in *cloudfront.GetOriginAccessControlInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetOriginAccessControlOutput, error)
	ListDistributions(ctx context.Context, in *cloudfront.ListDistributionsInput, optFns ...func(*cloudfront.Options)) (*cloudfront.ListDistributionsOutput, error)
	CreateDistributionWithTags(ctx context.Context, in *cloudfront.CreateDistributionWithTagsInput, optFns ...func(*cloudfront.Options)) (*cloudfront.CreateDistributionWithTagsOutput, error)
	CreateKeyValueStore(ctx context.Context, in *cloudfront.CreateKeyValueStoreInput, optFns ...func(*cloudfront.Options)) (*cloudfront.CreateKeyValueStoreOutput, error)
	DescribeKeyValueStore(ctx context.Context, in *cloudfront.DescribeKeyValueStoreInput, optFns ...func(*cloudfront.Options)) (*cloudfront.DescribeKeyValueStoreOutput, error)
}

var _ SetupCFAPI = (*cloudfront.Client)(nil)

// Setup plans and applies a site's AWS side.
type Setup struct {
	S3 SetupS3API
	CF SetupCFAPI
	// KVS writes and reads the key of a kvs site (kvs-setup's client).
	KVS KVSAPI
	// Pages copies the live 404 page (kvs-setup's).
	Pages LivePager
	// Region is where a missing bucket is created (aws.region).
	Region string
	// PollInterval paces the waits for a distribution to deploy; zero:
	// MaxPollInterval.
	PollInterval time.Duration
	// Progress, when set, hears each step as --apply takes it.
	Progress func(SetupStep)
}

// Setup actions: what a step found or would do.
const (
	SetupOK     = "ok"     // there and as setup would make it
	SetupCreate = "create" // missing: setup creates it
	SetupChange = "change" // there, but setup changes it
	SetupAdopt  = "adopt"  // there, not made by setup, and taken as it is
)

// SetupStep is one resource: what setup found, what it does about it, and
// why.
type SetupStep struct {
	Resource string `json:"resource"`
	Action   string `json:"action"`
	What     string `json:"what"`
	Why      string `json:"why,omitempty"`
}

// SetupReport is a plan (Applied false) or what --apply did.
type SetupReport struct {
	Site    string      `json:"site"`
	Applied bool        `json:"applied"`
	Steps   []SetupStep `json:"steps"`
	// Region is the bucket's region (where it is, or will be created).
	Region string `json:"region"`
	// DistributionID, DistributionARN and Domain name the site's
	// distribution ("" in a plan that would create it).
	DistributionID  string `json:"distribution_id"`
	DistributionARN string `json:"distribution_arn"`
	Domain          string `json:"domain"`
	// KVSARN is a kvs site's store ("" in a plan that would create it).
	KVSARN string `json:"kvs_arn,omitempty"`
	// Record lists the configuration keys whose values setup learnt (the
	// ids it created or found) and the configuration lacks, with them.
	Record map[string]string `json:"record,omitempty"`
}

// Changes counts the steps that create or change something.
func (r *SetupReport) Changes() int {
	n := 0
	for _, s := range r.Steps {
		if s.Action == SetupCreate || s.Action == SetupChange {
			n++
		}
	}
	return n
}

// setupRun is one Plan or Apply: the site as setup learns its ids.
type setupRun struct {
	*Setup
	apply bool
	site  releases.Site
	rep   *SetupReport
	s3opt []func(*s3.Options)
	// newBucket: this run creates the bucket (a plan that would, an
	// apply that did), so its settings and policy are S3's defaults.
	newBucket bool
	oacID     string
	dist      *cftypes.DistributionConfig
	etag      *string
	origin    string // the site's origin id in dist
}

// Plan reads everything and says what Apply would do; it changes nothing.
func (s *Setup) Plan(ctx context.Context, site releases.Site) (*SetupReport, error) {
	return s.run(ctx, site, false)
}

// Apply makes the site's AWS side what the plan says, step by step; run
// again, it changes nothing. The report's Record holds the ids the
// configuration should keep.
func (s *Setup) Apply(ctx context.Context, site releases.Site) (*SetupReport, error) {
	return s.run(ctx, site, true)
}

func (s *Setup) run(ctx context.Context, site releases.Site, apply bool) (*SetupReport, error) {
	r := &setupRun{Setup: s, apply: apply, site: site, rep: &SetupReport{Site: site.Name, Applied: apply, Record: map[string]string{}}}
	for _, step := range []func(context.Context) error{r.bucket, r.bucketSettings, r.accessControl, r.distribution, r.bucketPolicy, r.attachAccessControl, r.keyValueStore, r.functions} {
		if err := step(ctx); err != nil {
			return r.rep, err
		}
	}
	if len(r.rep.Record) == 0 {
		r.rep.Record = nil
	}
	return r.rep, nil
}

// step records one resource's outcome and, applying, tells Progress.
func (r *setupRun) step(resource, action, what, why string) {
	st := SetupStep{Resource: resource, Action: action, What: what, Why: why}
	r.rep.Steps = append(r.rep.Steps, st)
	if r.apply && r.Progress != nil {
		r.Progress(st)
	}
}

func (r *setupRun) bucket(ctx context.Context) error {
	name := "bucket " + r.site.Bucket
	st, err := HeadBucket(ctx, r.S3, r.site.Bucket)
	if err != nil {
		return err
	}
	if err := bucketProblem(r.site, st); err != nil {
		return err
	}
	if st.Exists {
		r.rep.Region = st.Region
		if st.Region != r.Region {
			r.s3opt = regionOpt(st.Region)
		}
		r.step(name, SetupAdopt, fmt.Sprintf("exists, in %s", orUnknown(st.Region)), "sites[].bucket names it")
		return nil
	}
	r.rep.Region, r.newBucket = r.Region, true
	r.step(name, SetupCreate, "create it in "+r.Region, "sites[].bucket names it and it does not exist")
	if !r.apply {
		return nil
	}
	in := &s3.CreateBucketInput{Bucket: aws.String(r.site.Bucket)}
	// us-east-1 takes no location constraint
	// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_CreateBucket.html).
	if r.Region != "us-east-1" {
		in.CreateBucketConfiguration = &s3types.CreateBucketConfiguration{LocationConstraint: s3types.BucketLocationConstraint(r.Region)}
	}
	_, err = r.S3.CreateBucket(ctx, in)
	var owned *s3types.BucketAlreadyOwnedByYou
	var taken *s3types.BucketAlreadyExists
	switch {
	case errors.As(err, &owned):
	case errors.As(err, &taken):
		return releases.Errorf(releases.ECONFLICT, "bucket %s (sites[].bucket of site %s) belongs to another AWS account: bucket names are global; choose another", r.site.Bucket, r.site.Name)
	case err != nil:
		return awsProblem(fmt.Sprintf("creating bucket %s", r.site.Bucket), "s3:CreateBucket", err)
	}
	return nil
}

func orUnknown(s string) string {
	if s == "" {
		return "an unknown region"
	}
	return s
}
