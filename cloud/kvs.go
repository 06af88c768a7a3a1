package cloud

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/url"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"
	kvstypes "github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore/types"
	smithyendpoints "github.com/aws/smithy-go/endpoints"

	"github.com/deploybot/deploybot/releases"
)

// KVSAPI is the part of the KeyValueStore client the kvs strategy uses,
// with the SDK's own signatures.
type KVSAPI interface {
	DescribeKeyValueStore(ctx context.Context, in *cloudfrontkeyvaluestore.DescribeKeyValueStoreInput, optFns ...func(*cloudfrontkeyvaluestore.Options)) (*cloudfrontkeyvaluestore.DescribeKeyValueStoreOutput, error)
	GetKey(ctx context.Context, in *cloudfrontkeyvaluestore.GetKeyInput, optFns ...func(*cloudfrontkeyvaluestore.Options)) (*cloudfrontkeyvaluestore.GetKeyOutput, error)
	PutKey(ctx context.Context, in *cloudfrontkeyvaluestore.PutKeyInput, optFns ...func(*cloudfrontkeyvaluestore.Options)) (*cloudfrontkeyvaluestore.PutKeyOutput, error)
	DeleteKey(ctx context.Context, in *cloudfrontkeyvaluestore.DeleteKeyInput, optFns ...func(*cloudfrontkeyvaluestore.Options)) (*cloudfrontkeyvaluestore.DeleteKeyOutput, error)
}

var _ KVSAPI = (*cloudfrontkeyvaluestore.Client)(nil)

// StrategyKVS is the strategy name of KVS.
const StrategyKVS = releases.StrategyKVS

// Phases of the kvs strategy.
const (
	PhaseLivePage     releases.Phase = "live-page"     // the target's 404 page to where CloudFront fetches it
	PhaseKeyWrite     releases.Phase = "key-write"     // PutKey with If-Match on the store's ETag
	PhaseKeyPropagate releases.Phase = "key-propagate" // until the key has reached the edge
)

// DefaultKVSPropagation is how long a flip waits for a key write to reach
// every edge location. AWS documents KeyValueStore updates as reaching the
// edge within seconds and offers no status to poll, so without a site url
// to watch (the visible phase) the wait is fixed.
const DefaultKVSPropagation = 10 * time.Second

// KVS flips a site by writing its live version into a CloudFront
// KeyValueStore, which the site's viewer-request function (FunctionCode)
// reads on every request: one PutKey, no distribution update and no
// invalidation, because the version is part of every cache key. A flip
// costs one PutKey (KeyValueStore API calls are billed per million; reads
// by functions are included) and reaches the edge in seconds.
type KVS struct {
	Client KVSAPI
	// CF reads the distribution and the function for Preflight.
	CF FunctionsAPI
	// Propagation is the wait after the write; zero: DefaultKVSPropagation.
	Propagation time.Duration
	// After waits; nil means time.After.
	After func(time.Duration) <-chan time.Time
	// Pages copies the target's 404 page before each flip (routing.not_found);
	// nil: the page is left as it is.
	Pages LivePager
}

var _ releases.CDN = (*KVS)(nil)

// Strategy names the strategy.
func (k *KVS) Strategy() string { return StrategyKVS }

func (k *KVS) wrap(site releases.Site, what string, err error) error {
	var nf *kvstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return releases.Errorf(releases.ENOTFOUND, "site %s: %s in key value store %s: not found: %w", site.Name, what, site.KVSARN, err)
	}
	var ad *kvstypes.AccessDeniedException
	if errors.As(err, &ad) {
		return releases.Errorf(releases.EUNAUTHORIZED, "site %s: %s in key value store %s: access denied: %w", site.Name, what, site.KVSARN, err)
	}
	return fmt.Errorf("site %s: %s in key value store %s: %w", site.Name, what, site.KVSARN, err)
}

// Current reads the site's key. Path is the key's value, which is what
// the edge serves; a missing key is no release.
func (k *KVS) Current(ctx context.Context, site releases.Site) (releases.Current, error) {
	if err := notSetUp(site); err != nil {
		return releases.Current{}, err
	}
	out, err := k.Client.GetKey(ctx, &cloudfrontkeyvaluestore.GetKeyInput{KvsARN: aws.String(site.KVSARN), Key: aws.String(site.Name)})
	var nf *kvstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return releases.Current{}, nil
	}
	if err != nil {
		return releases.Current{}, k.wrap(site, "reading key "+site.Name, err)
	}
	v := aws.ToString(out.Value)
	if releases.ValidateVersion(v) != nil {
		return releases.Current{Path: v}, nil
	}
	return releases.Current{Version: v, Path: v}, nil
}

var _ releases.Preflighter = (*KVS)(nil)

