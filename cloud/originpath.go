package cloud

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront/types"

	"github.com/deploybot/deploybot/releases"
)

// CloudFrontAPI is the part of the CloudFront client the origin-path
// strategy uses, with the SDK's own signatures.
type CloudFrontAPI interface {
	GetDistributionConfig(ctx context.Context, in *cloudfront.GetDistributionConfigInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetDistributionConfigOutput, error)
	UpdateDistribution(ctx context.Context, in *cloudfront.UpdateDistributionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.UpdateDistributionOutput, error)
	GetDistribution(ctx context.Context, in *cloudfront.GetDistributionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetDistributionOutput, error)
	CreateInvalidation(ctx context.Context, in *cloudfront.CreateInvalidationInput, optFns ...func(*cloudfront.Options)) (*cloudfront.CreateInvalidationOutput, error)
	GetInvalidation(ctx context.Context, in *cloudfront.GetInvalidationInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetInvalidationOutput, error)
}

var _ CloudFrontAPI = (*cloudfront.Client)(nil)

// Phases of the origin-path strategy, in order.
const (
	PhaseUpdate         releases.Phase = "update"          // UpdateDistribution with If-Match
	PhasePropagate      releases.Phase = "propagate"       // until the distribution is Deployed
	PhaseInvalidate     releases.Phase = "invalidate"      // CreateInvalidation /*
	PhaseInvalidateWait releases.Phase = "invalidate-wait" // until the invalidation is Completed
)

// MaxPollInterval is the slowest status polling allowed: people hear of
// each phase within seconds, not after the SDK waiters' 20 s / 60 s.
const MaxPollInterval = 5 * time.Second

// Status polling is adaptive: every FastPoll for the first FastPollFor of
// a wait, when a change usually lands (a distribution deploys in a minute
// or two, an invalidation in seconds), so deploybot adds at most about a
// second to a typical wait (bench/flipspeed measures it); then slower by
// half each time up to the poll interval (MaxPollInterval by default),
// which keeps a long wait to some 12 calls a minute. A first minute alone
// was measured to add 2.8 s to a 90 s deploy: the change landed while the
// pauses were growing. CloudFront publishes no request rate for its API
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html
// lists resource quotas only); status reads are not billed, the SDK
// retries a throttled call, and one flip polls one status at a time.
const (
	FastPoll    = time.Second
	FastPollFor = 2 * time.Minute
)

// PollDelay is the pause before the next status read, elapsed into a
// wait, after a pause of last (zero for the first), with slowest the
// longest pause.
func PollDelay(elapsed, last, slowest time.Duration) time.Duration {
	return pace{fast: FastPoll, fastFor: FastPollFor, slowest: slowest}.next(elapsed, last)
}

// pace is how a wait polls: every fast for the first fastFor, then slower
// by half each time up to slowest. Only benchmarks that run CloudFront's
// delays scaled down set other than FastPoll and FastPollFor.
type pace struct{ fast, fastFor, slowest time.Duration }

func (p pace) next(elapsed, last time.Duration) time.Duration {
	fast := min(p.fast, p.slowest)
	if elapsed < p.fastFor || last == 0 {
		return fast
	}
	return min(p.slowest, max(fast, last+last/2))
}

// OriginPath flips a site by pointing its CloudFront origin at the
// release's folder. Each flip costs one distribution update (minutes to
// propagate to every edge location) and one invalidation of "/*", which
// CloudFront bills as one path (the first 1,000 paths a month are free,
// then about $0.005 each).
type OriginPath struct {
	Client CloudFrontAPI
	// PollInterval is the status polling period, capped at MaxPollInterval.
	PollInterval time.Duration
	// FastPoll is the pause in the first FastPollFor of a wait (zero: the
	// package's FastPoll), for benchmarks that scale CloudFront's delays
	// down; the fast stretch scales with it.
	FastPoll time.Duration
}

var _ releases.CDN = (*OriginPath)(nil)

// Strategy names the strategy.
func (c *OriginPath) Strategy() string { return releases.DefaultStrategy }

func (c *OriginPath) pace() pace {
	fast := c.FastPoll
	if fast <= 0 {
		fast = FastPoll
	}
	return pace{fast: fast, fastFor: fast * (FastPollFor / FastPoll), slowest: c.interval()}
}

func (c *OriginPath) interval() time.Duration {
	if c.PollInterval <= 0 || c.PollInterval > MaxPollInterval {
		return MaxPollInterval
	}
	return c.PollInterval
}

