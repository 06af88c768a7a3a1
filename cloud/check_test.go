package cloud_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// setUpSite is a site that setup made, in an account of its own.
func setUpSite(t *testing.T, region, strategy string) (*account, releases.Site) {
	t.Helper()
	a := newAccount(t)
	if region != "us-east-1" {
		a.st.Region = region
		var err error
		if a.s3, a.cf, err = cloud.NewClients(context.Background(), a.st); err != nil {
			t.Fatal(err)
		}
	}
	site := releases.Site{Name: "www", Install: "test", Bucket: "checked-site", Prefix: "www/", Strategy: strategy, Routing: releases.DefaultRouting}
	su := a.setup()
	su.Region = region
	rep, err := su.Apply(context.Background(), site)
	if err != nil {
		t.Fatal(err)
	}
	site.DistributionID, site.KVSARN = rep.Record["distribution_id"], rep.Record["kvs.arn"]
	return a, site
}

func check(t *testing.T, a *account, site releases.Site) []cloud.Finding {
	t.Helper()
	fs, err := (&cloud.Checker{S3: a.s3, CF: a.cf, Region: a.st.Region}).Check(context.Background(), site)
	if err != nil {
		t.Fatal(err)
	}
	return fs
}

// failed is the failures' text, what and fix.
func failed(fs []cloud.Finding) string {
	var out []string
	for _, f := range fs {
		if f.Level == cloud.CheckFail {
			out = append(out, f.Check+": "+f.What+" | fix: "+f.Fix)
		}
	}
	return strings.Join(out, "\n")
}

func changeDist(t *testing.T, a *account, id string, change func(*cftypes.DistributionConfig)) {
	t.Helper()
	ctx := context.Background()
	dc, err := a.cf.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(id)})
	if err != nil {
		t.Fatal(err)
	}
	change(dc.DistributionConfig)
	if _, err := a.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(id), IfMatch: dc.ETag, DistributionConfig: dc.DistributionConfig}); err != nil {
		t.Fatal(err)
	}
}