// Preflight refuses a flip that would change nothing visitors see: the
// distribution must run this site's function, as published by this
// version's kvs-setup (the code compared byte for byte, so a deploybot
// upgrade that changes the function asks for kvs-setup again), with the
// origin path cleared (the function adds the release folder itself). It
// costs three read calls per promote.
func (k *KVS) Preflight(ctx context.Context, site releases.Site) error {
	if err := notSetUp(site); err != nil {
		return err
	}
	notReady := func(format string, args ...any) error {
		return releases.Errorf(releases.ECONFLICT, "site %s is on strategy kvs, but %s: run deploybot kvs-setup --site %s --apply first",
			site.Name, fmt.Sprintf(format, args...), site.Name)
	}
	if k.CF == nil {
		return releases.Errorf(releases.EINTERNAL, "site %s: the kvs strategy was built without a CloudFront client", site.Name)
	}
	name := FunctionName(site)
	fn, err := k.CF.DescribeFunction(ctx, &cloudfront.DescribeFunctionInput{Name: aws.String(name), Stage: cftypes.FunctionStageLive})
	var nsf *cftypes.NoSuchFunctionExists
	if errors.As(err, &nsf) {
		return notReady("its function %s is not published", name)
	}
	if err != nil {
		return fmt.Errorf("site %s: reading function %s: %w", site.Name, name, err)
	}
	var arn string
	if fn.FunctionSummary != nil && fn.FunctionSummary.FunctionMetadata != nil {
		arn = aws.ToString(fn.FunctionSummary.FunctionMetadata.FunctionARN)
	}
	code, err := k.CF.GetFunction(ctx, &cloudfront.GetFunctionInput{Name: aws.String(name), Stage: cftypes.FunctionStageLive})
	if err != nil {
		return fmt.Errorf("site %s: reading the code of function %s: %w", site.Name, name, err)
	}
	want, err := FunctionCode(site, KVSID(site.KVSARN))
	if err != nil {
		return err
	}
	if !bytes.Equal(code.FunctionCode, []byte(want)) {
		return notReady("the published code of function %s is not what this version of deploybot generates", name)
	}
	dc, err := k.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(site.DistributionID)})
	if err != nil {
		return fmt.Errorf("site %s: reading distribution %s: %w", site.Name, site.DistributionID, err)
	}
	o, err := findOrigin(site, dc.DistributionConfig)
	if err != nil {
		return err
	}
	if p := aws.ToString(o.OriginPath); p != "" {
		return notReady("distribution %s still has origin path %q (the function adds the release folder itself)", site.DistributionID, p)
	}
	if p := routingProblems(site, dc.DistributionConfig, aws.ToString(o.Id), arn); len(p) > 0 {
		return notReady("on distribution %s, %s", site.DistributionID, strings.Join(p, "; "))
	}
	return nil
}

// Plan writes the key, then waits for it to reach the edge. A site with a
// 404 page first copies the target's page to where CloudFront fetches it
// (NotFoundPagePath): before the key, so a copy that fails stops the flip
// with nothing visitors see changed, except, for the seconds until the
// key is written, the 404 page.
func (k *KVS) Plan(site releases.Site, cur releases.Current, to, _ string) []releases.Step {
	var steps []releases.Step
	if k.Pages != nil && site.Routing.NotFound != "" {
		steps = append(steps, releases.Step{Phase: PhaseLivePage, Title: "Copying the release's 404 page to where CloudFront fetches it",
			Run: func(ctx context.Context) error { return k.Pages.PublishLivePage(ctx, site, to) }})
	}
	return append(steps, []releases.Step{
		{Phase: PhaseKeyWrite, Title: "Writing the live version to the key value store", Flips: true,
			Run: func(ctx context.Context) error { return k.write(ctx, site, cur.Path, to) }},
		{Phase: PhaseKeyPropagate, Title: "Waiting for the key to reach the edge", Propagation: k.propagation(),
			Run: func(ctx context.Context) error { return releases.Wait(ctx, k.After, k.propagation()) }},
	}...)
}

// write puts the key with If-Match on the store's ETag. A conflict means
// the store changed since it was read: it is read again once, and if the
// key no longer holds what this deploy started from, someone else flipped
// and the deploy stops rather than overwrite their change.
func (k *KVS) write(ctx context.Context, site releases.Site, from, to string) error {
	return k.swapKey(ctx, site, site.Name, func() (bool, error) {
		cur, err := k.Current(ctx, site)
		switch {
		case err != nil:
			return false, err
		case cur.Path == to:
			return true, nil // already written (a resumed deploy, or a race to the same goal)
		case cur.Path != from:
			return false, releases.Errorf(releases.ECONFLICT, "site %s: key %s was changed by someone else while this deploy ran (expected %q, found %q); nothing was changed",
				site.Name, site.Name, from, cur.Path)
		}
		return false, nil
	}, func(etag *string) error {
		_, err := k.Client.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(site.KVSARN), Key: aws.String(site.Name),
			Value: aws.String(to), IfMatch: etag})
		return err
	})
}

