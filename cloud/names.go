package cloud

import (
	"crypto/sha256"
	"encoding/hex"
	"strings"

	"github.com/deploybot/deploybot/releases"
)

// Names that are unique per AWS account (CloudFront functions, origin
// access controls, key value stores) carry the site's install name, so a
// staging and a production configuration with the same site names, in
// one account, neither share nor undo each other's functions.
//
// The install name is the configuration's install key; without it, one
// derived from the site's bucket and prefix, which no other installation
// can share without managing the same releases.

// maxAccountName is the shortest of CloudFront's limits on these names:
// 64 characters for a function
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateFunction.html),
// an origin access control
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_OriginAccessControlConfig.html)
// and a key value store
// (https://docs.aws.amazon.com/cloudfront/latest/APIReference/API_CreateKeyValueStore.html).
const maxAccountName = 64

// InstallName is what namespaces the site's account-wide names: the
// configuration's install, or "deploybot-" and six hex digits of the
// site's bucket and prefix.
func InstallName(site releases.Site) string {
	if site.Install != "" {
		return site.Install
	}
	sum := sha256.Sum256([]byte(site.Bucket + "/" + site.Prefix))
	return "deploybot-" + hex.EncodeToString(sum[:3])
}

// accountName is "<install>-<site><suffix>", shortened with a hash of the
// whole when it would pass 64 characters. All three kinds of name take
// letters, digits, '-' and '_', which install and site names keep to.
func accountName(site releases.Site, suffix string) string {
	return fitName(InstallName(site) + "-" + site.Name + suffix)
}

// fitName keeps a name within maxAccountName, ending a long one in a
// hash of the whole so two long names stay apart.
func fitName(n string) string {
	if len(n) <= maxAccountName {
		return n
	}
	sum := sha256.Sum256([]byte(n))
	h := hex.EncodeToString(sum[:4])
	return n[:maxAccountName-len(h)-1] + "-" + h
}

// OACName is the name of the site's origin access control.
func OACName(site releases.Site) string { return accountName(site, "") }

// KVSName is the name of the key value store setup creates for a kvs site.
func KVSName(site releases.Site) string { return accountName(site, "") }

// legacyNames are the function names versions before install names gave
// the site ("deploybot-<site><suffix>"), which every installation with a
// site of that name shared. setup and the setup commands replace them
// with the site's own; check reports them.
func legacyNames(site releases.Site) []string {
	var out []string
	for _, suffix := range []string{"", "-router", "-release"} {
		out = append(out, fitName("deploybot-"+site.Name+suffix))
	}
	return out
}

// legacyFunction reports whether arn names one of the site's functions
// from before install names, which setup may replace as its own.
func legacyFunction(site releases.Site, arn string) bool {
	i := strings.LastIndex(arn, ":function/")
	if i < 0 {
		return false
	}
	name := arn[i+len(":function/"):]
	for _, n := range legacyNames(site) {
		if name == n {
			return true
		}
	}
	return false
}

// notSetUp refuses to act on a site whose configuration does not yet name
// its distribution (or, for kvs, its key value store): setup creates them
// and writes their ids into the file.
func notSetUp(site releases.Site) error {
	var missing string
	switch {
	case site.DistributionID == "":
		missing = "distribution (sites[].distribution_id is empty)"
	case site.Strategy == StrategyKVS && site.KVSARN == "":
		missing = "key value store (sites[].kvs.arn is empty)"
	default:
		return nil
	}
	return releases.Errorf(releases.EINVALID, "site %s has no %s yet: deploybot setup --site %s --apply creates it and writes its id into the configuration", site.Name, missing, site.Name)
}
