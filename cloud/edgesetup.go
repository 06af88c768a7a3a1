package cloud

import (
	"context"
	"errors"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/releases"
)

// This file holds what kvs-setup and routing-setup share: publishing a
// function, associating it with every cache behaviour that serves the
// site's origin, and the custom error responses of the site's 404 page.

// FunctionName is the name of a kvs site's viewer-request function.
func FunctionName(site releases.Site) string { return accountName(site, "") }

// RouterName is the name of an origin-path site's routing function. It
// differs from FunctionName so that kvs-setup never republishes the code
// a live origin-path distribution runs: it swaps one function for the
// other in the same distribution update that clears the origin path.
func RouterName(site releases.Site) string { return accountName(site, "-router") }

// ErrorCachingTTL is the error caching minimum TTL setup gives the
// site's custom error responses (seconds): CloudFront's default, stated.
const ErrorCachingTTL = 10

// LivePagePrefix is where, for strategy kvs, the live release's 404 page
// is copied at each flip. CloudFront fetches a custom error page as a
// request for its ResponsePagePath through the cache behavior that path
// matches
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/DownloadDistValuesErrorPages.html),
// and AWS documents that a viewer-request function does not run "When
// fetching a custom error page" for Lambda@Edge
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/lambda-cloudfront-trigger-events.html);
// the CloudFront Functions pages say nothing either way, and deploybot
// assumes the same of the site's function rather than depend on it: the
// page cannot be looked up in the release folder the function picks. It
// is under the site's .deploybot/ folder, which retention never touches.
const LivePagePrefix = ".deploybot/live/"

// NotFoundPagePath is the ResponsePagePath of the site's 404 page, or ""
// when the site has none: on origin-path the page in the release (the
// origin path names the release), on kvs the live copy.
func NotFoundPagePath(site releases.Site) string {
	switch {
	case site.Routing.NotFound == "":
		return ""
	case site.Strategy == StrategyKVS:
		return "/" + site.Prefix + LivePagePrefix + site.Routing.NotFound
	}
	return "/" + site.Routing.NotFound
}

// publishFunction creates or updates a function and publishes it,
// returning its ARN. The DEVELOPMENT stage's ETag is the one
// UpdateFunction and PublishFunction take; the LIVE stage has its own.
func publishFunction(ctx context.Context, cf FunctionsAPI, name, code string, fcfg *types.FunctionConfig) (arn string, created bool, err error) {
	desc, err := cf.DescribeFunction(ctx, &cloudfront.DescribeFunctionInput{Name: aws.String(name), Stage: types.FunctionStageDevelopment})
	var etag *string
	var nsf *types.NoSuchFunctionExists
	switch {
	case errors.As(err, &nsf):
		out, err := cf.CreateFunction(ctx, &cloudfront.CreateFunctionInput{Name: aws.String(name), FunctionCode: []byte(code), FunctionConfig: fcfg})
		if err != nil {
			return "", false, fmt.Errorf("creating function %s: %w", name, err)
		}
		etag, created = out.ETag, true
	case err != nil:
		return "", false, fmt.Errorf("reading function %s: %w", name, err)
	default:
		out, err := cf.UpdateFunction(ctx, &cloudfront.UpdateFunctionInput{Name: aws.String(name), IfMatch: desc.ETag, FunctionCode: []byte(code), FunctionConfig: fcfg})
		if err != nil {
			return "", false, fmt.Errorf("updating function %s: %w", name, err)
		}
		etag = out.ETag // the SDK reads it from the "ETtag" header the API documents
		if etag == nil {
			d, err := cf.DescribeFunction(ctx, &cloudfront.DescribeFunctionInput{Name: aws.String(name), Stage: types.FunctionStageDevelopment})
			if err != nil {
				return "", false, fmt.Errorf("reading function %s: %w", name, err)
			}
			etag = d.ETag
		}
	}
	pub, err := cf.PublishFunction(ctx, &cloudfront.PublishFunctionInput{Name: aws.String(name), IfMatch: etag})
	if err != nil {
		return "", false, fmt.Errorf("publishing function %s: %w", name, err)
	}
	if pub.FunctionSummary != nil && pub.FunctionSummary.FunctionMetadata != nil {
		arn = aws.ToString(pub.FunctionSummary.FunctionMetadata.FunctionARN)
	}
	return arn, created, nil
}

// liveARN is the ARN of a function's LIVE stage, or "" when it was never
// published.
func liveARN(ctx context.Context, cf FunctionsAPI, name string) (string, error) {
	fn, err := cf.DescribeFunction(ctx, &cloudfront.DescribeFunctionInput{Name: aws.String(name), Stage: types.FunctionStageLive})
	var nsf *types.NoSuchFunctionExists
	if errors.As(err, &nsf) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading function %s: %w", name, err)
	}
	if fn.FunctionSummary != nil && fn.FunctionSummary.FunctionMetadata != nil {
		return aws.ToString(fn.FunctionSummary.FunctionMetadata.FunctionARN), nil
	}
	return "", nil
}

