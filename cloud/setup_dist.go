package cloud

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/releases"
)

// CachingOptimized is the id of CloudFront's managed cache policy for S3
// origins
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/using-managed-cache-policies.html):
// no cookies, headers or query strings in the cache key, gzip and
// Brotli, a day's default TTL. Every flip invalidates (origin-path) or
// changes the cache key (kvs), so a long TTL never serves a stale release.
const CachingOptimized = "658327ea-f89d-4fab-a63d-7e88639e58f6"

// SetupOriginID is the origin id of a distribution setup creates.
const SetupOriginID = "deploybot-s3"

// Tags setup puts on what it creates, so people see whose it is.
const (
	TagInstall = "deploybot:install"
	TagSite    = "deploybot:site"
)

// setupComment marks a distribution setup created, so that a run after a
// crash (created, but the id not yet written into the configuration)
// finds it rather than making a second one. ListDistributions returns
// comments, not tags.
func setupComment(site releases.Site) string {
	return "deploybot " + InstallName(site) + "/" + site.Name
}

// accessControl finds the origin access control the site's origin uses:
// the one an adopted distribution already has, else the site's own (by
// name), created when missing.
func (r *setupRun) accessControl(ctx context.Context) error {
	if err := r.findDistribution(ctx); err != nil {
		return err
	}
	if r.dist != nil {
		o, err := findOrigin(r.site, r.dist)
		if err != nil {
			return err
		}
		if id := aws.ToString(o.OriginAccessControlId); id != "" {
			oac, err := r.CF.GetOriginAccessControl(ctx, &cloudfront.GetOriginAccessControlInput{Id: aws.String(id)})
			if err != nil {
				return awsProblem("reading origin access control "+id, "cloudfront:GetOriginAccessControl", err)
			}
			r.oacID = id
			what := "the distribution's origin uses it"
			if c := oac.OriginAccessControl.OriginAccessControlConfig; c != nil && c.SigningBehavior != cftypes.OriginAccessControlSigningBehaviorsAlways {
				what += fmt.Sprintf(" (it signs %q, not always: a viewer's Authorization header would reach S3)", c.SigningBehavior)
			}
			r.step("origin access control "+id, SetupAdopt, what, "")
			return nil
		}
	}
	name := OACName(r.site)
	id, err := r.findOAC(ctx, name)
	if err != nil {
		return err
	}
	if id != "" {
		r.oacID = id
		r.step("origin access control "+name, SetupOK, "exists ("+id+")", "")
		return nil
	}
	r.step("origin access control "+name, SetupCreate, "S3, SigV4, signs always", "CloudFront reads the private bucket with it")
	if !r.apply {
		return nil
	}
	out, err := r.CF.CreateOriginAccessControl(ctx, &cloudfront.CreateOriginAccessControlInput{OriginAccessControlConfig: newOACConfig(r.site)})
	if err != nil {
		return awsProblem("creating origin access control "+name, "cloudfront:CreateOriginAccessControl", err)
	}
	r.oacID = aws.ToString(out.OriginAccessControl.Id)
	return nil
}

// findOAC is the id of the origin access control named name, or "".
func (r *setupRun) findOAC(ctx context.Context, name string) (string, error) {
	var marker *string
	for {
		out, err := r.CF.ListOriginAccessControls(ctx, &cloudfront.ListOriginAccessControlsInput{Marker: marker})
		if err != nil {
			return "", awsProblem("listing origin access controls", "cloudfront:ListOriginAccessControls", err)
		}
		l := out.OriginAccessControlList
		if l == nil {
			return "", nil
		}
		for _, s := range l.Items {
			if aws.ToString(s.Name) == name {
				return aws.ToString(s.Id), nil
			}
		}
		if !aws.ToBool(l.IsTruncated) || aws.ToString(l.NextMarker) == "" {
			return "", nil
		}
		marker = l.NextMarker
	}
}

