package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"path"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

// This file is deploybot check: every assumption deploybot makes about a
// site's AWS side, verified with read-only calls, each failure naming the
// configuration key or AWS setting and the command that fixes it. The
// calls are those of the bot's policy, so a permission the bot lacks
// shows up here as a refused call, named.

// CheckS3API is what check reads of S3.
type CheckS3API interface {
	BucketHeader
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	GetBucketPolicy(ctx context.Context, in *s3.GetBucketPolicyInput, optFns ...func(*s3.Options)) (*s3.GetBucketPolicyOutput, error)
}

// CheckCFAPI is what check reads of CloudFront.
type CheckCFAPI interface {
	FunctionsAPI
	GetOriginAccessControl(ctx context.Context, in *cloudfront.GetOriginAccessControlInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetOriginAccessControlOutput, error)
}

var (
	_ CheckS3API = (*s3.Client)(nil)
	_ CheckCFAPI = (*cloudfront.Client)(nil)
)

// Checker runs the checks.
type Checker struct {
	S3 CheckS3API
	CF CheckCFAPI
	// Region is what S3's client signs for (aws.region): a bucket that
	// answers without a redirect is there.
	Region string
	// Permissions, when set, simulates a role's policy for a principal
	// after the other checks.
	Permissions *PermissionCheck
}

// PermissionCheck is who is checked for which role's policy.
type PermissionCheck struct {
	IAM Simulator
	// Principal is the IAM user or role (PrincipalARN of a caller).
	Principal string
	Role      Role
	// Caller says Principal is whoever runs check, not a role named: an
	// administrator's pass says nothing of the bot's role, and the
	// finding says so.
	Caller bool
}

// Finding levels.
const (
	CheckOK   = "ok"
	CheckWarn = "warn"
	CheckFail = "fail"
)

// Finding is one check's outcome.
type Finding struct {
	Check string `json:"check"`
	Level string `json:"level"`
	What  string `json:"what"`
	// Fix is what to do: the key to change or the command to run.
	Fix string `json:"fix,omitempty"`
}

// Failed reports whether any finding failed.
func Failed(fs []Finding) bool {
	for _, f := range fs {
		if f.Level == CheckFail {
			return true
		}
	}
	return false
}

// checkRun is one site's checks, as they learn.
type checkRun struct {
	*Checker
	site     releases.Site
	out      []Finding
	region   string
	dc       *cftypes.DistributionConfig
	origin   *cftypes.Origin
	distARN  string
	setupFix string
}

func (r *checkRun) add(check, level, what, fix string) {
	r.out = append(r.out, Finding{Check: check, Level: level, What: what, Fix: fix})
}

// Check verifies the site. An error is returned only when checking
// itself could not go on (the context ended); everything AWS answers is
// a finding.
func (c *Checker) Check(ctx context.Context, site releases.Site) ([]Finding, error) {
	r := &checkRun{Checker: c, site: site, setupFix: "deploybot setup --site " + site.Name + " --apply"}
	for _, step := range []func(context.Context) bool{r.bucket, r.distribution, r.accessControl, r.bucketPolicy, r.lambdaEdge, r.functions} {
		if !step(ctx) {
			break
		}
		if err := ctx.Err(); err != nil {
			return r.out, err
		}
	}
	if p := c.Permissions; p != nil {
		account := ""
		if parts := strings.SplitN(p.Principal, ":", 6); len(parts) == 6 {
			account = parts[4]
		}
		doc, err := Policy(p.Role, []releases.Site{site}, account)
		if err != nil {
			return r.out, err
		}
		fs := CheckPermissions(ctx, p.IAM, p.Principal, string(p.Role), doc)
		if p.Caller && len(fs) == 1 && fs[0].Level == CheckOK {
			fs[0].What += "; that is the caller: pass --principal with the " + string(p.Role) + "'s role ARN to check the role itself"
		}
		r.out = append(r.out, fs...)
	}
	return r.out, ctx.Err()
}

