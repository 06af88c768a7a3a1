package localaws_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/localaws"
)

func oacConfig(name string) *cftypes.OriginAccessControlConfig {
	return &cftypes.OriginAccessControlConfig{Name: aws.String(name), SigningProtocol: cftypes.OriginAccessControlSigningProtocolsSigv4,
		SigningBehavior: cftypes.OriginAccessControlSigningBehaviorsAlways, OriginAccessControlOriginType: cftypes.OriginAccessControlOriginTypesS3}
}

// Origin access controls: names unique and at most 64 characters, the
// documented enumerations, ETags on change, no deleting one in use; a
// distribution names only one that exists, and not with an OAI too.
func TestOriginAccessControls(t *testing.T) {
	dir := t.TempDir()
	f := newFixture(t, dir)
	out, err := f.cf.CreateOriginAccessControl(ctx, &cloudfront.CreateOriginAccessControlInput{OriginAccessControlConfig: oacConfig("site")})
	if err != nil {
		t.Fatal(err)
	}
	id, etag := aws.ToString(out.OriginAccessControl.Id), aws.ToString(out.ETag)
	bad := []struct {
		name string
		cfg  *cftypes.OriginAccessControlConfig
		code string
	}{
		{"the same name", oacConfig("site"), "OriginAccessControlAlreadyExists"},
		{"65 characters", oacConfig(strings.Repeat("n", 65)), "InvalidArgument"},
		{"no name", oacConfig(""), "InvalidArgument"},
		{"signing sometimes", func() *cftypes.OriginAccessControlConfig {
			c := oacConfig("x")
			c.SigningBehavior = "sometimes"
			return c
		}(), "MalformedXML"},
		{"SigV2", func() *cftypes.OriginAccessControlConfig { c := oacConfig("y"); c.SigningProtocol = "sigv2"; return c }(), "MalformedXML"},
	}
	for _, tt := range bad {
		if _, err := f.cf.CreateOriginAccessControl(ctx, &cloudfront.CreateOriginAccessControlInput{OriginAccessControlConfig: tt.cfg}); code(err) != tt.code {
			t.Errorf("%s: %v, want %s", tt.name, err, tt.code)
		}
	}
	got, err := f.cf.GetOriginAccessControl(ctx, &cloudfront.GetOriginAccessControlInput{Id: aws.String(id)})
	if err != nil || aws.ToString(got.ETag) != etag || aws.ToString(got.OriginAccessControl.OriginAccessControlConfig.Name) != "site" {
		t.Fatalf("GetOriginAccessControl: %v %+v", err, got)
	}
	if c, err := f.cf.GetOriginAccessControlConfig(ctx, &cloudfront.GetOriginAccessControlConfigInput{Id: aws.String(id)}); err != nil || c.OriginAccessControlConfig.SigningBehavior != "always" {
		t.Fatalf("GetOriginAccessControlConfig: %v", err)
	}
	if _, err := f.cf.GetOriginAccessControl(ctx, &cloudfront.GetOriginAccessControlInput{Id: aws.String("ENOPE")}); code(err) != "NoSuchOriginAccessControl" {
		t.Fatalf("an unknown id: %v", err)
	}
	cfg := oacConfig("site")
	cfg.Description = aws.String("reads the site bucket")
	if _, err := f.cf.UpdateOriginAccessControl(ctx, &cloudfront.UpdateOriginAccessControlInput{Id: aws.String(id), IfMatch: aws.String("stale"), OriginAccessControlConfig: cfg}); code(err) != "PreconditionFailed" {
		t.Fatalf("a stale If-Match: %v", err)
	}
	up, err := f.cf.UpdateOriginAccessControl(ctx, &cloudfront.UpdateOriginAccessControlInput{Id: aws.String(id), IfMatch: aws.String(etag), OriginAccessControlConfig: cfg})
	if err != nil || aws.ToString(up.ETag) == etag {
		t.Fatalf("UpdateOriginAccessControl: %v", err)
	}

	// A distribution with it, then one naming none that exists, then one
	// with an OAI as well.
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("site")}); err != nil {
		t.Fatal(err)
	}
	dc := siteConfig("ref-oac", "site")
	dc.Origins.Items[0].OriginAccessControlId = aws.String(id)
	if _, err := f.cf.CreateDistribution(ctx, &cloudfront.CreateDistributionInput{DistributionConfig: dc}); err != nil {
		t.Fatal(err)
	}
	dc = siteConfig("ref-none", "site")
	dc.Origins.Items[0].OriginAccessControlId = aws.String("ENOSUCHOAC")
	if _, err := f.cf.CreateDistribution(ctx, &cloudfront.CreateDistributionInput{DistributionConfig: dc}); code(err) != "InvalidOriginAccessControl" {
		t.Fatalf("an OAC that does not exist: %v", err)
	}
	dc = siteConfig("ref-both", "site")
	dc.Origins.Items[0].OriginAccessControlId = aws.String(id)
	dc.Origins.Items[0].S3OriginConfig.OriginAccessIdentity = aws.String("origin-access-identity/cloudfront/E1")
	if _, err := f.cf.CreateDistribution(ctx, &cloudfront.CreateDistributionInput{DistributionConfig: dc}); code(err) != "IllegalOriginAccessConfiguration" {
		t.Fatalf("OAC and OAI: %v", err)
	}
	if _, err := f.cf.DeleteOriginAccessControl(ctx, &cloudfront.DeleteOriginAccessControlInput{Id: aws.String(id), IfMatch: up.ETag}); code(err) != "OriginAccessControlInUse" {
		t.Fatalf("deleting one in use: %v", err)
	}

	// Kept across a restart, listed, and deletable once unused.
	f2 := newFixture(t, dir)
	list, err := f2.cf.ListOriginAccessControls(ctx, &cloudfront.ListOriginAccessControlsInput{})
	if err != nil || aws.ToInt32(list.OriginAccessControlList.Quantity) != 1 || aws.ToString(list.OriginAccessControlList.Items[0].Description) != "reads the site bucket" {
		t.Fatalf("ListOriginAccessControls after a restart: %v %+v", err, list)
	}
	other, err := f2.cf.CreateOriginAccessControl(ctx, &cloudfront.CreateOriginAccessControlInput{OriginAccessControlConfig: oacConfig("unused")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f2.cf.DeleteOriginAccessControl(ctx, &cloudfront.DeleteOriginAccessControlInput{Id: other.OriginAccessControl.Id, IfMatch: other.ETag}); err != nil {
		t.Fatalf("deleting an unused one: %v", err)
	}
}

// siteConfig is a distribution config of the kind setup sends.
func siteConfig(ref, bucket string) *cftypes.DistributionConfig {
	return &cftypes.DistributionConfig{
		CallerReference:   aws.String(ref),
		Comment:           aws.String("deploybot site " + bucket),
		Enabled:           aws.Bool(true),
		DefaultRootObject: aws.String("index.html"),
		HttpVersion:       cftypes.HttpVersionHttp2and3,
		PriceClass:        cftypes.PriceClassPriceClass100,
		Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{
			Id: aws.String("s3"), DomainName: aws.String(bucket + ".s3.us-east-1.amazonaws.com"), OriginPath: aws.String(""),
			S3OriginConfig: &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")},
		}}},
		DefaultCacheBehavior: &cftypes.DefaultCacheBehavior{TargetOriginId: aws.String("s3"),
			ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyRedirectToHttps, CachePolicyId: aws.String(localaws.CachingOptimizedID)},
		CustomErrorResponses: &cftypes.CustomErrorResponses{Quantity: aws.Int32(1), Items: []cftypes.CustomErrorResponse{{
			ErrorCode: aws.Int32(404), ResponsePagePath: aws.String("/404.html"), ResponseCode: aws.String("404"), ErrorCachingMinTTL: aws.Int64(10)}}},
	}
}