// check passes on what setup made, then fails, naming the fix, on each
// way a real account goes wrong.
func TestCheckNamesTheFix(t *testing.T) {
	for _, tc := range []struct {
		name     string
		region   string
		strategy string
		breakIt  func(t *testing.T, a *account, site *releases.Site)
		want     []string // in the failures' text
	}{
		{"wrong bucket", "us-east-1", releases.DefaultStrategy, func(t *testing.T, a *account, site *releases.Site) {
			if _, err := a.s3.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("checked-site-typo")}); err != nil {
				t.Fatal(err)
			}
			site.Bucket = "checked-site-typo"
		}, []string{"reads bucket checked-site", "configuration's bucket is checked-site-typo", "fix sites[].bucket"}},
		{"missing origin access control", "us-east-1", releases.DefaultStrategy, func(t *testing.T, a *account, site *releases.Site) {
			changeDist(t, a, site.DistributionID, func(dc *cftypes.DistributionConfig) { dc.Origins.Items[0].OriginAccessControlId = aws.String("") })
		}, []string{"has no origin access control", "deploybot setup --site www --apply"}},
		{"bucket in another region", "eu-west-1", releases.DefaultStrategy, func(t *testing.T, a *account, site *releases.Site) {
			changeDist(t, a, site.DistributionID, func(dc *cftypes.DistributionConfig) {
				dc.Origins.Items[0].DomainName = aws.String("checked-site.s3.us-east-1.amazonaws.com")
			})
		}, []string{"an endpoint in us-east-1, but bucket checked-site is in eu-west-1", "checked-site.s3.eu-west-1.amazonaws.com"}},
		{"lambda@edge on a viewer event", "us-east-1", cloud.StrategyKVS, func(t *testing.T, a *account, site *releases.Site) {
			changeDist(t, a, site.DistributionID, func(dc *cftypes.DistributionConfig) {
				// A Lambda@Edge function in place of the site's
				// functions on the viewer events.
				dc.DefaultCacheBehavior.FunctionAssociations = nil
				dc.DefaultCacheBehavior.LambdaFunctionAssociations = &cftypes.LambdaFunctionAssociations{Quantity: aws.Int32(1), Items: []cftypes.LambdaFunctionAssociation{{
					EventType: cftypes.EventTypeViewerResponse, LambdaFunctionARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:headers:3")}}}
			})
		}, []string{"runs Lambda@Edge function arn:aws:lambda:us-east-1:123456789012:function:headers:3 on viewer-response", "move the Lambda@Edge function to an origin event"}},
		{"functions from an older version", "us-east-1", cloud.StrategyKVS, func(t *testing.T, a *account, site *releases.Site) {
			ctx := context.Background()
			name := cloud.FunctionName(*site)
			fn, err := a.cf.DescribeFunction(ctx, &cloudfront.DescribeFunctionInput{Name: aws.String(name), Stage: cftypes.FunctionStageDevelopment})
			if err != nil {
				t.Fatal(err)
			}
			code, err := a.cf.GetFunction(ctx, &cloudfront.GetFunctionInput{Name: aws.String(name), Stage: cftypes.FunctionStageLive})
			if err != nil {
				t.Fatal(err)
			}
			old := strings.Replace(string(code.FunctionCode), "function handler", "// an older version\nfunction handler", 1)
			up, err := a.cf.UpdateFunction(ctx, &cloudfront.UpdateFunctionInput{Name: aws.String(name), IfMatch: fn.ETag, FunctionCode: []byte(old), FunctionConfig: fn.FunctionSummary.FunctionConfig})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.cf.PublishFunction(ctx, &cloudfront.PublishFunctionInput{Name: aws.String(name), IfMatch: up.ETag}); err != nil {
				t.Fatal(err)
			}
		}, []string{"published code of function test-www is not what this version of deploybot generates", "deploybot kvs-setup --site www --apply"}},
		{"viewer-response function without the cohort cookie", "us-east-1", cloud.StrategyKVS, func(t *testing.T, a *account, site *releases.Site) {
			// What an origin-path site runs (or a version before rolling
			// releases): answers name their release, visitors get no
			// cohort.
			ctx := context.Background()
			name := cloud.ReleaseHeaderName(*site)
			op := *site
			op.Strategy = releases.DefaultStrategy
			old, err := cloud.ReleaseHeaderCode(op)
			if err != nil {
				t.Fatal(err)
			}
			fn, err := a.cf.DescribeFunction(ctx, &cloudfront.DescribeFunctionInput{Name: aws.String(name), Stage: cftypes.FunctionStageDevelopment})
			if err != nil {
				t.Fatal(err)
			}
			up, err := a.cf.UpdateFunction(ctx, &cloudfront.UpdateFunctionInput{Name: aws.String(name), IfMatch: fn.ETag, FunctionCode: []byte(old), FunctionConfig: fn.FunctionSummary.FunctionConfig})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := a.cf.PublishFunction(ctx, &cloudfront.PublishFunctionInput{Name: aws.String(name), IfMatch: up.ETag}); err != nil {
				t.Fatal(err)
			}
		}, []string{"published code of function test-www-release is not what this version of deploybot generates", "deploybot kvs-setup --site www --apply"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			a, site := setUpSite(t, tc.region, tc.strategy)
			if fs := check(t, a, site); cloud.Failed(fs) {
				t.Fatalf("check fails on what setup made:\n%s", failed(fs))
			}
			tc.breakIt(t, a, &site)
			got := failed(check(t, a, site))
			for _, w := range tc.want {
				if !strings.Contains(got, w) {
					t.Fatalf("check's failures lack %q:\n%s", w, got)
				}
			}
		})
	}
}

// Setup refuses, before it changes anything, to put a function on a
// viewer event a Lambda@Edge function holds, rather than failing inside
// UpdateDistribution with CloudFront's error.
func TestSetupRefusesALambdaOnAViewerEvent(t *testing.T) {
	a, site := setUpSite(t, "us-east-1", releases.DefaultStrategy)
	changeDist(t, a, site.DistributionID, func(dc *cftypes.DistributionConfig) {
		dc.DefaultCacheBehavior.FunctionAssociations = nil
		dc.DefaultCacheBehavior.LambdaFunctionAssociations = &cftypes.LambdaFunctionAssociations{Quantity: aws.Int32(1), Items: []cftypes.LambdaFunctionAssociation{{
			EventType: cftypes.EventTypeViewerRequest, LambdaFunctionARN: aws.String("arn:aws:lambda:us-east-1:123456789012:function:auth:1")}}}
	})
	_, err := a.setup().Apply(context.Background(), site)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "runs Lambda@Edge function arn:aws:lambda:us-east-1:123456789012:function:auth:1 on viewer-request") {
		t.Fatalf("setup over a Lambda@Edge function on viewer requests: %v", err)
	}
}

// check called from aws.region us-east-1 on a bucket in eu-west-1 (as the
// doors call it, through NewRegionalS3): it follows S3's redirect, names
// the bucket's region, and passes.
func TestCheckABucketInAnotherRegionThanTheClient(t *testing.T) {
	a, site := setUpSite(t, "eu-west-1", releases.DefaultStrategy)
	east := a.st
	east.Region = "us-east-1"
	s3c, _, err := cloud.NewClients(context.Background(), east)
	if err != nil {
		t.Fatal(err)
	}
	fs, err := (&cloud.Checker{S3: cloud.NewRegionalS3(s3c), CF: a.cf, Region: "us-east-1"}).Check(context.Background(), site)
	if err != nil || cloud.Failed(fs) {
		t.Fatalf("check from us-east-1: %v\n%s", err, failed(fs))
	}
	if !strings.Contains(fmt.Sprint(fs), "exists, in eu-west-1") {
		t.Fatalf("check does not name the bucket's region: %+v", fs)
	}
}