// Current reads the origin path the distribution is configured with.
func (c *OriginPath) Current(ctx context.Context, site releases.Site) (releases.Current, error) {
	if err := notSetUp(site); err != nil {
		return releases.Current{}, err
	}
	out, err := c.Client.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(site.DistributionID)})
	if err != nil {
		return releases.Current{}, c.wrap(site, "reading distribution", err)
	}
	o, err := findOrigin(site, out.DistributionConfig)
	if err != nil {
		return releases.Current{}, err
	}
	p := aws.ToString(o.OriginPath)
	v, _ := site.VersionFromOriginPath(p)
	return releases.Current{Version: v, Path: p}, nil
}

func (c *OriginPath) wrap(site releases.Site, what string, err error) error {
	var nsd *types.NoSuchDistribution
	if errors.As(err, &nsd) {
		return releases.Errorf(releases.ENOTFOUND, "site %s: distribution %s does not exist: %w", site.Name, site.DistributionID, err)
	}
	var ad *types.AccessDenied
	if errors.As(err, &ad) {
		return releases.Errorf(releases.EUNAUTHORIZED, "site %s: %s %s: access denied: %w", site.Name, what, site.DistributionID, err)
	}
	return fmt.Errorf("site %s: %s %s: %w", site.Name, what, site.DistributionID, err)
}

// findOrigin picks the origin the site flips: the one named origin_id, or
// the distribution's only S3 origin.
func findOrigin(site releases.Site, cfg *types.DistributionConfig) (*types.Origin, error) {
	o, err := pickOrigin(site, cfg)
	if err != nil {
		return nil, err
	}
	// An S3 website endpoint answers a directory path without its slash
	// (/docs) with a redirect whose Location holds the origin path
	// (/www/v42/docs/), which the viewer then asks for under the site's
	// domain, doubling the release folder; and it cannot use Origin Access
	// Control
	// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/WebsiteEndpoints.html).
	if d := strings.ToLower(aws.ToString(o.DomainName)); strings.Contains(d, ".s3-website") {
		return nil, releases.Errorf(releases.EINVALID, "site %s: origin %s of distribution %s is an S3 website endpoint (%s): it redirects directory paths with the release folder in the Location and cannot use Origin Access Control; point the origin at the bucket's REST endpoint (%s.s3.<region>.amazonaws.com) with OAC",
			site.Name, aws.ToString(o.Id), site.DistributionID, d, site.Bucket)
	}
	// A typo in bucket would otherwise point the origin at a folder its
	// own bucket lacks: the flip succeeds and every page answers 403.
	if b := BucketOfOrigin(aws.ToString(o.DomainName)); b != "" && b != site.Bucket {
		return nil, releases.Errorf(releases.EINVALID, "site %s: origin %s of distribution %s reads bucket %s, but the configuration's bucket is %s: fix sites[].bucket, or point the origin at %s (deploybot check --site %s says what else differs)",
			site.Name, aws.ToString(o.Id), site.DistributionID, b, site.Bucket, site.Bucket, site.Name)
	}
	return o, nil
}

func pickOrigin(site releases.Site, cfg *types.DistributionConfig) (*types.Origin, error) {
	if cfg == nil || cfg.Origins == nil {
		return nil, releases.Errorf(releases.EINVALID, "site %s: distribution %s has no origins", site.Name, site.DistributionID)
	}
	var s3Origins []*types.Origin
	for i := range cfg.Origins.Items {
		o := &cfg.Origins.Items[i]
		if site.OriginID != "" {
			if aws.ToString(o.Id) == site.OriginID {
				return o, nil
			}
			continue
		}
		if o.S3OriginConfig != nil || strings.Contains(aws.ToString(o.DomainName), ".s3") {
			s3Origins = append(s3Origins, o)
		}
	}
	if site.OriginID != "" {
		return nil, releases.Errorf(releases.EINVALID, "site %s: distribution %s has no origin with id %q", site.Name, site.DistributionID, site.OriginID)
	}
	if len(s3Origins) != 1 {
		return nil, releases.Errorf(releases.EINVALID, "site %s: distribution %s has %d S3 origins; set origin_id to say which one to flip", site.Name, site.DistributionID, len(s3Origins))
	}
	return s3Origins[0], nil
}

// Plan returns the four steps of an origin-path flip.
func (c *OriginPath) Plan(site releases.Site, cur releases.Current, to, deployID string) []releases.Step {
	target := site.OriginPath(to)
	var invalidationID string
	return []releases.Step{
		{Phase: PhaseUpdate, Title: "Updating the distribution's origin path", Flips: true,
			Run: func(ctx context.Context) error { return c.update(ctx, site, cur.Path, target) }},
		{Phase: PhasePropagate, Title: "Waiting for the distribution to deploy",
			Run: func(ctx context.Context) error { return c.waitDeployed(ctx, site) }},
		{Phase: PhaseInvalidate, Title: "Invalidating /*",
			Run: func(ctx context.Context) (err error) {
				invalidationID, err = c.invalidate(ctx, site, deployID)
				return err
			}},
		{Phase: PhaseInvalidateWait, Title: "Waiting for the invalidation to complete",
			Run: func(ctx context.Context) error { return c.waitInvalidated(ctx, site, invalidationID) }},
	}
}

