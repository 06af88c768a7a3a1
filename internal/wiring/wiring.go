// Package wiring builds the releases.Service over its adapters (the
// bbolt store, S3, CloudFront, the HTTP probers): one function that serve,
// the command line, the dev console, the test world, the atomicity check
// and the benchmarks all call, so what dev and the tests run is what
// production runs, and what differs is named here.
package wiring

import (
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/probe"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// Config is what a service is built from. Its zero values are
// production's; the switches that turn a part off exist for tests and
// benchmarks that measure or model less than a whole installation.
type Config struct {
	Sites  []releases.Site
	Store  *store.DB
	Bucket *cloud.S3Bucket
	// CF drives the origin-path strategy (and kvs's function, with KVS).
	CF *cloudfront.Client
	// KVS is the key value store client; nil: strategy kvs is not offered
	// (most configurations never need it; standin.SwitchToKVS adds it).
	KVS    *cloudfrontkeyvaluestore.Client
	Deploy Deploy
	Logger *slog.Logger
	// Access is who may do what; nil decides nothing (tests of other
	// things). Every door of the binary sets it.
	Access *releases.Access
	// Host names this process in locks; empty: os.Hostname.
	Host string
	// Now is the service's clock; nil: the wall clock.
	Now func() time.Time

	// CDN replaces the origin-path adapter over CF: a benchmark's
	// stand-in that answers without CloudFront.
	CDN releases.CDN
	// State is where locks, freezes, approvals and pins are shared; nil:
	// Bucket (the sites' buckets, as in production). A benchmark counts
	// its requests through a wrapper.
	State releases.Coordinator
	// Unshared keeps that state in Store alone: one process, as a test of
	// the domain or a benchmark of the local cost models it. Production
	// never sets it: two processes would each think they hold a lock.
	Unshared bool
	// NoProbes skips the health checks and the visible phase.
	NoProbes bool
	// NoPIDCheck judges a runner on this host by its heartbeat alone, as
	// on a system without a cheap pid check.
	NoPIDCheck bool
}

// Deploy tunes flips; zero values take each part's default.
type Deploy struct {
	// Timeout bounds a whole flip (releases' default: 30 minutes).
	Timeout time.Duration
	// PollInterval and FastPoll pace origin-path's waits on CloudFront.
	PollInterval time.Duration
	FastPoll     time.Duration
	// VisibleTimeout bounds the visible phase; VisibleInterval is the
	// pause between its rounds.
	VisibleTimeout  time.Duration
	VisibleInterval time.Duration
	// KVSPropagation is how long a key takes to reach every edge.
	KVSPropagation time.Duration
}

// Service builds the domain service.
func Service(c Config) *releases.Service {
	var st releases.Store = c.Store
	if !c.Unshared {
		state := c.State
		if state == nil {
			state = c.Bucket
		}
		st = releases.NewSharedStore(c.Store, state, c.Sites)
	}
	var cdn releases.CDN = &cloud.OriginPath{Client: c.CF, PollInterval: c.Deploy.PollInterval, FastPoll: c.Deploy.FastPoll}
	if c.CDN != nil {
		cdn = c.CDN
	}
	svc := &releases.Service{
		Store: st, Bucket: c.Bucket, Sites: c.Sites, Logger: c.Logger, Access: c.Access, Host: c.Host, Now: c.Now,
		CDNs:            map[string]releases.CDN{releases.DefaultStrategy: cdn},
		Timeout:         c.Deploy.Timeout,
		VisibleTimeout:  c.Deploy.VisibleTimeout,
		VisibleInterval: c.Deploy.VisibleInterval,
	}
	if c.KVS != nil {
		svc.CDNs[cloud.StrategyKVS] = &cloud.KVS{Client: c.KVS, CF: c.CF, Propagation: c.Deploy.KVSPropagation, Pages: c.Bucket}
	}
	if !c.NoProbes {
		prober := &probe.HTTP{}
		svc.Prober, svc.EdgeProber = prober, prober
	}
	if !c.NoPIDCheck {
		svc.ProcessAlive = aliveCheck
	}
	return svc
}
