// Package standin holds what only the local stand-in's users need of the
// production adapters: `deploybot dev`, the atomicity harness and the
// benchmarks. The production image is built without it.
package standin

import (
	"context"
	"slices"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// SwitchToKVS applies kvs-setup to a site of a running service and moves
// the site onto strategy kvs there, so the next flip writes the key (what
// `deploybot dev --strategy kvs`, the atomicity harness and the flip-speed
// benchmark do; in production the configuration says strategy: kvs and
// the command is kvs-setup).
func SwitchToKVS(ctx context.Context, k *cloud.KVSSetup, svc *releases.Service, siteName string, propagation time.Duration) (*cloud.KVSSetupReport, error) {
	i := slices.IndexFunc(svc.Sites, func(s releases.Site) bool { return s.Name == siteName })
	if i < 0 {
		return nil, releases.Errorf(releases.ENOTFOUND, "unknown site %q", siteName)
	}
	rep, err := k.Apply(ctx, svc.Sites[i])
	if err != nil {
		return nil, err
	}
	svc.Sites[i].Strategy = cloud.StrategyKVS
	if svc.CDNs == nil {
		svc.CDNs = map[string]releases.CDN{}
	}
	svc.CDNs[cloud.StrategyKVS] = &cloud.KVS{Client: k.KVS, CF: k.CF, Propagation: propagation, Pages: k.Pages}
	return rep, nil
}