// update sets the origin path with If-Match. A 412 means the distribution
// changed since it was read: it is re-read once, and if its origin path is
// no longer the one this deploy started from, someone else flipped it and
// the deploy stops rather than overwrite their change.
func (c *OriginPath) update(ctx context.Context, site releases.Site, from, target string) error {
	for attempt := 1; ; attempt++ {
		out, err := c.Client.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(site.DistributionID)})
		if err != nil {
			return c.wrap(site, "reading distribution", err)
		}
		o, err := findOrigin(site, out.DistributionConfig)
		if err != nil {
			return err
		}
		now := aws.ToString(o.OriginPath)
		if now == target {
			return nil // already flipped (a resumed deploy, or a race we lost to the same goal)
		}
		if now != from {
			return releases.Errorf(releases.ECONFLICT,
				"site %s: the origin path of distribution %s was changed by someone else while this deploy ran (expected %q, found %q); nothing was changed",
				site.Name, site.DistributionID, from, now)
		}
		o.OriginPath = aws.String(target)
		_, err = c.Client.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{
			Id: aws.String(site.DistributionID), IfMatch: out.ETag, DistributionConfig: out.DistributionConfig,
		})
		var pf *types.PreconditionFailed
		if errors.As(err, &pf) && attempt == 1 {
			continue
		}
		if errors.As(err, &pf) {
			return releases.Errorf(releases.ECONFLICT, "site %s: distribution %s keeps changing under this deploy (ETag mismatch twice); nothing was changed: %w", site.Name, site.DistributionID, err)
		}
		if err != nil {
			return c.wrap(site, "updating distribution", err)
		}
		return nil
	}
}

// poll calls check every interval until it reports done. Errors the SDK
// could not retry away are tolerated a few times in a row, since a flip
// that is already under way must not fail for one bad status read.
func (c *OriginPath) poll(ctx context.Context, check func(context.Context) (bool, error)) error {
	return pollEvery(ctx, c.pace(), check)
}

// pollEvery runs check, paced by p, until it reports done, a domain
// error, five errors in a row, or ctx ends.
func pollEvery(ctx context.Context, p pace, check func(context.Context) (bool, error)) error {
	const maxConsecutiveErrors = 5
	start := time.Now()
	var delay time.Duration
	failures := 0
	for {
		done, err := check(ctx)
		switch {
		case err != nil && ctx.Err() != nil:
			return ctx.Err()
		case err != nil:
			var re *releases.Error
			failures++
			if errors.As(err, &re) || failures >= maxConsecutiveErrors {
				return err
			}
		case done:
			return nil
		default:
			failures = 0
		}
		delay = p.next(time.Since(start), delay)
		t := time.NewTimer(delay)
		select {
		case <-ctx.Done():
			t.Stop()
			return ctx.Err()
		case <-t.C:
		}
	}
}

func (c *OriginPath) waitDeployed(ctx context.Context, site releases.Site) error {
	return waitDeployed(ctx, c.Client, site, c.pace())
}

// DistributionGetter reads a distribution's status.
type DistributionGetter interface {
	GetDistribution(ctx context.Context, in *cloudfront.GetDistributionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetDistributionOutput, error)
}

// waitDeployed polls until the site's distribution is Deployed.
func waitDeployed(ctx context.Context, client DistributionGetter, site releases.Site, p pace) error {
	return pollEvery(ctx, p, func(ctx context.Context) (bool, error) {
		out, err := client.GetDistribution(ctx, &cloudfront.GetDistributionInput{Id: aws.String(site.DistributionID)})
		if err != nil {
			return false, (&OriginPath{}).wrap(site, "reading distribution status", err)
		}
		return out.Distribution != nil && strings.EqualFold(aws.ToString(out.Distribution.Status), "Deployed"), nil
	})
}