func (r *checkRun) bucket(ctx context.Context) bool {
	region, err := r.listSite(ctx)
	if err == nil {
		r.region = region
		r.add("bucket", CheckOK, fmt.Sprintf("bucket %s exists, in %s", r.site.Bucket, orUnknown(region)), "")
		return true
	}
	// No HeadBucket to tell why: it needs s3:ListBucket on the whole
	// bucket, which the bot's policy grants only under the sites'
	// prefixes; S3 answers a bucket that does not exist NoSuchBucket
	// whoever asks.
	switch {
	case isCode(err, "NoSuchBucket"):
		r.add("bucket", CheckFail, fmt.Sprintf("bucket %s (sites[].bucket) does not exist", r.site.Bucket), "fix sites[].bucket, or "+r.setupFix+" creates it")
	case isAccessDenied(err):
		r.add("bucket", CheckFail, bucketProblem(r.site, BucketState{Exists: true, Forbidden: true}).Error()+": "+err.Error(), "")
	default:
		r.add("bucket", CheckFail, fmt.Sprintf("listing the site's releases in bucket %s: %v", r.site.Bucket, err), "")
	}
	return false
}

// listSite lists the site's manifests, as every command does, and
// returns the bucket's region: the one a RegionalS3 learnt from S3's
// redirect (NewRegionalS3: what the doors pass), else the one the call
// was signed for.
func (r *checkRun) listSite(ctx context.Context) (string, error) {
	in := &s3.ListObjectsV2Input{Bucket: aws.String(r.site.Bucket), Prefix: aws.String(r.site.ManifestPrefix()), MaxKeys: aws.Int32(1)}
	_, err := r.S3.ListObjectsV2(ctx, in)
	if rs, ok := r.S3.(*RegionalS3); ok {
		if region := rs.Regions.For(r.site.Bucket); region != "" {
			return region, err
		}
	}
	return r.Region, err
}

func (r *checkRun) distribution(ctx context.Context) bool {
	if r.site.DistributionID == "" {
		r.add("distribution", CheckFail, "sites[].distribution_id is empty: the site has no distribution yet", r.setupFix+" creates it and writes its id")
		return false
	}
	d, err := r.CF.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String(r.site.DistributionID)})
	var nsd *cftypes.NoSuchDistribution
	switch {
	case errors.As(err, &nsd):
		r.add("distribution", CheckFail, fmt.Sprintf("distribution %s (sites[].distribution_id) does not exist in this account", r.site.DistributionID), "fix sites[].distribution_id, or remove it and "+r.setupFix+" creates one")
		return false
	case err != nil:
		r.add("distribution", CheckFail, awsProblem("reading distribution "+r.site.DistributionID, "cloudfront:GetDistribution", err).Error(), "")
		return false
	}
	r.distARN = aws.ToString(d.Distribution.ARN)
	dc := d.Distribution
	o, err := findOrigin(r.site, dc.DistributionConfig)
	if err != nil {
		r.add("origin", CheckFail, err.Error(), "fix sites[].bucket or sites[].origin_id, or the distribution's origin")
		return false
	}
	r.dc, r.origin = dc.DistributionConfig, o
	domain := aws.ToString(o.DomainName)
	if BucketOfOrigin(domain) == "" {
		r.add("origin", CheckFail, fmt.Sprintf("origin %s reads %s, which is not the REST endpoint of bucket %s", aws.ToString(o.Id), domain, r.site.Bucket),
			fmt.Sprintf("point the origin at %s.s3.%s.amazonaws.com", r.site.Bucket, orDefault(r.region, "REGION")))
		return false
	}
	// A regional endpoint of another region: CloudFront's SigV4 signs for
	// the region the name says, which S3 refuses for a bucket elsewhere.
	if reg := regionOfDomain(domain); reg != "" && r.region != "" && reg != r.region {
		r.add("origin", CheckFail, fmt.Sprintf("origin %s reads %s, an endpoint in %s, but bucket %s is in %s", aws.ToString(o.Id), domain, reg, r.site.Bucket, r.region),
			fmt.Sprintf("point the origin at %s.s3.%s.amazonaws.com", r.site.Bucket, r.region))
		return false
	}
	r.add("distribution", CheckOK, fmt.Sprintf("distribution %s (%s) reads bucket %s through origin %s", r.site.DistributionID, aws.ToString(d.Distribution.Status), r.site.Bucket, aws.ToString(o.Id)), "")
	return true
}

func orDefault(s, def string) string {
	if s == "" {
		return def
	}
	return s
}

