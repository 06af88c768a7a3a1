package cloud

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"

	"github.com/deploybot/deploybot/releases"
)

// FunctionsAPI is the part of the CloudFront client kvs-setup uses.
type FunctionsAPI interface {
	DescribeFunction(ctx context.Context, in *cloudfront.DescribeFunctionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.DescribeFunctionOutput, error)
	CreateFunction(ctx context.Context, in *cloudfront.CreateFunctionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.CreateFunctionOutput, error)
	UpdateFunction(ctx context.Context, in *cloudfront.UpdateFunctionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.UpdateFunctionOutput, error)
	PublishFunction(ctx context.Context, in *cloudfront.PublishFunctionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.PublishFunctionOutput, error)
	GetFunction(ctx context.Context, in *cloudfront.GetFunctionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetFunctionOutput, error)
	GetDistributionConfig(ctx context.Context, in *cloudfront.GetDistributionConfigInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetDistributionConfigOutput, error)
	UpdateDistribution(ctx context.Context, in *cloudfront.UpdateDistributionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.UpdateDistributionOutput, error)
	GetDistribution(ctx context.Context, in *cloudfront.GetDistributionInput, optFns ...func(*cloudfront.Options)) (*cloudfront.GetDistributionOutput, error)
}

var _ FunctionsAPI = (*cloudfront.Client)(nil)

// KVSID is the id a function names its store by: the ARN's last part.
func KVSID(arn string) string { return arn[strings.LastIndex(arn, "/")+1:] }

// KVSSetup moves a site onto the kvs strategy.
type KVSSetup struct {
	CF  FunctionsAPI
	KVS KVSAPI
	// Pages copies the live release's 404 page where CloudFront fetches
	// it (see LivePagePrefix); nil: the first flip does.
	Pages LivePager
	// PollInterval is how often Apply reads the distribution's status
	// while it deploys the association; zero: MaxPollInterval.
	PollInterval time.Duration
}

// KVSSetupReport says what Apply did.
type KVSSetupReport struct {
	Function    string `json:"function"`
	FunctionARN string `json:"function_arn"`
	Created     bool   `json:"created"` // the function was new
	Key         string `json:"key"`     // the live version the store holds; empty: none yet (the first promote writes it)
	KeyWritten  bool   `json:"key_written"`
	Associated  bool   `json:"associated"`      // the distribution was updated
	ErrorPages  bool   `json:"error_pages_set"` // its custom error responses were changed
	PreviewKey  bool   `json:"preview_key_written"`
	OldPath     string `json:"old_origin_path"`
	ReleaseHeaderReport
}

// Steps lists, for people, what Apply does.
func (k *KVSSetup) Steps(site releases.Site) []string {
	return []string{
		fmt.Sprintf("create or update the CloudFront Function %s (runtime %s, associated with key value store %s) and publish it", FunctionName(site), FunctionRuntime, site.KVSARN),
		fmt.Sprintf("write key %q = the live version (read from the distribution's origin path) into the store, if it has none; on a site with no release yet the first promote writes it, and until then the site answers 503 \"no live release\"", site.Name),
		releaseHeaderStep(site),
		fmt.Sprintf("update distribution %s in one change: associate the function with the viewer requests of every cache behaviour that serves the site's origin (replacing the site's routing function %s, refusing any other), clear the origin path (the function adds /%s<version>), and %s", site.DistributionID, RouterName(site), site.Prefix, errorPagesStep(site)),
		"wait until the distribution is Deployed (minutes); from then on promote and rollback write one key",
	}
}

