package releases

import (
	"sort"
	"time"
)

// Policy is a site's retention: which releases a prune may delete.
type Policy struct {
	Keep         int           // newest releases always kept
	KeepDeployed int           // last releases that were live, always kept (rollback targets)
	MinAge       time.Duration // nothing younger is deleted
	// Grace is how old a folder without a manifest must be before it is
	// taken for an abandoned upload; younger ones may still be uploading.
	Grace time.Duration
}

// DefaultGrace is the default Grace: an hour is far longer than any
// publish, and short enough that abandoned uploads do not pile up.
const DefaultGrace = time.Hour

// Pin keeps a release forever, whatever the policy says.
type Pin struct {
	Site    string    `json:"site"`
	Version string    `json:"version"`
	By      string    `json:"by"`
	Reason  string    `json:"reason,omitempty"`
	At      time.Time `json:"at"`
}

// Reasons a release is kept.
const (
	KeepLive      = "live"
	KeepDeploying = "a running deploy moves to or from it"
	KeepDeployed  = "recently live (keep_deployed)"
	KeepPinned    = "pinned"
	KeepYoung     = "younger than min_age"
	KeepNewest    = "among the newest (keep)"
	KeepUploading = "no manifest yet, upload may be in progress"
	KeepOtherSite = "another site's data: never pruned from this one"
	KeepRollback  = "the rollback target"
	KeepApproval  = "a promote to it waits for approval"
)

// PlanInput is everything a prune decision depends on.
type PlanInput struct {
	Releases []Release // recorded, not pruned
	Deploys  []Deploy  // newest first
	Live     string    // what the CDN serves
	Running  *Deploy   // a deploy in progress, if any
	Pins     map[string]Pin
	// Protect keeps versions whatever else is said of them (version ->
	// why): the rollback target, releases waiting for approval.
	Protect map[string]string
	Now     time.Time
	Policy  Policy
}

// PrunePlan is what a prune deletes and what it keeps, and why.
type PrunePlan struct {
	Delete []Release
	Kept   map[string]string // version -> first reason it is kept
}

// PlanPrune decides, without touching anything, which releases to delete.
// A release is kept when any rule keeps it; the rules that protect the
// site (live, a running deploy's ends, recent live releases, pins, young
// releases) hold whatever Keep says.
func PlanPrune(in PlanInput) PrunePlan {
	rels := append([]Release(nil), in.Releases...)
	SortReleases(rels)
	kept := map[string]string{}
	keep := func(v, why string) {
		if _, ok := kept[v]; !ok && v != "" {
			kept[v] = why
		}
	}
	keep(in.Live, KeepLive)
	if d := in.Running; d != nil {
		keep(d.To, KeepDeploying)
		keep(d.From, KeepDeploying)
	}
	for v, why := range in.Protect {
		keep(v, why)
	}
	byVersion := make(map[string]Release, len(rels))
	for _, r := range rels {
		byVersion[r.Version] = r
	}
	// The releases that were live most recently: the live one first, then
	// each finished deploy's target, newest first.
	recent := []string{}
	seen := map[string]bool{}
	add := func(v string) {
		if v != "" && !seen[v] {
			seen[v] = true
			recent = append(recent, v)
		}
	}
	add(in.Live)
	for _, d := range in.Deploys {
		// A name published again after a prune is a release that was
		// never live: the old release's deploys are not its.
		if r, ok := byVersion[d.To]; d.Phase == PhaseDone && (!ok || r.Deployed(d)) {
			add(d.To)
		}
	}
	for i, v := range recent {
		if i >= in.Policy.KeepDeployed {
			break
		}
		keep(v, KeepDeployed)
	}
	for v := range in.Pins {
		keep(v, KeepPinned)
	}
	for i, r := range rels {
		if in.Now.Sub(r.PublishedAt) < in.Policy.MinAge {
			keep(r.Version, KeepYoung)
		}
		if i < in.Policy.Keep {
			keep(r.Version, KeepNewest)
		}
	}
	plan := PrunePlan{Kept: map[string]string{}}
	for _, r := range rels {
		if why, ok := kept[r.Version]; ok {
			plan.Kept[r.Version] = why
			continue
		}
		plan.Delete = append(plan.Delete, r)
	}
	// Oldest first: an interrupted prune has removed the least useful.
	sort.SliceStable(plan.Delete, func(i, j int) bool { return plan.Delete[i].PublishedAt.Before(plan.Delete[j].PublishedAt) })
	return plan
}