// regionOfDomain is the region an S3 REST endpoint names, or "" for the
// global one.
func regionOfDomain(domain string) string {
	d := strings.ToLower(domain)
	b := BucketOfOrigin(d)
	if b == "" {
		return ""
	}
	rest := strings.TrimPrefix(d, b+".s3")
	rest = strings.TrimPrefix(strings.TrimPrefix(rest, "."), "-")
	reg, _, _ := strings.Cut(rest, ".")
	if reg == "amazonaws" {
		return ""
	}
	return reg
}

func (r *checkRun) accessControl(ctx context.Context) bool {
	id := aws.ToString(r.origin.OriginAccessControlId)
	if id == "" {
		what := fmt.Sprintf("origin %s has no origin access control: CloudFront reads the bucket anonymously, which a private bucket refuses (every page 403)", aws.ToString(r.origin.Id))
		if r.origin.S3OriginConfig != nil && aws.ToString(r.origin.S3OriginConfig.OriginAccessIdentity) != "" {
			what = fmt.Sprintf("origin %s reads with a legacy origin access identity (%s), which AWS recommends replacing by an origin access control", aws.ToString(r.origin.Id), aws.ToString(r.origin.S3OriginConfig.OriginAccessIdentity))
			r.add("origin access control", CheckWarn, what, r.setupFix+" moves it to an origin access control")
			return true
		}
		r.add("origin access control", CheckFail, what, r.setupFix+" creates one and lets it read")
		return true
	}
	oac, err := r.CF.GetOriginAccessControl(ctx, &cloudfront.GetOriginAccessControlInput{Id: aws.String(id)})
	if isAccessDenied(err) {
		// A bot policy from before check read it: not the site's fault.
		r.add("origin access control", CheckWarn, awsProblem("reading origin access control "+id, "cloudfront:GetOriginAccessControl", err).Error(),
			"update the bot's policy from deploybot iam-policy --role bot")
		return true
	}
	if err != nil {
		r.add("origin access control", CheckFail, awsProblem("reading origin access control "+id, "cloudfront:GetOriginAccessControl", err).Error(), "")
		return true
	}
	c := oac.OriginAccessControl.OriginAccessControlConfig
	switch {
	case c == nil || c.OriginAccessControlOriginType != cftypes.OriginAccessControlOriginTypesS3:
		r.add("origin access control", CheckFail, fmt.Sprintf("origin access control %s is not for S3 origins", id), r.setupFix)
	case c.SigningBehavior != cftypes.OriginAccessControlSigningBehaviorsAlways:
		r.add("origin access control", CheckWarn, fmt.Sprintf("origin access control %s signs %q, not always: a viewer's Authorization header would reach S3 in its place", id, c.SigningBehavior), "set its signing behavior to always")
	default:
		r.add("origin access control", CheckOK, fmt.Sprintf("origin access control %s (%s) signs every read", id, aws.ToString(c.Name)), "")
	}
	return true
}

func (r *checkRun) bucketPolicy(ctx context.Context) bool {
	out, err := r.S3.GetBucketPolicy(ctx, &s3.GetBucketPolicyInput{Bucket: aws.String(r.site.Bucket)})
	var doc string
	switch {
	case isCode(err, "NoSuchBucketPolicy"):
	case isAccessDenied(err):
		r.add("bucket policy", CheckWarn, "cannot read the policy of bucket "+r.site.Bucket+" (s3:GetBucketPolicy is not granted): not checked", "")
		return true
	case err != nil:
		r.add("bucket policy", CheckFail, awsProblem("reading the policy of bucket "+r.site.Bucket, "s3:GetBucketPolicy", err).Error(), "")
		return true
	default:
		doc = aws.ToString(out.Policy)
	}
	if PolicyLetsDistributionRead(doc, r.site, r.distARN) {
		r.add("bucket policy", CheckOK, fmt.Sprintf("the policy of bucket %s lets distribution %s read %s*", r.site.Bucket, r.site.DistributionID, r.site.Prefix), "")
		return true
	}
	r.add("bucket policy", CheckFail, fmt.Sprintf("the policy of bucket %s does not let distribution %s (cloudfront.amazonaws.com, AWS:SourceArn %s) s3:GetObject on %s*: every page 403", r.site.Bucket, r.site.DistributionID, r.distARN, r.site.Prefix),
		r.setupFix+" adds statement "+readSid(r.site)+", keeping the others")
	return true
}

