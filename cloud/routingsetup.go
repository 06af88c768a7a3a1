package cloud

import (
	"context"
	"fmt"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/releases"
)

// RoutingSetup gives an origin-path site its routing (releases.Routing)
// on CloudFront: a small viewer-request function (RouterCode) on every
// cache behaviour of the site's origin for the directory index and the
// fallback, and custom error responses for the 404 page; and the
// viewer-response function that names the release (see releaseheader.go). Strategy kvs
// sites get the same from kvs-setup, in their own function.
type RoutingSetup struct {
	CF FunctionsAPI
	// PollInterval is how often Apply reads the distribution's status
	// while it deploys; zero: MaxPollInterval.
	PollInterval time.Duration
}

// RoutingSetupReport says what Apply did.
type RoutingSetupReport struct {
	Function    string `json:"function,omitempty"` // empty: the routing needs none
	FunctionARN string `json:"function_arn,omitempty"`
	Created     bool   `json:"created"`         // the function was new
	Associated  bool   `json:"associated"`      // function associations changed
	ErrorPages  bool   `json:"error_pages_set"` // custom error responses changed
	Updated     bool   `json:"updated"`         // the distribution was updated
	ReleaseHeaderReport
}

// Steps lists, for people, what Apply does.
func (r *RoutingSetup) Steps(site releases.Site) []string {
	var steps []string
	if NeedsRouter(site) {
		steps = append(steps, fmt.Sprintf("create or update the CloudFront Function %s (runtime %s: %s) and publish it", RouterName(site), FunctionRuntime, routingSummary(site)),
			fmt.Sprintf("associate it with the viewer requests of every cache behaviour of distribution %s that serves the site's origin (refusing one that runs another function)", site.DistributionID))
	} else {
		steps = append(steps, fmt.Sprintf("take function %s off distribution %s's cache behaviours, if it is there (routing.index and routing.fallback are empty)", RouterName(site), site.DistributionID))
	}
	return append(steps, releaseHeaderStep(site), errorPagesStep(site), "in one distribution update, then wait until the distribution is Deployed (minutes)")
}

func routingSummary(site releases.Site) string {
	switch rt := site.Routing; {
	case rt.Fallback != "":
		return "paths without a file extension serve " + rt.Fallback
	default:
		return "/docs/ and /docs serve docs/" + rt.Index
	}
}

// Check lists where the distribution differs from what the site's routing
// needs; empty: Apply has nothing to do.
func (r *RoutingSetup) Check(ctx context.Context, site releases.Site) ([]string, error) {
	var problems []string
	want := ""
	if NeedsRouter(site) {
		arn, err := liveARN(ctx, r.CF, RouterName(site))
		if err != nil {
			return nil, err
		}
		if arn == "" {
			// Not published: the behaviours are compared against its
			// name, which no ARN equals.
			problems = append(problems, fmt.Sprintf("function %s is not published", RouterName(site)))
			arn = RouterName(site)
		} else {
			code, err := r.CF.GetFunction(ctx, &cloudfront.GetFunctionInput{Name: aws.String(RouterName(site)), Stage: types.FunctionStageLive})
			if err != nil {
				return nil, fmt.Errorf("reading the code of function %s: %w", RouterName(site), err)
			}
			wantCode, err := RouterCode(site)
			if err != nil {
				return nil, err
			}
			if string(code.FunctionCode) != wantCode {
				problems = append(problems, fmt.Sprintf("the published code of function %s is not what this configuration and version of deploybot generate", RouterName(site)))
			}
		}
		want = arn
	}
	dc, err := r.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(site.DistributionID)})
	if err != nil {
		return nil, fmt.Errorf("reading distribution %s: %w", site.DistributionID, err)
	}
	o, err := findOrigin(site, dc.DistributionConfig)
	if err != nil {
		return nil, err
	}
	problems = append(problems, routingProblems(site, dc.DistributionConfig, aws.ToString(o.Id), want)...)
	hdr, err := releaseHeaderCheck(ctx, r.CF, site, dc.DistributionConfig, aws.ToString(o.Id))
	if err != nil {
		return nil, err
	}
	return append(problems, hdr...), nil
}

// Apply sets the routing up. It is safe to run again: the function is
// updated in place, and a distribution that already routes as configured
// is not updated.
func (r *RoutingSetup) Apply(ctx context.Context, site releases.Site) (*RoutingSetupReport, error) {
	if site.Strategy == StrategyKVS {
		return nil, releases.Errorf(releases.EINVALID, "site %s is on strategy kvs, whose function routes too: run deploybot kvs-setup --site %s --apply", site.Name, site.Name)
	}
	rep := &RoutingSetupReport{}
	router, err := liveARN(ctx, r.CF, RouterName(site))
	if err != nil {
		return nil, err
	}
	want := ""
	if NeedsRouter(site) {
		code, err := RouterCode(site)
		if err != nil {
			return nil, err
		}
		rep.Function = RouterName(site)
		fcfg := routerFunctionConfig(site)
		if want, rep.Created, err = publishFunction(ctx, r.CF, rep.Function, code, fcfg); err != nil {
			return nil, err
		}
		rep.FunctionARN = want
	}
	dc, err := r.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(site.DistributionID)})
	if err != nil {
		return nil, fmt.Errorf("reading distribution %s: %w", site.DistributionID, err)
	}
	o, err := findOrigin(site, dc.DistributionConfig)
	if err != nil {
		return nil, err
	}
	if rep.Associated, err = associate(site, dc.DistributionConfig, aws.ToString(o.Id), want, router); err != nil {
		return nil, err
	}
	var hdr bool
	if rep.ReleaseHeaderReport, hdr, err = releaseHeader(ctx, r.CF, site, dc.DistributionConfig, aws.ToString(o.Id)); err != nil {
		return nil, err
	}
	rep.Associated = rep.Associated || hdr
	if rep.ErrorPages, err = setErrorPages(site, dc.DistributionConfig); err != nil {
		return nil, err
	}
	if !rep.Associated && !rep.ErrorPages {
		return rep, nil
	}
	if _, err := r.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(site.DistributionID), IfMatch: dc.ETag,
		DistributionConfig: dc.DistributionConfig}); err != nil {
		return nil, fmt.Errorf("updating distribution %s: %w", site.DistributionID, err)
	}
	rep.Updated = true
	interval := r.PollInterval
	if interval <= 0 || interval > MaxPollInterval {
		interval = MaxPollInterval
	}
	if err := waitDeployed(ctx, r.CF, site, pace{fast: FastPoll, fastFor: FastPollFor, slowest: interval}); err != nil {
		return rep, fmt.Errorf("distribution %s was updated but did not report Deployed: %w", site.DistributionID, err)
	}
	return rep, nil
}