// The settings setup sends round-trip; tags are kept, changed and listed;
// an unknown cache policy, bad tags and unknown resources are refused.
func TestDistributionSettingsAndTags(t *testing.T) {
	f := newFixture(t, t.TempDir())
	tags := &cftypes.Tags{Items: []cftypes.Tag{{Key: aws.String("deploybot:install"), Value: aws.String("prod")}, {Key: aws.String("deploybot:site"), Value: aws.String("www")}}}
	out, err := f.cf.CreateDistributionWithTags(ctx, &cloudfront.CreateDistributionWithTagsInput{DistributionConfigWithTags: &cftypes.DistributionConfigWithTags{
		DistributionConfig: siteConfig("ref-tags", "site"), Tags: tags}})
	if err != nil {
		t.Fatal(err)
	}
	id, arn := out.Distribution.Id, out.Distribution.ARN
	if !strings.HasPrefix(aws.ToString(arn), "arn:aws:cloudfront::"+localaws.StandInAccount+":distribution/") {
		t.Fatalf("ARN %s", aws.ToString(arn))
	}
	got, err := f.cf.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: id})
	if err != nil {
		t.Fatal(err)
	}
	c := got.DistributionConfig
	if aws.ToString(c.DefaultRootObject) != "index.html" || c.HttpVersion != cftypes.HttpVersionHttp2and3 || c.PriceClass != cftypes.PriceClassPriceClass100 ||
		c.DefaultCacheBehavior.ViewerProtocolPolicy != cftypes.ViewerProtocolPolicyRedirectToHttps || aws.ToString(c.DefaultCacheBehavior.CachePolicyId) != localaws.CachingOptimizedID ||
		aws.ToInt32(c.CustomErrorResponses.Quantity) != 1 || aws.ToString(c.Comment) != "deploybot site site" || !aws.ToBool(c.Enabled) {
		t.Fatalf("round trip: %+v", c)
	}
	list, err := f.cf.ListTagsForResource(ctx, &cloudfront.ListTagsForResourceInput{Resource: arn})
	if err != nil || len(list.Tags.Items) != 2 || aws.ToString(list.Tags.Items[1].Value) != "www" {
		t.Fatalf("ListTagsForResource: %v %+v", err, list)
	}
	if _, err := f.cf.TagResource(ctx, &cloudfront.TagResourceInput{Resource: arn, Tags: &cftypes.Tags{Items: []cftypes.Tag{{Key: aws.String("deploybot:install"), Value: aws.String("staging")}}}}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cf.UntagResource(ctx, &cloudfront.UntagResourceInput{Resource: arn, TagKeys: &cftypes.TagKeys{Items: []string{"deploybot:site"}}}); err != nil {
		t.Fatal(err)
	}
	list, err = f.cf.ListTagsForResource(ctx, &cloudfront.ListTagsForResourceInput{Resource: arn})
	if err != nil || len(list.Tags.Items) != 1 || aws.ToString(list.Tags.Items[0].Value) != "staging" {
		t.Fatalf("after TagResource and UntagResource: %v %+v", err, list)
	}
	// Tags survive an update.
	if _, err := f.cf.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: id, IfMatch: got.ETag, DistributionConfig: c}); err != nil {
		t.Fatal(err)
	}
	if list, _ = f.cf.ListTagsForResource(ctx, &cloudfront.ListTagsForResourceInput{Resource: arn}); len(list.Tags.Items) != 1 {
		t.Fatalf("tags after an update: %+v", list.Tags)
	}

	refused := []struct {
		name   string
		change func(*cftypes.DistributionConfig)
		code   string
	}{
		{"an unknown cache policy", func(c *cftypes.DistributionConfig) {
			c.DefaultCacheBehavior.CachePolicyId = aws.String("00000000-0000-0000-0000-000000000000")
		}, "NoSuchCachePolicy"},
		{"CachingDisabled", func(c *cftypes.DistributionConfig) {
			c.DefaultCacheBehavior.CachePolicyId = aws.String(localaws.CachingDisabledID)
		}, ""},
		{"HTTP/4", func(c *cftypes.DistributionConfig) { c.HttpVersion = "http4" }, "MalformedXML"},
		{"a price class", func(c *cftypes.DistributionConfig) { c.PriceClass = "PriceClass_1" }, "MalformedXML"},
		{"a viewer protocol policy", func(c *cftypes.DistributionConfig) { c.DefaultCacheBehavior.ViewerProtocolPolicy = "https-please" }, "MalformedXML"},
	}
	for i, tt := range refused {
		dc := siteConfig("ref-"+string(rune('a'+i)), "site")
		tt.change(dc)
		_, err := f.cf.CreateDistribution(ctx, &cloudfront.CreateDistributionInput{DistributionConfig: dc})
		if code(err) != tt.code || (tt.code == "") != (err == nil) {
			t.Errorf("%s: %v, want %q", tt.name, err, tt.code)
		}
	}
	for _, tag := range []cftypes.Tag{{Key: aws.String(""), Value: aws.String("v")}, {Key: aws.String("aws:site"), Value: aws.String("v")},
		{Key: aws.String("k"), Value: aws.String("semi;colon")}, {Key: aws.String(strings.Repeat("k", 129)), Value: aws.String("v")}} {
		if _, err := f.cf.TagResource(ctx, &cloudfront.TagResourceInput{Resource: arn, Tags: &cftypes.Tags{Items: []cftypes.Tag{tag}}}); code(err) != "InvalidTagging" {
			t.Errorf("tag %q=%q: %v", aws.ToString(tag.Key), aws.ToString(tag.Value), err)
		}
	}
	if _, err := f.cf.ListTagsForResource(ctx, &cloudfront.ListTagsForResourceInput{Resource: aws.String("arn:aws:cloudfront::000000000000:distribution/ENOPE")}); code(err) != "NoSuchResource" {
		t.Fatalf("tags of no distribution: %v", err)
	}
	// The list's summaries carry the settings.
	ds, err := f.cf.ListDistributions(ctx, &cloudfront.ListDistributionsInput{})
	if err != nil || ds.DistributionList.Items[0].DefaultCacheBehavior == nil || ds.DistributionList.Items[0].HttpVersion == "" {
		t.Fatalf("ListDistributions: %v", err)
	}
}