// PolicyLetsDistributionRead reports whether a bucket policy (JSON; ""
// none) has an Allow statement for CloudFront's service principal, for
// s3:GetObject on the site's prefix, conditioned on the distribution's
// ARN, and no Deny statement naming s3:GetObject there. It reads what
// setup writes and the forms the CloudFront guide shows; a policy that
// grants it some other way is reported as not granting it.
func PolicyLetsDistributionRead(doc string, site releases.Site, distARN string) bool {
	if strings.TrimSpace(doc) == "" {
		return false
	}
	var p struct {
		Statement json.RawMessage
	}
	if json.Unmarshal([]byte(doc), &p) != nil {
		return false
	}
	var stmts []map[string]any
	if json.Unmarshal(p.Statement, &stmts) != nil {
		var one map[string]any
		if json.Unmarshal(p.Statement, &one) != nil {
			return false
		}
		stmts = []map[string]any{one}
	}
	object := fmt.Sprintf("arn:%s:s3:::%s/%sindex.html", partitionOfARN(distARN), site.Bucket, site.Prefix)
	allowed := false
	for _, s := range stmts {
		if !matchAny(strs(s["Action"]), "s3:GetObject") || !matchAny(strs(s["Resource"]), object) {
			continue
		}
		switch s["Effect"] {
		case "Deny":
			return false
		case "Allow":
			if servicePrincipal(s["Principal"]) && sourceARNMatches(s["Condition"], distARN) {
				allowed = true
			}
		}
	}
	return allowed
}

func strs(v any) []string {
	switch x := v.(type) {
	case string:
		return []string{x}
	case []any:
		var out []string
		for _, e := range x {
			if s, ok := e.(string); ok {
				out = append(out, s)
			}
		}
		return out
	}
	return nil
}

// matchAny reports whether one of the IAM patterns (* and ? wildcards)
// matches s; actions compare case-insensitively, as IAM does.
func matchAny(patterns []string, s string) bool {
	for _, p := range patterns {
		if p == "*" {
			return true
		}
		pp, ss := p, s
		if strings.HasPrefix(s, "s3:") {
			pp, ss = strings.ToLower(p), strings.ToLower(s)
		}
		// path.Match's * stops at /, IAM's does not: compare with / taken out.
		if ok, _ := path.Match(strings.ReplaceAll(pp, "/", "\x00"), strings.ReplaceAll(ss, "/", "\x00")); ok {
			return true
		}
	}
	return false
}

func servicePrincipal(v any) bool {
	m, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for _, s := range strs(m["Service"]) {
		if s == "cloudfront.amazonaws.com" {
			return true
		}
	}
	return false
}

func sourceARNMatches(v any, distARN string) bool {
	conds, ok := v.(map[string]any)
	if !ok {
		return false
	}
	for op, body := range conds {
		m, ok := body.(map[string]any)
		if !ok {
			continue
		}
		for k, vals := range m {
			if !strings.EqualFold(k, "AWS:SourceArn") {
				continue
			}
			switch op {
			case "StringEquals", "ArnEquals":
				for _, s := range strs(vals) {
					if s == distARN {
						return true
					}
				}
			case "StringLike", "ArnLike":
				if matchAny(strs(vals), distARN) {
					return true
				}
			}
		}
	}
	return false
}

// lambdaEdge fails a Lambda@Edge function on a viewer event of a cache
// behaviour the site's CloudFront Functions run on: CloudFront does not
// combine the two kinds in viewer events, either event
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html).
func (r *checkRun) lambdaEdge(context.Context) bool {
	found := false
	for _, c := range lambdaEdgeConflicts(r.site, r.dc, aws.ToString(r.origin.Id)) {
		found = true
		r.add("lambda@edge", CheckFail, c, "move the Lambda@Edge function to an origin event, or turn off what needs a viewer function (strategy origin-path with routing empty and release_header: false)")
	}
	if !found {
		r.add("lambda@edge", CheckOK, "no Lambda@Edge function on a viewer event of the site's cache behaviors", "")
	}
	return true
}

// needsViewerFunction reports whether the site runs a CloudFront Function
// on a viewer event: kvs's, the router, or the release header's.
func needsViewerFunction(site releases.Site) bool {
	return site.Strategy == StrategyKVS || NeedsRouter(site) || !site.NoReleaseHeader
}