// findDistribution reads the distribution the configuration names, or,
// when it names none, the one an earlier setup of this site created.
func (r *setupRun) findDistribution(ctx context.Context) error {
	if r.site.DistributionID == "" {
		id, err := r.markedDistribution(ctx)
		if err != nil || id == "" {
			return err
		}
		r.site.DistributionID = id
		r.rep.Record["distribution_id"] = id
	}
	return r.readDistribution(ctx)
}

func (r *setupRun) readDistribution(ctx context.Context) error {
	id := r.site.DistributionID
	// GetDistribution carries the config and its ETag beside the ARN and
	// domain: one call, not two.
	d, err := r.CF.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String(id)})
	var nsd *cftypes.NoSuchDistribution
	if errors.As(err, &nsd) {
		return releases.Errorf(releases.ENOTFOUND, "distribution %s (sites[].distribution_id of site %s) does not exist in this account: fix the id, or remove the key and setup creates one", id, r.site.Name)
	}
	if err != nil {
		return awsProblem("reading distribution "+id, "cloudfront:GetDistribution", err)
	}
	r.dist, r.etag = d.Distribution.DistributionConfig, d.ETag
	r.rep.DistributionID = id
	r.rep.DistributionARN = aws.ToString(d.Distribution.ARN)
	r.rep.Domain = aws.ToString(d.Distribution.DomainName)
	o, err := findOrigin(r.site, r.dist)
	if err != nil {
		return err
	}
	r.origin = aws.ToString(o.Id)
	return nil
}

// markedDistribution is the id of the distribution whose comment marks it
// as this site's (setupComment), or "".
func (r *setupRun) markedDistribution(ctx context.Context) (string, error) {
	want := setupComment(r.site)
	var marker *string
	for {
		out, err := r.CF.ListDistributions(ctx, &cloudfront.ListDistributionsInput{Marker: marker})
		if err != nil {
			return "", awsProblem("listing distributions", "cloudfront:ListDistributions", err)
		}
		l := out.DistributionList
		if l == nil {
			return "", nil
		}
		for _, s := range l.Items {
			if aws.ToString(s.Comment) == want {
				return aws.ToString(s.Id), nil
			}
		}
		if !aws.ToBool(l.IsTruncated) || aws.ToString(l.NextMarker) == "" {
			return "", nil
		}
		marker = l.NextMarker
	}
}

// distribution creates the site's distribution when there is none.
func (r *setupRun) distribution(ctx context.Context) error {
	if r.dist != nil {
		action := SetupAdopt
		if r.rep.Record["distribution_id"] != "" {
			action = SetupOK // setup made it, an earlier run
		}
		r.step("distribution "+r.site.DistributionID, action, "serves "+r.rep.Domain+" from origin "+r.origin, "its origin path or key is the live release, which setup leaves alone")
		return nil
	}
	dc := newDistributionConfig(r.site, r.rep.Region, r.oacID)
	r.step("distribution", SetupCreate, fmt.Sprintf("origin %s (REST endpoint, origin access control), HTTPS only (redirect), managed CachingOptimized, default root object %q, HTTP/2 and 3, IPv6, tagged %s=%s",
		aws.ToString(dc.Origins.Items[0].DomainName), aws.ToString(dc.DefaultRootObject), TagInstall, InstallName(r.site)), "the configuration names no distribution for the site")
	if !r.apply {
		return nil
	}
	out, err := r.CF.CreateDistributionWithTags(ctx, &cloudfront.CreateDistributionWithTagsInput{DistributionConfigWithTags: &cftypes.DistributionConfigWithTags{
		DistributionConfig: dc,
		Tags:               &cftypes.Tags{Items: setupTags(r.site)}}})
	if err != nil {
		return awsProblem("creating the distribution of site "+r.site.Name, "cloudfront:CreateDistribution and cloudfront:TagResource", err)
	}
	r.site.DistributionID = aws.ToString(out.Distribution.Id)
	r.rep.Record["distribution_id"] = r.site.DistributionID
	return r.readDistribution(ctx)
}