// behaviorRef is one cache behaviour of a distribution, by name.
type behaviorRef struct {
	name   string // "the default cache behavior" or "cache behavior /assets/*"
	assocs **types.FunctionAssociations
}

// siteBehaviors are the cache behaviours whose target is the site's
// origin: the ones whose paths the origin path (or the function standing
// in for it) serves.
func siteBehaviors(dc *types.DistributionConfig, originID string) []behaviorRef {
	var out []behaviorRef
	if d := dc.DefaultCacheBehavior; d != nil && aws.ToString(d.TargetOriginId) == originID {
		out = append(out, behaviorRef{name: "the default cache behavior", assocs: &d.FunctionAssociations})
	}
	if dc.CacheBehaviors != nil {
		for i := range dc.CacheBehaviors.Items {
			b := &dc.CacheBehaviors.Items[i]
			if aws.ToString(b.TargetOriginId) == originID {
				out = append(out, behaviorRef{name: "cache behavior " + aws.ToString(b.PathPattern), assocs: &b.FunctionAssociations})
			}
		}
	}
	return out
}

// fn is the ARN a behaviour runs on event ev, or "".
func (b behaviorRef) fn(ev types.EventType) string {
	if *b.assocs == nil {
		return ""
	}
	for _, fa := range (*b.assocs).Items {
		if fa.EventType == ev {
			return aws.ToString(fa.FunctionARN)
		}
	}
	return ""
}

// viewerRequest is the ARN a behaviour runs on viewer requests, or "".
func (b behaviorRef) viewerRequest() string { return b.fn(types.EventTypeViewerRequest) }

// setFn makes the behaviour run arn ("" none) on event ev, keeping its
// other associations; it reports a change.
func (b behaviorRef) setFn(ev types.EventType, arn string) bool {
	if b.fn(ev) == arn {
		return false
	}
	var items []types.FunctionAssociation
	if *b.assocs != nil {
		for _, fa := range (*b.assocs).Items {
			if fa.EventType != ev {
				items = append(items, fa)
			}
		}
	}
	if arn != "" {
		items = append(items, types.FunctionAssociation{EventType: ev, FunctionARN: aws.String(arn)})
	}
	*b.assocs = &types.FunctionAssociations{Quantity: aws.Int32(int32(len(items))), Items: items}
	return true
}

// setViewerRequest makes the behaviour run arn ("" none) on viewer
// requests; it reports a change.
func (b behaviorRef) setViewerRequest(arn string) bool {
	return b.setFn(types.EventTypeViewerRequest, arn)
}

// associate makes every behaviour of the site's origin run want on viewer
// requests. A behaviour running a function that is not one of replaceable
// (the site's own functions) is refused, named, before anything changes:
// a behaviour runs one function per event, and deploybot does not remove
// someone else's.
func associate(site releases.Site, dc *types.DistributionConfig, originID, want string, replaceable ...string) (changed bool, err error) {
	refs := siteBehaviors(dc, originID)
	if l := lambdaEdgeConflicts(site, dc, originID); want != "" && len(l) > 0 {
		return false, lambdaRefusal(site, l)
	}
	var foreign []string
	for _, b := range refs {
		if cur := b.viewerRequest(); cur != "" && cur != want && !containsString(replaceable, cur) && !legacyFunction(site, cur) {
			foreign = append(foreign, fmt.Sprintf("%s runs %s", b.name, cur))
		}
	}
	if len(foreign) > 0 {
		return false, releases.Errorf(releases.ECONFLICT, "site %s: on distribution %s, %s on viewer requests; deploybot will not replace another function (a cache behavior runs one per event): remove it, or fold what it does into a function of your own and set routing to empty",
			site.Name, site.DistributionID, strings.Join(foreign, "; "))
	}
	for _, b := range refs {
		if b.setViewerRequest(want) {
			changed = true
		}
	}
	return changed, nil
}

func containsString(list []string, s string) bool {
	for _, v := range list {
		if v != "" && v == s {
			return true
		}
	}
	return false
}

// routingProblems lists, for people, where a distribution's cache
// behaviours and custom error responses differ from what the site's
// routing needs; empty: nothing to do. want is the function every
// behaviour of the site's origin must run ("" none).
func routingProblems(site releases.Site, dc *types.DistributionConfig, originID, want string) []string {
	var out []string
	for _, b := range siteBehaviors(dc, originID) {
		if cur := b.viewerRequest(); cur != want {
			switch {
			case want == "":
				out = append(out, fmt.Sprintf("%s runs function %s on viewer requests", b.name, cur))
			case cur == "":
				out = append(out, fmt.Sprintf("%s runs no function on viewer requests", b.name))
			default:
				out = append(out, fmt.Sprintf("%s runs function %s on viewer requests, not %s", b.name, cur, want))
			}
		}
	}
	for _, code := range []int32{403, 404} {
		if p := errorPageProblem(site, dc, code); p != "" {
			out = append(out, p)
		}
	}
	out = append(out, otherErrorPages(site, dc)...)
	return out
}