// invalidate creates the "/*" invalidation. The deploy id is the caller
// reference, so a retried or resumed call gets the same invalidation back
// instead of paying for a second one. CloudFront allows 15 wildcard
// invalidations in progress per distribution
// (https://docs.aws.amazon.com/AmazonCloudFront/latest/DeveloperGuide/cloudfront-limits.html#limits-invalidations);
// past that it answers TooManyInvalidationsInProgress, and the flip waits
// its turn, polling, and says so (behind how many) rather than fail.
func (c *OriginPath) invalidate(ctx context.Context, site releases.Site, deployID string) (string, error) {
	told := -1
	for {
		out, err := c.Client.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{
			DistributionId: aws.String(site.DistributionID),
			InvalidationBatch: &types.InvalidationBatch{
				CallerReference: aws.String(deployID),
				Paths:           &types.Paths{Quantity: aws.Int32(1), Items: []string{"/*"}},
			},
		})
		var busy *types.TooManyInvalidationsInProgress
		if errors.As(err, &busy) {
			if n := c.inProgress(ctx, site); n != told {
				told = n
				if n > 0 {
					releases.Note(ctx, fmt.Sprintf("queued: %d invalidation(s) are in progress on distribution %s, CloudFront's limit; waiting for one to finish", n, site.DistributionID))
				} else {
					releases.Note(ctx, fmt.Sprintf("queued: distribution %s has too many invalidations in progress; waiting for one to finish", site.DistributionID))
				}
			}
			if err := releases.Wait(ctx, nil, c.interval()); err != nil {
				return "", err
			}
			continue
		}
		if err != nil {
			return "", c.wrap(site, "invalidating", err)
		}
		if out.Invalidation == nil || out.Invalidation.Id == nil {
			return "", fmt.Errorf("site %s: CreateInvalidation answered without an invalidation id", site.Name)
		}
		return aws.ToString(out.Invalidation.Id), nil
	}
}

// inProgress counts the distribution's invalidations in progress (the
// newest 100, where they all are); -1 when it cannot tell.
func (c *OriginPath) inProgress(ctx context.Context, site releases.Site) int {
	lister, ok := c.Client.(InvalidationLister)
	if !ok {
		return -1
	}
	out, err := lister.ListInvalidations(ctx, &cloudfront.ListInvalidationsInput{DistributionId: aws.String(site.DistributionID), MaxItems: aws.Int32(100)})
	if err != nil || out.InvalidationList == nil {
		return -1
	}
	n := 0
	for _, inv := range out.InvalidationList.Items {
		if strings.EqualFold(aws.ToString(inv.Status), "InProgress") {
			n++
		}
	}
	return n
}

// InvalidationLister is what counting the invalidations in progress adds
// to CloudFrontAPI.
type InvalidationLister interface {
	ListInvalidations(ctx context.Context, in *cloudfront.ListInvalidationsInput, optFns ...func(*cloudfront.Options)) (*cloudfront.ListInvalidationsOutput, error)
}

var _ InvalidationLister = (*cloudfront.Client)(nil)

func (c *OriginPath) waitInvalidated(ctx context.Context, site releases.Site, id string) error {
	return c.poll(ctx, func(ctx context.Context) (bool, error) {
		out, err := c.Client.GetInvalidation(ctx, &cloudfront.GetInvalidationInput{DistributionId: aws.String(site.DistributionID), Id: aws.String(id)})
		if err != nil {
			return false, c.wrap(site, "reading invalidation "+id, err)
		}
		return out.Invalidation != nil && strings.EqualFold(aws.ToString(out.Invalidation.Status), "Completed"), nil
	})
}

// Resume works out, from the distribution itself, how far an interrupted
// flip got. Before the update it stops (the deploy was asked for long ago;
// flipping late would surprise), after it it carries on: waiting again is
// harmless, and the invalidation is created with the deploy id as caller
// reference, so one that exists is found rather than made twice.
func (c *OriginPath) Resume(ctx context.Context, site releases.Site, d releases.Deploy) ([]releases.Step, bool, error) {
	cur, err := c.Current(ctx, site)
	if err != nil {
		return nil, false, err
	}
	target := site.OriginPath(d.To)
	flipped := cur.Path == target
	steps := c.Plan(site, releases.Current{Version: d.From, Path: d.FromPath}, d.To, d.ID)
	switch d.Phase {
	case releases.PhasePending, PhaseUpdate:
		if flipped {
			return steps[1:], true, nil
		}
		if cur.Path == d.FromPath {
			return nil, false, releases.Errorf(releases.ECONFLICT, "interrupted before the distribution was updated; nothing changed")
		}
		return nil, false, releases.Errorf(releases.ECONFLICT, "interrupted, and the origin path is now %q (changed outside this deploy)", cur.Path)
	case PhasePropagate:
		if !flipped {
			return nil, false, releases.Errorf(releases.ECONFLICT, "interrupted, and the origin path is now %q, not %q (changed outside this deploy)", cur.Path, target)
		}
		return steps[1:], true, nil
	case PhaseInvalidate, PhaseInvalidateWait:
		if !flipped {
			return nil, false, releases.Errorf(releases.ECONFLICT, "interrupted, and the origin path is now %q, not %q (changed outside this deploy)", cur.Path, target)
		}
		// Invalidating again with the same caller reference returns the
		// existing invalidation, whose id the wait needs.
		return steps[2:], true, nil
	}
	return nil, flipped, releases.Errorf(releases.ECONFLICT, "interrupted in phase %q, which this version does not know how to resume", d.Phase)
}