// newDistributionConfig is the distribution setup creates. The origin
// path is empty: the first promote sets it (origin-path), or the
// function adds the release folder (kvs).
func newDistributionConfig(site releases.Site, region, oacID string) *cftypes.DistributionConfig {
	if region == "" {
		region = "us-east-1"
	}
	root := ""
	if site.Strategy != StrategyKVS {
		// The function of a kvs site maps / to the release's index
		// itself; a default root object would send it /index.html.
		root = "index.html"
	}
	methods := &cftypes.AllowedMethods{Quantity: aws.Int32(2), Items: []cftypes.Method{cftypes.MethodGet, cftypes.MethodHead},
		CachedMethods: &cftypes.CachedMethods{Quantity: aws.Int32(2), Items: []cftypes.Method{cftypes.MethodGet, cftypes.MethodHead}}}
	return &cftypes.DistributionConfig{
		CallerReference:   aws.String(accountName(site, "")),
		Comment:           aws.String(setupComment(site)),
		Enabled:           aws.Bool(true),
		DefaultRootObject: aws.String(root),
		HttpVersion:       cftypes.HttpVersionHttp2and3,
		IsIPV6Enabled:     aws.Bool(true),
		Origins: &cftypes.Origins{Quantity: aws.Int32(1), Items: []cftypes.Origin{{
			Id:                    aws.String(SetupOriginID),
			DomainName:            aws.String(fmt.Sprintf("%s.s3.%s.amazonaws.com", site.Bucket, region)),
			OriginPath:            aws.String(""),
			OriginAccessControlId: aws.String(oacID),
			// An OAC origin keeps an empty S3OriginConfig
			// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/private-content-restricting-access-to-s3.html).
			S3OriginConfig: &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")},
		}}},
		DefaultCacheBehavior: &cftypes.DefaultCacheBehavior{
			TargetOriginId:       aws.String(SetupOriginID),
			ViewerProtocolPolicy: cftypes.ViewerProtocolPolicyRedirectToHttps,
			CachePolicyId:        aws.String(CachingOptimized),
			Compress:             aws.Bool(true),
			AllowedMethods:       methods,
		},
	}
}

// attachAccessControl gives an adopted distribution's origin the origin
// access control, after the bucket policy lets it read: the switch never
// answers 403. An origin access identity it had goes (an origin has one
// or the other).
func (r *setupRun) attachAccessControl(ctx context.Context) error {
	if r.dist == nil {
		return nil
	}
	o, err := findOrigin(r.site, r.dist)
	if err != nil {
		return err
	}
	if aws.ToString(o.OriginAccessControlId) != "" {
		return nil
	}
	what := "origin " + r.origin + " reads through the origin access control"
	if o.S3OriginConfig != nil && aws.ToString(o.S3OriginConfig.OriginAccessIdentity) != "" {
		what += ", in place of origin access identity " + aws.ToString(o.S3OriginConfig.OriginAccessIdentity)
	}
	r.step("distribution "+r.site.DistributionID, SetupChange, what, "the bucket is private; the distribution must sign its reads")
	if !r.apply {
		return nil
	}
	o.OriginAccessControlId = aws.String(r.oacID)
	o.S3OriginConfig = &cftypes.S3OriginConfig{OriginAccessIdentity: aws.String("")}
	o.CustomOriginConfig = nil
	if _, err := r.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(r.site.DistributionID), IfMatch: r.etag, DistributionConfig: r.dist}); err != nil {
		return awsProblem("attaching the origin access control to distribution "+r.site.DistributionID, "cloudfront:UpdateDistribution", err)
	}
	return r.readDistribution(ctx)
}