// otherErrorPages names the custom error pages of codes other than 403
// and 404 that cannot work: on a kvs site every page is fetched without
// the function, outside every release.
func otherErrorPages(site releases.Site, dc *types.DistributionConfig) []string {
	if site.Strategy != StrategyKVS || dc.CustomErrorResponses == nil {
		return nil
	}
	var out []string
	for _, e := range dc.CustomErrorResponses.Items {
		code := aws.ToInt32(e.ErrorCode)
		if p := aws.ToString(e.ResponsePagePath); p != "" && code != 403 && code != 404 {
			out = append(out, fmt.Sprintf("the custom error response for %d shows %s, which CloudFront fetches without the function, outside every release (with strategy kvs the bucket root)", code, p))
		}
	}
	return out
}

// errorPageProblem says what is wrong with the custom error response for
// an origin's 403 (S3's answer for a missing key under origin access
// control) or 404, or "".
func errorPageProblem(site releases.Site, dc *types.DistributionConfig, code int32) string {
	want := NotFoundPagePath(site)
	var have *types.CustomErrorResponse
	if dc.CustomErrorResponses != nil {
		for i := range dc.CustomErrorResponses.Items {
			if aws.ToInt32(dc.CustomErrorResponses.Items[i].ErrorCode) == code {
				have = &dc.CustomErrorResponses.Items[i]
			}
		}
	}
	switch {
	case want != "" && have == nil:
		return fmt.Sprintf("no custom error response shows %s for the origin's %d", want, code)
	case want != "" && (aws.ToString(have.ResponsePagePath) != want || aws.ToString(have.ResponseCode) != "404"):
		return fmt.Sprintf("the custom error response for %d shows %q with status %s, not %s with 404", code, aws.ToString(have.ResponsePagePath), aws.ToString(have.ResponseCode), want)
	case want == "" && have != nil && site.Strategy == StrategyKVS && aws.ToString(have.ResponsePagePath) != "":
		return fmt.Sprintf("the custom error response for %d shows %s, which CloudFront fetches without the function, outside every release (set routing.not_found and deploybot serves the live release's page)", code, aws.ToString(have.ResponsePagePath))
	}
	return ""
}

// setErrorPages makes the 403 and 404 custom error responses show the
// site's 404 page (or, with none, drops those that cannot work), keeping
// the others; it reports a change. Other codes' pages on a kvs site are
// refused, named: they cannot resolve, and are not deploybot's to drop.
func setErrorPages(site releases.Site, dc *types.DistributionConfig) (bool, error) {
	if p := otherErrorPages(site, dc); len(p) > 0 {
		return false, releases.Errorf(releases.ECONFLICT, "site %s: on distribution %s, %s; remove it first", site.Name, site.DistributionID, strings.Join(p, "; "))
	}
	if errorPageProblem(site, dc, 403) == "" && errorPageProblem(site, dc, 404) == "" {
		return false, nil
	}
	want := NotFoundPagePath(site)
	var items []types.CustomErrorResponse
	if dc.CustomErrorResponses != nil {
		for _, e := range dc.CustomErrorResponses.Items {
			if c := aws.ToInt32(e.ErrorCode); c != 403 && c != 404 {
				items = append(items, e)
			}
		}
	}
	if want != "" {
		for _, code := range []int32{403, 404} {
			items = append(items, types.CustomErrorResponse{ErrorCode: aws.Int32(code), ResponsePagePath: aws.String(want),
				ResponseCode: aws.String("404"), ErrorCachingMinTTL: aws.Int64(ErrorCachingTTL)})
		}
	} else if dc.CustomErrorResponses != nil {
		// Without a page, only kvs has something to drop (see
		// errorPageProblem); an origin-path site's own pages stay.
		for _, e := range dc.CustomErrorResponses.Items {
			if c := aws.ToInt32(e.ErrorCode); (c == 403 || c == 404) && aws.ToString(e.ResponsePagePath) == "" {
				items = append(items, e)
			}
		}
	}
	dc.CustomErrorResponses = &types.CustomErrorResponses{Quantity: aws.Int32(int32(len(items))), Items: items}
	return true, nil
}

// lambdaRefusal refuses, before anything changes, to put a CloudFront
// Function on a cache behaviour that runs Lambda@Edge on a viewer event:
// CloudFront does not combine the two kinds in viewer events
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/edge-function-restrictions-all.html),
// and UpdateDistribution would fail with its InvalidFunctionAssociation.
func lambdaRefusal(site releases.Site, conflicts []string) error {
	return releases.Errorf(releases.ECONFLICT, "site %s: on distribution %s, %s: move the Lambda@Edge function to an origin event, or turn off what needs a viewer function (strategy origin-path with routing empty and release_header: false)",
		site.Name, site.DistributionID, strings.Join(conflicts, "; "))
}