// swapKey changes key by compare-and-set on the store's ETag: check reads
// the key and says whether the change is done already or refuses it (the
// key is not as expected); write makes it with If-Match. A conflict (the
// store changed between) reads again once.
func (k *KVS) swapKey(ctx context.Context, site releases.Site, key string, check func() (done bool, err error), write func(etag *string) error) error {
	for attempt := 1; ; attempt++ {
		desc, err := k.Client.DescribeKeyValueStore(ctx, &cloudfrontkeyvaluestore.DescribeKeyValueStoreInput{KvsARN: aws.String(site.KVSARN)})
		if err != nil {
			return k.wrap(site, "describing the store", err)
		}
		if done, err := check(); done || err != nil {
			return err
		}
		err = write(desc.ETag)
		var ce *kvstypes.ConflictException
		if errors.As(err, &ce) && attempt == 1 {
			continue
		}
		if errors.As(err, &ce) {
			return releases.Errorf(releases.ECONFLICT, "site %s: key value store %s keeps changing; nothing was changed: %w", site.Name, site.KVSARN, err)
		}
		if err != nil {
			return k.wrap(site, "writing key "+key, err)
		}
		return nil
	}
}

// propagation is the fixed wait after the write: the whole wait where the
// site's answers cannot be watched, the visible phase's floor where they
// can.
func (k *KVS) propagation() time.Duration {
	if k.Propagation > 0 {
		return k.Propagation
	}
	return DefaultKVSPropagation
}

// Resume finishes an interrupted kvs deploy from the key's value.
func (k *KVS) Resume(ctx context.Context, site releases.Site, d releases.Deploy) ([]releases.Step, bool, error) {
	cur, err := k.Current(ctx, site)
	if err != nil {
		return nil, false, err
	}
	flipped := cur.Path == d.To
	steps := k.Plan(site, releases.Current{Version: d.From, Path: d.FromPath}, d.To, d.ID)
	// After the write, what is left is the wait.
	steps = steps[len(steps)-1:]
	switch d.Phase {
	case releases.PhasePending, PhaseLivePage, PhaseKeyWrite, PhaseKeyPropagate:
		if flipped {
			return steps, true, nil
		}
		if cur.Path == d.FromPath && d.Phase != PhaseKeyPropagate {
			return nil, false, releases.Errorf(releases.ECONFLICT, "interrupted before the key was written; nothing changed")
		}
		return nil, false, releases.Errorf(releases.ECONFLICT, "interrupted, and key %s now holds %q, not %q (changed outside this deploy)", site.Name, cur.Path, d.To)
	}
	return nil, flipped, releases.Errorf(releases.ECONFLICT, "interrupted in phase %q, which this version does not know how to resume", d.Phase)
}

// kvsEndpoint sends KeyValueStore calls to a base endpoint (a local
// stand-in) as is. The SDK's rules would put the store's account id in
// front of the endpoint's host ("123456789012.127.0.0.1:4566"), which
// works for AWS's own domain but not for an address; the signing scheme
// (SigV4A, service cloudfront-keyvaluestore, region "*") is kept.
type kvsEndpoint struct {
	base     *url.URL
	fallback cloudfrontkeyvaluestore.EndpointResolverV2
}

func (r kvsEndpoint) ResolveEndpoint(ctx context.Context, p cloudfrontkeyvaluestore.EndpointParameters) (smithyendpoints.Endpoint, error) {
	p.Endpoint = nil
	ep, err := r.fallback.ResolveEndpoint(ctx, p)
	if err != nil {
		return ep, err
	}
	u := *r.base
	u.Path = ep.URI.Path
	ep.URI = u
	return ep, nil
}

var _ releases.PreviewKeyer = (*KVS)(nil)

// PreviewKey reads the site's preview signing key from the store
// (written by kvs-setup).
func (k *KVS) PreviewKey(ctx context.Context, site releases.Site) ([]byte, error) {
	out, err := k.Client.GetKey(ctx, &cloudfrontkeyvaluestore.GetKeyInput{KvsARN: aws.String(site.KVSARN), Key: aws.String(site.Name + PreviewKeySuffix)})
	var nf *kvstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return nil, releases.Errorf(releases.ENOTFOUND, "site %s has no preview key in its key value store; run deploybot kvs-setup --apply", site.Name)
	}
	if err != nil {
		return nil, k.wrap(site, "reading the preview key", err)
	}
	return []byte(aws.ToString(out.Value)), nil
}