// keyValueStore finds or creates a kvs site's store.
func (r *setupRun) keyValueStore(ctx context.Context) error {
	if r.site.Strategy != StrategyKVS {
		return nil
	}
	if r.site.KVSARN != "" {
		r.step("key value store "+KVSID(r.site.KVSARN), SetupAdopt, "kvs.arn names it", "")
		return nil
	}
	name := KVSName(r.site)
	d, err := r.CF.DescribeKeyValueStore(ctx, &cloudfront.DescribeKeyValueStoreInput{Name: aws.String(name)})
	var nf *cftypes.EntityNotFound
	switch {
	case errors.As(err, &nf):
	case err != nil:
		return awsProblem("reading key value store "+name, "cloudfront:DescribeKeyValueStore", err)
	default:
		r.site.KVSARN = aws.ToString(d.KeyValueStore.ARN)
		r.rep.KVSARN, r.rep.Record["kvs.arn"] = r.site.KVSARN, r.site.KVSARN
		r.step("key value store "+name, SetupOK, "exists", "")
		return nil
	}
	r.step("key value store "+name, SetupCreate, "holds the live release of the site, which its function reads", "strategy kvs and no kvs.arn")
	if !r.apply {
		return nil
	}
	out, err := r.CF.CreateKeyValueStore(ctx, &cloudfront.CreateKeyValueStoreInput{Name: aws.String(name), Comment: aws.String(kvsComment(r.site))})
	if err != nil {
		return awsProblem("creating key value store "+name, "cloudfront:CreateKeyValueStore", err)
	}
	r.site.KVSARN = aws.ToString(out.KeyValueStore.ARN)
	r.rep.KVSARN, r.rep.Record["kvs.arn"] = r.site.KVSARN, r.site.KVSARN
	return r.waitStoreReady(ctx, name)
}

// waitStoreReady waits for a new store to leave PROVISIONING
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_KeyValueStore.html).
func (r *setupRun) waitStoreReady(ctx context.Context, name string) error {
	interval := r.PollInterval
	if interval <= 0 || interval > MaxPollInterval {
		interval = MaxPollInterval
	}
	for {
		d, err := r.CF.DescribeKeyValueStore(ctx, &cloudfront.DescribeKeyValueStoreInput{Name: aws.String(name)})
		if err != nil {
			return awsProblem("reading key value store "+name, "cloudfront:DescribeKeyValueStore", err)
		}
		switch st := strings.ToUpper(aws.ToString(d.KeyValueStore.Status)); st {
		case "READY", "":
			return nil
		case "PROVISIONING":
		default:
			return fmt.Errorf("key value store %s is %s", name, st)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(interval):
		}
	}
}

// functions runs what kvs-setup or routing-setup does: the site's
// functions, their associations and its error pages.
func (r *setupRun) functions(ctx context.Context) error {
	if r.dist == nil || (r.site.Strategy == StrategyKVS && r.site.KVSARN == "") {
		r.step("functions", SetupCreate, "publish the site's functions and associate them; custom error responses", "the distribution is new")
		return nil
	}
	if r.site.Strategy == StrategyKVS {
		return r.kvsFunctions(ctx)
	}
	rs := &RoutingSetup{CF: r.CF, PollInterval: r.PollInterval}
	problems, err := rs.Check(ctx, r.site)
	if err != nil {
		return err
	}
	if len(problems) == 0 {
		r.step("functions", SetupOK, "the distribution routes as configured (routing-setup has nothing to do)", "")
		return nil
	}
	r.step("functions", SetupChange, strings.Join(problems, "; "), "what routing-setup does")
	if !r.apply {
		return nil
	}
	_, err = rs.Apply(ctx, r.site)
	return err
}

func (r *setupRun) kvsFunctions(ctx context.Context) error {
	pre := &KVS{CF: r.CF}
	err := pre.Preflight(ctx, r.site)
	switch {
	case err == nil:
		r.step("functions", SetupOK, "the distribution runs the site's function, as this version generates it", "")
		return nil
	case releases.ErrorCode(err) != releases.ECONFLICT:
		return err
	}
	r.step("functions", SetupChange, strings.Join((&KVSSetup{}).Steps(r.site), "; "), "what kvs-setup does: "+err.Error())
	if !r.apply {
		return nil
	}
	ks := &KVSSetup{CF: r.CF, KVS: r.KVS, Pages: r.Pages, PollInterval: r.PollInterval}
	_, err = ks.Apply(ctx, r.site)
	return err
}
