package cloud

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/releases"
)

// This file gives a site's answers the header that names their release
// (releases.ReleaseHeader): a viewer-response function (ReleaseHeaderCode)
// on every cache behaviour of the site's origin, on both strategies.
// routing-setup and kvs-setup both apply it, in the same distribution
// update as the rest of their changes.
//
// Cost: one CloudFront Functions invocation per request ($0.10 per
// million at the time of writing), on top of a kvs site's viewer-request
// one; and the behaviour's one viewer-response slot. A site that needs
// that slot for a function of its own sets release_header: false.

// ReleaseHeaderName is the name of a site's viewer-response function.
func ReleaseHeaderName(site releases.Site) string { return accountName(site, "-release") }

// releaseHeader publishes the site's viewer-response function and makes
// every behaviour of the site's origin in dc run it; with NoReleaseHeader
// it takes the function off instead (if it is there) and publishes
// nothing. It reports the function's name and ARN ("" when off), whether
// it was created, and whether dc changed.
func releaseHeader(ctx context.Context, cf FunctionsAPI, site releases.Site, dc *types.DistributionConfig, originID string) (rep ReleaseHeaderReport, changed bool, err error) {
	name := ReleaseHeaderName(site)
	own, err := liveARN(ctx, cf, name)
	if err != nil {
		return rep, false, err
	}
	if site.NoReleaseHeader {
		changed, err = associateResponse(site, dc, originID, "", own)
		return rep, changed, err
	}
	code, err := ReleaseHeaderCode(site)
	if err != nil {
		return rep, false, err
	}
	// Refused before anything is published. A function's ARN does not
	// change when it is updated, and only a published one can be
	// associated, so any other is someone else's.
	if err := foreignResponse(site, dc, originID, own); err != nil {
		return rep, false, err
	}
	fcfg := releaseHeaderFunctionConfig(site)
	rep.Function = name
	if rep.FunctionARN, rep.Created, err = publishFunction(ctx, cf, name, code, fcfg); err != nil {
		return rep, false, err
	}
	changed, err = associateResponse(site, dc, originID, rep.FunctionARN, own)
	return rep, changed, err
}

// releaseHeaderStep says, for people, what setup does about the header.
func releaseHeaderStep(site releases.Site) string {
	if site.NoReleaseHeader {
		return fmt.Sprintf("take function %s off the viewer responses of distribution %s's cache behaviours, if it is there (release_header is false; answers name their release in %s)",
			ReleaseHeaderName(site), site.DistributionID, strings.ToLower(releases.MetadataHeader))
	}
	return fmt.Sprintf("create or update the CloudFront Function %s (runtime %s: every answer names its release in %s, one invocation per request), publish it, and associate it with the viewer responses of every cache behaviour of distribution %s that serves the site's origin (refusing one that runs another function; release_header: false keeps it)",
		ReleaseHeaderName(site), FunctionRuntime, strings.ToLower(releases.ReleaseHeader), site.DistributionID)
}

// ReleaseHeaderReport says what setup did about the release header.
type ReleaseHeaderReport struct {
	Function    string `json:"release_function,omitempty"` // empty: release_header is false
	FunctionARN string `json:"release_function_arn,omitempty"`
	Created     bool   `json:"release_function_created,omitempty"`
}

// releaseHeaderCheck lists, for people, where the distribution differs
// from what the site's release_header asks for; empty: nothing to do.
func releaseHeaderCheck(ctx context.Context, cf FunctionsAPI, site releases.Site, dc *types.DistributionConfig, originID string) ([]string, error) {
	name := ReleaseHeaderName(site)
	own, err := liveARN(ctx, cf, name)
	if err != nil {
		return nil, err
	}
	if site.NoReleaseHeader {
		return releaseHeaderProblems(dc, originID, "", own), nil
	}
	if own == "" {
		// Not published: the behaviours are compared against its name,
		// which no ARN equals.
		return append([]string{fmt.Sprintf("function %s is not published", name)}, releaseHeaderProblems(dc, originID, name, "")...), nil
	}
	var out []string
	code, err := cf.GetFunction(ctx, &cloudfront.GetFunctionInput{Name: aws.String(name), Stage: types.FunctionStageLive})
	if err != nil {
		return nil, fmt.Errorf("reading the code of function %s: %w", name, err)
	}
	want, err := ReleaseHeaderCode(site)
	if err != nil {
		return nil, err
	}
	if string(code.FunctionCode) != want {
		out = append(out, fmt.Sprintf("the published code of function %s is not what this version of deploybot generates", name))
	}
	return append(out, releaseHeaderProblems(dc, originID, own, own)...), nil
}

// foreignResponse refuses, naming them, the behaviours of the site's
// origin that run a function other than own on viewer responses: a
// behaviour runs one function per event, and deploybot does not remove
// someone else's.
func foreignResponse(site releases.Site, dc *types.DistributionConfig, originID, own string) error {
	if l := lambdaEdgeConflicts(site, dc, originID); len(l) > 0 {
		return lambdaRefusal(site, l)
	}
	var foreign []string
	for _, b := range siteBehaviors(dc, originID) {
		if cur := b.fn(types.EventTypeViewerResponse); cur != "" && cur != own && !legacyFunction(site, cur) {
			foreign = append(foreign, fmt.Sprintf("%s runs %s", b.name, cur))
		}
	}
	if len(foreign) == 0 {
		return nil
	}
	return releases.Errorf(releases.ECONFLICT, "site %s: on distribution %s, %s on viewer responses; deploybot will not replace another function (a cache behavior runs one per event): set release_header: false to keep it (answers then name their release in %s), or remove it",
		site.Name, site.DistributionID, strings.Join(foreign, "; "), strings.ToLower(releases.MetadataHeader))
}

// associateResponse makes every behaviour of the site's origin run want
// on viewer responses, or, with want "", takes own (the site's function)
// off them, leaving any other function alone; it reports a change.
// foreignResponse has refused the others when want is set.
func associateResponse(site releases.Site, dc *types.DistributionConfig, originID, want, own string) (changed bool, err error) {
	if want != "" {
		if err := foreignResponse(site, dc, originID, own); err != nil {
			return false, err
		}
	}
	for _, b := range siteBehaviors(dc, originID) {
		if cur := b.fn(types.EventTypeViewerResponse); want == "" && (cur == "" || cur != own && !legacyFunction(site, cur)) {
			continue
		}
		if b.setFn(types.EventTypeViewerResponse, want) {
			changed = true
		}
	}
	return changed, nil
}

// releaseHeaderProblems lists, for people, the behaviours of the site's
// origin that do not run want on viewer responses (want "": that run the
// site's own function own).
func releaseHeaderProblems(dc *types.DistributionConfig, originID, want, own string) []string {
	var out []string
	for _, b := range siteBehaviors(dc, originID) {
		cur := b.fn(types.EventTypeViewerResponse)
		switch {
		case want == "" && own != "" && cur == own:
			out = append(out, fmt.Sprintf("%s runs function %s on viewer responses, which release_header: false turns off", b.name, cur))
		case want == "" || cur == want:
		case cur == "":
			out = append(out, fmt.Sprintf("%s runs no function on viewer responses, so answers do not name their release in %s", b.name, strings.ToLower(releases.ReleaseHeader)))
		default:
			out = append(out, fmt.Sprintf("%s runs function %s on viewer responses, not %s", b.name, cur, want))
		}
	}
	return out
}