// Lambda@Edge associations round-trip; CloudFront refuses a function
// and a Lambda@Edge function in the viewer events of one behaviour,
// $LATEST, and functions outside us-east-1.
func TestLambdaEdgeAssociations(t *testing.T) {
	f := newFixture(t, t.TempDir())
	fn, err := f.cf.CreateFunction(ctx, &cloudfront.CreateFunctionInput{Name: aws.String("rewrite"), FunctionCode: []byte("function handler(event) { return event.request; }"),
		FunctionConfig: &cftypes.FunctionConfig{Comment: aws.String(""), Runtime: cftypes.FunctionRuntimeCloudfrontJs20}})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cf.PublishFunction(ctx, &cloudfront.PublishFunctionInput{Name: aws.String("rewrite"), IfMatch: fn.ETag}); err != nil {
		t.Fatal(err)
	}
	fnARN := fn.FunctionSummary.FunctionMetadata.FunctionARN
	if !strings.Contains(aws.ToString(fnARN), "::"+localaws.StandInAccount+":") {
		t.Fatalf("function ARN %s", aws.ToString(fnARN))
	}
	const edge = "arn:aws:lambda:us-east-1:000000000000:function:auth:3"
	lambda := func(arn string, event cftypes.EventType) *cftypes.LambdaFunctionAssociations {
		return &cftypes.LambdaFunctionAssociations{Quantity: aws.Int32(1), Items: []cftypes.LambdaFunctionAssociation{{LambdaFunctionARN: aws.String(arn), EventType: event}}}
	}
	function := func(event cftypes.EventType) *cftypes.FunctionAssociations {
		return &cftypes.FunctionAssociations{Quantity: aws.Int32(1), Items: []cftypes.FunctionAssociation{{FunctionARN: fnARN, EventType: event}}}
	}
	tests := []struct {
		name   string
		lambda *cftypes.LambdaFunctionAssociations
		fn     *cftypes.FunctionAssociations
		code   string
	}{
		{"origin-request Lambda, viewer-request function", lambda(edge, cftypes.EventTypeOriginRequest), function(cftypes.EventTypeViewerRequest), ""},
		{"viewer-request Lambda alone", lambda(edge, cftypes.EventTypeViewerRequest), nil, ""},
		{"both on viewer-request", lambda(edge, cftypes.EventTypeViewerRequest), function(cftypes.EventTypeViewerRequest), "InvalidFunctionAssociation"},
		{"viewer-response Lambda, viewer-request function", lambda(edge, cftypes.EventTypeViewerResponse), function(cftypes.EventTypeViewerRequest), "InvalidFunctionAssociation"},
		{"$LATEST", lambda("arn:aws:lambda:us-east-1:000000000000:function:auth:$LATEST", cftypes.EventTypeOriginRequest), nil, "InvalidLambdaFunctionAssociation"},
		{"unversioned", lambda("arn:aws:lambda:us-east-1:000000000000:function:auth", cftypes.EventTypeOriginRequest), nil, "InvalidLambdaFunctionAssociation"},
		{"eu-west-1", lambda("arn:aws:lambda:eu-west-1:000000000000:function:auth:3", cftypes.EventTypeOriginRequest), nil, "InvalidLambdaFunctionAssociation"},
	}
	for i, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			dc := siteConfig("ref-l"+string(rune('a'+i)), "site")
			dc.DefaultCacheBehavior.LambdaFunctionAssociations = tt.lambda
			dc.DefaultCacheBehavior.FunctionAssociations = tt.fn
			out, err := f.cf.CreateDistribution(ctx, &cloudfront.CreateDistributionInput{DistributionConfig: dc})
			if code(err) != tt.code || (tt.code == "") != (err == nil) {
				t.Fatalf("CreateDistribution: %v, want %q", err, tt.code)
			}
			if err != nil {
				return
			}
			got, err := f.cf.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: out.Distribution.Id})
			if err != nil {
				t.Fatal(err)
			}
			la := got.DistributionConfig.DefaultCacheBehavior.LambdaFunctionAssociations
			if la == nil || len(la.Items) != 1 || aws.ToString(la.Items[0].LambdaFunctionARN) != edge || la.Items[0].EventType != tt.lambda.Items[0].EventType {
				t.Fatalf("Lambda@Edge association round trip: %+v", la)
			}
		})
	}
}