// Apply runs the steps. It is safe to run again: the function is updated
// in place, the key is kept while the distribution runs the function (it
// is the truth then), and a distribution that already runs the function is
// left alone. A different viewer-request function on the
// distribution is refused, not replaced.
func (k *KVSSetup) Apply(ctx context.Context, site releases.Site) (*KVSSetupReport, error) {
	if site.KVSARN == "" {
		return nil, releases.Errorf(releases.EINVALID, "site %s names no key value store (kvs.arn)", site.Name)
	}
	// What the site becomes (Switch applies before the service knows).
	site.Strategy = StrategyKVS
	code, err := FunctionCode(site, KVSID(site.KVSARN))
	if err != nil {
		return nil, err
	}
	rep := &KVSSetupReport{Function: FunctionName(site)}
	fcfg := kvsFunctionConfig(site, site.KVSARN)
	// The router's ARN, read before anything changes: the association
	// that replaces it is not someone else's function.
	router, err := liveARN(ctx, k.CF, RouterName(site))
	if err != nil {
		return nil, err
	}
	if rep.FunctionARN, rep.Created, err = publishFunction(ctx, k.CF, rep.Function, code, fcfg); err != nil {
		return nil, err
	}

	dc, err := k.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(site.DistributionID)})
	if err != nil {
		return nil, fmt.Errorf("reading distribution %s: %w", site.DistributionID, err)
	}
	o, err := findOrigin(site, dc.DistributionConfig)
	if err != nil {
		return nil, err
	}
	rep.OldPath = aws.ToString(o.OriginPath)
	// has: every behaviour of the origin already runs the function, so
	// visitors are served by the key, not the origin path.
	has := true
	for _, b := range siteBehaviors(dc.DistributionConfig, aws.ToString(o.Id)) {
		has = has && b.viewerRequest() == rep.FunctionARN
	}
	associated, err := associate(site, dc.DistributionConfig, aws.ToString(o.Id), rep.FunctionARN, router)
	if err != nil {
		return nil, err
	}
	var hdr bool
	if rep.ReleaseHeaderReport, hdr, err = releaseHeader(ctx, k.CF, site, dc.DistributionConfig, aws.ToString(o.Id)); err != nil {
		return nil, err
	}
	associated = associated || hdr
	if rep.ErrorPages, err = setErrorPages(site, dc.DistributionConfig); err != nil {
		return nil, err
	}
	if err := k.liveKey(ctx, site, rep, has); err != nil {
		return nil, err
	}
	if err := k.previewKey(ctx, site, rep); err != nil {
		return nil, err
	}

	if k.Pages != nil && rep.Key != "" && site.Routing.NotFound != "" {
		if err := k.Pages.PublishLivePage(ctx, site, rep.Key); err != nil {
			return nil, err
		}
	}

	if !associated && !rep.ErrorPages && rep.OldPath == "" {
		return rep, nil
	}
	o.OriginPath = aws.String("")
	if _, err := k.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(site.DistributionID), IfMatch: dc.ETag,
		DistributionConfig: dc.DistributionConfig}); err != nil {
		return nil, fmt.Errorf("updating distribution %s: %w", site.DistributionID, err)
	}
	rep.Associated = true
	if err := k.waitDeployed(ctx, site); err != nil {
		return rep, err
	}
	return rep, nil
}

// previewKey writes a random preview signing key if the store has none;
// an existing key is kept, so links already given out keep working.
// liveKey makes the store's key the truth before the distribution runs
// the function: the key first, since once the distribution runs the
// function, every request reads it. Until then the origin path is what
// visitors get, so it is the truth: a key left from an earlier run of
// kvs (the site moved back to origin-path and on since) is overwritten
// with it. has: every behaviour of the origin already runs the function.
func (k *KVSSetup) liveKey(ctx context.Context, site releases.Site, rep *KVSSetupReport, has bool) error {
	kv := &KVS{Client: k.KVS, CF: k.CF}
	cur, err := kv.Current(ctx, site)
	if err != nil {
		return err
	}
	rep.Key = cur.Path
	if rep.OldPath != "" && (!has || cur.Path == "") {
		// The distribution serves a folder today. If it is not one of
		// this site's releases, switching would take down whatever it
		// serves, so that is refused; an empty origin path is a new site,
		// whose key the first promote writes.
		live, ok := site.VersionFromOriginPath(rep.OldPath)
		if !ok || live == "" {
			return releases.Errorf(releases.ECONFLICT, "site %s: the distribution serves origin path %q, which is not a release of this site; switching to kvs would stop serving it (clear the origin path, or promote a release with strategy origin-path first)", site.Name, rep.OldPath)
		}
		if cur.Path != live {
			desc, err := k.KVS.DescribeKeyValueStore(ctx, &cloudfrontkeyvaluestore.DescribeKeyValueStoreInput{KvsARN: aws.String(site.KVSARN)})
			if err != nil {
				return kv.wrap(site, "describing the store", err)
			}
			if _, err := k.KVS.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(site.KVSARN), Key: aws.String(site.Name), Value: aws.String(live), IfMatch: desc.ETag}); err != nil {
				return kv.wrap(site, "writing key "+site.Name, err)
			}
			rep.Key, rep.KeyWritten = live, true
		}
	}
	return nil
}