// lambdaEdgeConflicts names the behaviours of the site's origin with a
// Lambda@Edge function on a viewer event, when the site needs a
// CloudFront Function on one.
func lambdaEdgeConflicts(site releases.Site, dc *cftypes.DistributionConfig, originID string) []string {
	if !needsViewerFunction(site) {
		return nil
	}
	return append(lambdaOn(dc, originID, cftypes.EventTypeViewerRequest), lambdaOn(dc, originID, cftypes.EventTypeViewerResponse)...)
}

// lambdaOn names the behaviours of the origin that run a Lambda@Edge
// function on event ev.
func lambdaOn(dc *cftypes.DistributionConfig, originID string, ev cftypes.EventType) []string {
	var out []string
	for _, b := range siteLambdas(dc, originID) {
		for _, a := range b.items {
			if a.EventType == ev {
				out = append(out, fmt.Sprintf("%s runs Lambda@Edge function %s on %s, which CloudFront does not combine with the site's CloudFront Functions in viewer events", b.name, aws.ToString(a.LambdaFunctionARN), ev))
			}
		}
	}
	return out
}

type lambdaRef struct {
	name  string
	items []cftypes.LambdaFunctionAssociation
}

func siteLambdas(dc *cftypes.DistributionConfig, originID string) []lambdaRef {
	var out []lambdaRef
	if d := dc.DefaultCacheBehavior; d != nil && aws.ToString(d.TargetOriginId) == originID && d.LambdaFunctionAssociations != nil {
		out = append(out, lambdaRef{"the default cache behavior", d.LambdaFunctionAssociations.Items})
	}
	if dc.CacheBehaviors != nil {
		for _, b := range dc.CacheBehaviors.Items {
			if aws.ToString(b.TargetOriginId) == originID && b.LambdaFunctionAssociations != nil {
				out = append(out, lambdaRef{"cache behavior " + aws.ToString(b.PathPattern), b.LambdaFunctionAssociations.Items})
			}
		}
	}
	return out
}

// functions checks the site's functions are this version's, associated,
// with the error pages: what kvs-setup or routing-setup does.
func (r *checkRun) functions(ctx context.Context) bool {
	var problems []string
	fix := "deploybot routing-setup --site " + r.site.Name + " --apply (or " + r.setupFix + ")"
	if r.site.Strategy == StrategyKVS {
		fix = "deploybot kvs-setup --site " + r.site.Name + " --apply (or " + r.setupFix + ")"
		if err := (&KVS{CF: r.CF}).Preflight(ctx, r.site); err != nil {
			problems = append(problems, err.Error())
		}
		hp, err := releaseHeaderCheck(ctx, r.CF, r.site, r.dc, aws.ToString(r.origin.Id))
		if err != nil {
			problems = append(problems, err.Error())
		}
		problems = append(problems, hp...)
	} else {
		p, err := (&RoutingSetup{CF: r.CF}).Check(ctx, r.site)
		if err != nil {
			problems = append(problems, err.Error())
		}
		problems = append(problems, p...)
	}
	if leg := legacyOnBehaviors(r.site, r.dc, aws.ToString(r.origin.Id)); leg != "" {
		name := leg[strings.LastIndex(leg, "/")+1:]
		problems = append(problems, fmt.Sprintf("function %s is named as versions before install names named them, shared by every installation with a site %s", name, r.site.Name))
	}
	if len(problems) == 0 {
		r.add("functions", CheckOK, "the site's functions are this version's, associated, with the error pages", "")
		return true
	}
	for _, p := range problems {
		r.add("functions", CheckFail, p, fix)
	}
	return true
}

// legacyOnBehaviors is the ARN of a function named before install names
// that a behaviour of the origin runs, or "".
func legacyOnBehaviors(site releases.Site, dc *cftypes.DistributionConfig, originID string) string {
	for _, b := range siteBehaviors(dc, originID) {
		for _, ev := range []cftypes.EventType{cftypes.EventTypeViewerRequest, cftypes.EventTypeViewerResponse} {
			arn := b.fn(ev)
			if own := arn == "" || strings.HasSuffix(arn, "/"+FunctionName(site)) || strings.HasSuffix(arn, "/"+RouterName(site)) || strings.HasSuffix(arn, "/"+ReleaseHeaderName(site)); !own && legacyFunction(site, arn) {
				return arn
			}
		}
	}
	return ""
}