// The edge reads a bucket as S3 lets CloudFront: through an OAC as the
// distribution the bucket policy names, otherwise anonymously; a Deny
// wins; a bucket that does not exist is 404; a regional domain name of
// another region is 400.
func TestEdgeOriginAccess(t *testing.T) {
	f := newEdgeFixture(t, 1)
	site := aws.String("site")
	// Each read is of a new key, so that none is answered from the cache.
	n := 0
	get := func() int {
		n++
		key := fmt.Sprintf("p%d.html", n)
		f.put(t, key, "hello", "")
		c, _, _ := f.get(t, 0, "/"+key)
		return c
	}
	if c := get(); c != 200 {
		t.Fatalf("EnsureSite's site: %d", c)
	}
	d, err := f.cf.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String("EDGE1")})
	if err != nil {
		t.Fatal(err)
	}
	distARN := aws.ToString(d.Distribution.ARN)
	policy := func(p string) {
		t.Helper()
		if _, err := f.s3.PutBucketPolicy(ctx, &s3.PutBucketPolicyInput{Bucket: site, Policy: aws.String(p)}); err != nil {
			t.Fatal(err)
		}
	}
	steps := []struct {
		name string
		do   func()
		want int
	}{
		{"another distribution's grant", func() {
			p, _, _ := localaws.GrantDistributionRead("", "site", "arn:aws:cloudfront::000000000000:distribution/EOTHER")
			policy(p)
		}, 403},
		{"a wildcard action and resource", func() {
			policy(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:Get*",
				"Resource": "arn:aws:s3:::site/*", "Condition": {"ArnLike": {"AWS:SourceArn": "arn:aws:cloudfront::000000000000:distribution/*"}}}]}`)
		}, 200},
		{"a Deny besides", func() {
			policy(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": {"Service": "cloudfront.amazonaws.com"}, "Action": "s3:GetObject",
				"Resource": "arn:aws:s3:::site/*", "Condition": {"StringEquals": {"AWS:SourceArn": "` + distARN + `"}}},
				{"Effect": "Deny", "Principal": "*", "Action": "s3:*", "Resource": "arn:aws:s3:::site/*"}]}`)
		}, 403},
		{"no policy", func() {
			if _, err := f.s3.DeleteBucketPolicy(ctx, &s3.DeleteBucketPolicyInput{Bucket: site}); err != nil {
				t.Fatal(err)
			}
		}, 403},
		{"the OAC grant again", func() { p, _, _ := localaws.GrantDistributionRead("", "site", distARN); policy(p) }, 200},
		{"the origin without its OAC reads anonymously", func() {
			f.update(t, func(c *cftypes.DistributionConfig) { c.Origins.Items[0].OriginAccessControlId = nil })
		}, 403},
		{"a public policy, RestrictPublicBuckets still on", func() {
			if _, err := f.s3.PutPublicAccessBlock(ctx, &s3.PutPublicAccessBlockInput{Bucket: site, PublicAccessBlockConfiguration: &s3types.PublicAccessBlockConfiguration{
				BlockPublicAcls: aws.Bool(true), IgnorePublicAcls: aws.Bool(true), BlockPublicPolicy: aws.Bool(false), RestrictPublicBuckets: aws.Bool(true)}}); err != nil {
				t.Fatal(err)
			}
			policy(`{"Version": "2012-10-17", "Statement": [{"Effect": "Allow", "Principal": "*", "Action": "s3:GetObject", "Resource": "arn:aws:s3:::site/*"}]}`)
		}, 403},
		{"RestrictPublicBuckets off", func() {
			if _, err := f.s3.DeletePublicAccessBlock(ctx, &s3.DeletePublicAccessBlockInput{Bucket: site}); err != nil {
				t.Fatal(err)
			}
		}, 200},
		{"a domain name of a bucket that does not exist", func() {
			f.update(t, func(c *cftypes.DistributionConfig) {
				c.Origins.Items[0].DomainName = aws.String("gone.s3.us-east-1.amazonaws.com")
			})
		}, 404},
	}
	for _, st := range steps {
		st.do()
		if c := get(); c != st.want {
			t.Fatalf("%s: %d, want %d", st.name, c, st.want)
		}
	}
	// Signed for eu-west-1, read from a us-east-1 bucket.
	f.update(t, func(c *cftypes.DistributionConfig) {
		c.Origins.Items[0].DomainName = aws.String("site.s3.eu-west-1.amazonaws.com")
		c.Origins.Items[0].OriginAccessControlId = d.Distribution.DistributionConfig.Origins.Items[0].OriginAccessControlId
	})
	f.put(t, "region.html", "hello", "")
	if c, b, _ := f.get(t, 0, "/region.html"); c != 400 || !strings.Contains(b, "AuthorizationHeaderMalformed") {
		t.Fatalf("another region's domain name: %d %s", c, b)
	}
}