// waitDeployed waits until the site's distribution is Deployed. As the
// steps say: done when every edge location runs the function (minutes on
// CloudFront), so a promote right after is no race.
func (k *KVSSetup) waitDeployed(ctx context.Context, site releases.Site) error {
	interval := k.PollInterval
	if interval <= 0 || interval > MaxPollInterval {
		interval = MaxPollInterval
	}
	if err := waitDeployed(ctx, k.CF, site, pace{fast: FastPoll, fastFor: FastPollFor, slowest: interval}); err != nil {
		return fmt.Errorf("distribution %s was updated but did not report Deployed: %w", site.DistributionID, err)
	}
	return nil
}

func (k *KVSSetup) previewKey(ctx context.Context, site releases.Site, rep *KVSSetupReport) error {
	kv := &KVS{Client: k.KVS}
	if _, err := kv.PreviewKey(ctx, site); err == nil {
		return nil
	} else if releases.ErrorCode(err) != releases.ENOTFOUND {
		return err
	}
	var b [32]byte
	if _, err := rand.Read(b[:]); err != nil {
		return err
	}
	desc, err := k.KVS.DescribeKeyValueStore(ctx, &cloudfrontkeyvaluestore.DescribeKeyValueStoreInput{KvsARN: aws.String(site.KVSARN)})
	if err != nil {
		return kv.wrap(site, "describing the store", err)
	}
	if _, err := k.KVS.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(site.KVSARN), Key: aws.String(site.Name + PreviewKeySuffix),
		Value: aws.String(hex.EncodeToString(b[:])), IfMatch: desc.ETag}); err != nil {
		return kv.wrap(site, "writing the preview key", err)
	}
	rep.PreviewKey = true
	return nil
}

// Revert moves a site back from strategy kvs to origin-path, in one
// distribution update: the site's function is no longer associated (the
// site's routing function, when published, takes its place), and the
// origin path names the release the key holds (none when the key is
// empty), and the release-header function is republished without the
// cohort cookie of rolling releases. The function and the store are left
// as they are: without the
// association they cost nothing, and kvs-setup reuses them. It reports
// false, changing nothing, when the distribution does not run the site's
// function. The distribution then deploys for minutes, during which edge
// locations serve either way, both the same release.
func (k *KVSSetup) Revert(ctx context.Context, site releases.Site) (reverted bool, live string, err error) {
	arn, err := liveARN(ctx, k.CF, FunctionName(site))
	if err != nil || arn == "" {
		return false, "", err
	}
	router, err := liveARN(ctx, k.CF, RouterName(site))
	if err != nil {
		return false, "", err
	}
	if !NeedsRouter(site) {
		router = ""
	}
	dc, err := k.CF.GetDistributionConfig(ctx, &cloudfront.GetDistributionConfigInput{Id: aws.String(site.DistributionID)})
	if err != nil {
		return false, "", fmt.Errorf("reading distribution %s: %w", site.DistributionID, err)
	}
	o, err := findOrigin(site, dc.DistributionConfig)
	if err != nil {
		return false, "", err
	}
	runs := false
	for _, b := range siteBehaviors(dc.DistributionConfig, aws.ToString(o.Id)) {
		if b.viewerRequest() == arn {
			runs = true
			b.setViewerRequest(router)
		}
	}
	if !runs {
		return false, "", nil
	}
	cur, err := (&KVS{Client: k.KVS}).Current(ctx, site)
	if err != nil {
		return false, "", err
	}
	path := ""
	if cur.Version != "" {
		path = site.OriginPath(cur.Version)
	}
	o.OriginPath = aws.String(path)
	back := site
	back.Strategy = releases.DefaultStrategy
	if _, err := setErrorPages(back, dc.DistributionConfig); err != nil {
		return false, "", err
	}
	// The viewer-response function without a kvs site's cohort cookie.
	if _, _, err := releaseHeader(ctx, k.CF, back, dc.DistributionConfig, aws.ToString(o.Id)); err != nil {
		return false, "", err
	}
	if _, err := k.CF.UpdateDistribution(ctx, &cloudfront.UpdateDistributionInput{Id: aws.String(site.DistributionID), IfMatch: dc.ETag,
		DistributionConfig: dc.DistributionConfig}); err != nil {
		return false, "", fmt.Errorf("updating distribution %s: %w", site.DistributionID, err)
	}
	return true, cur.Version, nil
}