// KeyValueStores made through the CloudFront API: names unique, ETags,
// usable by the data plane and by functions, which can name only stores
// that exist; one in use cannot be deleted.
func TestKeyValueStoreControlPlane(t *testing.T) {
	f := newFixture(t, t.TempDir())
	out, err := f.cf.CreateKeyValueStore(ctx, &cloudfront.CreateKeyValueStoreInput{Name: aws.String("sites"), Comment: aws.String("deploybot")})
	if err != nil {
		t.Fatal(err)
	}
	arn := aws.ToString(out.KeyValueStore.ARN)
	if out.KeyValueStore.Status == nil || aws.ToString(out.KeyValueStore.Status) != "READY" || !strings.HasPrefix(arn, "arn:aws:cloudfront::"+localaws.StandInAccount+":key-value-store/") {
		t.Fatalf("CreateKeyValueStore: %+v", out.KeyValueStore)
	}
	if _, err := f.cf.CreateKeyValueStore(ctx, &cloudfront.CreateKeyValueStoreInput{Name: aws.String("sites")}); code(err) != "EntityAlreadyExists" {
		t.Fatalf("the same name: %v", err)
	}
	if _, err := f.cf.CreateKeyValueStore(ctx, &cloudfront.CreateKeyValueStoreInput{Name: aws.String("no spaces")}); code(err) != "InvalidArgument" {
		t.Fatalf("a bad name: %v", err)
	}
	desc, err := f.cf.DescribeKeyValueStore(ctx, &cloudfront.DescribeKeyValueStoreInput{Name: aws.String("sites")})
	if err != nil || aws.ToString(desc.ETag) == "" || aws.ToString(desc.KeyValueStore.ARN) != arn {
		t.Fatalf("DescribeKeyValueStore: %v %+v", err, desc)
	}
	if _, err := f.cf.DescribeKeyValueStore(ctx, &cloudfront.DescribeKeyValueStoreInput{Name: aws.String("nope")}); code(err) != "EntityNotFound" {
		t.Fatalf("an unknown store: %v", err)
	}
	list, err := f.cf.ListKeyValueStores(ctx, &cloudfront.ListKeyValueStoresInput{})
	if err != nil || len(list.KeyValueStoreList.Items) != 1 {
		t.Fatalf("ListKeyValueStores: %v", err)
	}

	// The data plane knows it.
	kvc, err := cloud.NewKVSClient(ctx, cloud.Settings{Region: "us-east-1", Endpoint: f.api.URL, Credentials: cloud.StaticCredentials("AKID", "secret"), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	d, err := kvc.DescribeKeyValueStore(ctx, &cloudfrontkeyvaluestore.DescribeKeyValueStoreInput{KvsARN: aws.String(arn)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := kvc.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(arn), Key: aws.String("www"), Value: aws.String("v1"), IfMatch: d.ETag}); err != nil {
		t.Fatal(err)
	}

	// Functions name stores that exist.
	code2 := []byte("import cf from 'cloudfront';\nasync function handler(event) { return event.request; }")
	cfgFor := func(store string) *cftypes.FunctionConfig {
		return &cftypes.FunctionConfig{Comment: aws.String(""), Runtime: cftypes.FunctionRuntimeCloudfrontJs20,
			KeyValueStoreAssociations: &cftypes.KeyValueStoreAssociations{Quantity: aws.Int32(1), Items: []cftypes.KeyValueStoreAssociation{{KeyValueStoreARN: aws.String(store)}}}}
	}
	if _, err := f.cf.CreateFunction(ctx, &cloudfront.CreateFunctionInput{Name: aws.String("ghost"), FunctionCode: code2,
		FunctionConfig: cfgFor("arn:aws:cloudfront::000000000000:key-value-store/00000000-0000-4000-8000-000000000000")}); code(err) != "InvalidArgument" {
		t.Fatalf("a function with a store that does not exist: %v", err)
	}
	if _, err := f.cf.CreateFunction(ctx, &cloudfront.CreateFunctionInput{Name: aws.String("router"), FunctionCode: code2, FunctionConfig: cfgFor(arn)}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.cf.DeleteKeyValueStore(ctx, &cloudfront.DeleteKeyValueStoreInput{Name: aws.String("sites"), IfMatch: aws.String("stale")}); code(err) != "PreconditionFailed" {
		t.Fatalf("a stale If-Match: %v", err)
	}
	if _, err := f.cf.DeleteKeyValueStore(ctx, &cloudfront.DeleteKeyValueStoreInput{Name: aws.String("sites"), IfMatch: desc.ETag}); code(err) != "CannotDeleteEntityWhileInUse" {
		t.Fatalf("deleting a store a function uses: %v", err)
	}
	other, err := f.cf.CreateKeyValueStore(ctx, &cloudfront.CreateKeyValueStoreInput{Name: aws.String("spare")})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := f.cf.DeleteKeyValueStore(ctx, &cloudfront.DeleteKeyValueStoreInput{Name: aws.String("spare"), IfMatch: other.ETag}); err != nil {
		t.Fatalf("deleting an unused store: %v", err)
	}
	// EnsureKVS finds a store made through the API by its name.
	if got, err := f.srv.EnsureKVS("sites"); err != nil || got != arn {
		t.Fatalf("EnsureKVS: %v %s", err, got)
	}
}
