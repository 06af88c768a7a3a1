package releases_test

import (
	"fmt"
	"math/rand/v2"
	"testing"
	"testing/quick"
	"time"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
)

// history is a random sequence of publishes, promotes, rollbacks, pins and
// clock advances, replayed into the inputs a prune sees.
type history struct {
	in   releases.PlanInput
	desc []string
}

func randomHistory(seed uint64) history {
	r := rand.New(rand.NewPCG(seed, seed^0x9e3779b97f4a7c15))
	now := testclock.Day()
	h := history{in: releases.PlanInput{Pins: map[string]releases.Pin{}, Policy: releases.Policy{
		Keep: 1 + r.IntN(8), KeepDeployed: 1 + r.IntN(4), MinAge: time.Duration(r.IntN(96)) * time.Hour}}}
	var stack []string // versions made live, for rollbacks
	n := 0
	for step := 0; step < 5+r.IntN(60); step++ {
		switch op := r.IntN(10); {
		case op < 4: // publish
			n++
			v := fmt.Sprintf("v%d", n)
			h.in.Releases = append(h.in.Releases, releases.Release{Version: v, PublishedAt: now})
			h.desc = append(h.desc, "publish "+v)
		case op < 7 && len(h.in.Releases) > 0: // promote a random release
			v := h.in.Releases[r.IntN(len(h.in.Releases))].Version
			phase := releases.PhaseDone
			if r.IntN(6) == 0 {
				phase = releases.PhaseFailed
			}
			h.in.Deploys = append([]releases.Deploy{{To: v, From: h.in.Live, Kind: releases.KindPromote, Phase: phase}}, h.in.Deploys...)
			if phase == releases.PhaseDone {
				h.in.Live = v
				stack = append(stack, v)
			}
			h.desc = append(h.desc, "promote "+v+" "+string(phase))
		case op == 7 && len(stack) > 1: // rollback
			stack = stack[:len(stack)-1]
			v := stack[len(stack)-1]
			h.in.Deploys = append([]releases.Deploy{{To: v, From: h.in.Live, Kind: releases.KindRollback, Phase: releases.PhaseDone}}, h.in.Deploys...)
			h.in.Live = v
			h.desc = append(h.desc, "rollback to "+v)
		case op == 8 && len(h.in.Releases) > 0: // pin or unpin
			v := h.in.Releases[r.IntN(len(h.in.Releases))].Version
			if _, ok := h.in.Pins[v]; ok {
				delete(h.in.Pins, v)
				h.desc = append(h.desc, "unpin "+v)
			} else {
				h.in.Pins[v] = releases.Pin{Version: v}
				h.desc = append(h.desc, "pin "+v)
			}
		default: // time passes
			d := time.Duration(r.IntN(72)) * time.Hour
			now = now.Add(d)
			h.desc = append(h.desc, "wait "+d.String())
		}
	}
	if r.IntN(4) == 0 && len(h.in.Releases) > 0 {
		to := h.in.Releases[r.IntN(len(h.in.Releases))].Version
		h.in.Running = &releases.Deploy{From: h.in.Live, To: to}
		h.desc = append(h.desc, "deploy to "+to+" running")
	}
	h.in.Now = now
	return h
}

func TestPrunePlanNeverBreaksTheSiteOrARollback(t *testing.T) {
	property := func(seed uint64) bool {
		h := randomHistory(seed)
		plan := releases.PlanPrune(h.in)
		deleted := map[string]bool{}
		for _, r := range plan.Delete {
			deleted[r.Version] = true
		}
		fail := func(format string, a ...any) bool {
			t.Logf("seed %d: %s\npolicy %+v\nhistory: %v", seed, fmt.Sprintf(format, a...), h.in.Policy, h.desc)
			return false
		}
		if deleted[h.in.Live] {
			return fail("the live release %s was deleted", h.in.Live)
		}
		if d := h.in.Running; d != nil && (deleted[d.To] || deleted[d.From]) {
			return fail("a running deploy's release was deleted")
		}
		// The keep_deployed releases: live, then finished deploys' targets.
		recent := []string{h.in.Live}
		for _, d := range h.in.Deploys {
			if d.Phase == releases.PhaseDone {
				recent = append(recent, d.To)
			}
		}
		distinct := 0
		seen := map[string]bool{}
		for _, v := range recent {
			if v == "" || seen[v] {
				continue
			}
			seen[v] = true
			if distinct++; distinct > h.in.Policy.KeepDeployed {
				break
			}
			if deleted[v] {
				return fail("recently live %s was deleted", v)
			}
		}
		for v := range h.in.Pins {
			if deleted[v] {
				return fail("pinned %s was deleted", v)
			}
		}
		for _, r := range h.in.Releases {
			if deleted[r.Version] && h.in.Now.Sub(r.PublishedAt) < h.in.Policy.MinAge {
				return fail("young %s was deleted", r.Version)
			}
		}
		// Within policy: at most keep + the protected ones remain, and the
		// newest keep are never deleted.
		protected := 0
		for _, why := range plan.Kept {
			if why != releases.KeepNewest {
				protected++
			}
		}
		remaining := len(h.in.Releases) - len(plan.Delete)
		if remaining > h.in.Policy.Keep+protected {
			return fail("%d remain, policy allows %d + %d protected", remaining, h.in.Policy.Keep, protected)
		}
		if remaining < min(h.in.Policy.Keep, len(h.in.Releases)) {
			return fail("only %d remain, keep is %d", remaining, h.in.Policy.Keep)
		}
		if len(plan.Delete)+len(plan.Kept) != len(h.in.Releases) {
			return fail("plan covers %d of %d releases", len(plan.Delete)+len(plan.Kept), len(h.in.Releases))
		}
		return true
	}
	if err := quick.Check(property, &quick.Config{MaxCount: 3000}); err != nil {
		t.Fatal(err)
	}
}

func TestPrunePlanTable(t *testing.T) {
	t0 := testclock.Day()
	var rels []releases.Release
	for i := 1; i <= 12; i++ {
		rels = append(rels, releases.Release{Version: fmt.Sprintf("v%02d", i), PublishedAt: t0.Add(time.Duration(i) * time.Hour)})
	}
	in := releases.PlanInput{Releases: rels, Live: "v03", Now: t0.Add(30 * 24 * time.Hour),
		Deploys: []releases.Deploy{{To: "v03", Phase: releases.PhaseDone}, {To: "v12", Phase: releases.PhaseFailed}, {To: "v02", Phase: releases.PhaseDone}, {To: "v01", Phase: releases.PhaseDone}},
		Pins:    map[string]releases.Pin{"v05": {}}, Policy: releases.Policy{Keep: 5, KeepDeployed: 2, MinAge: 72 * time.Hour}}
	plan := releases.PlanPrune(in)
	var del []string
	for _, r := range plan.Delete {
		del = append(del, r.Version)
	}
	if fmt.Sprint(del) != "[v01 v04 v06 v07]" {
		t.Fatalf("delete %v, kept %v", del, plan.Kept)
	}
	want := map[string]string{"v03": releases.KeepLive, "v02": releases.KeepDeployed, "v05": releases.KeepPinned, "v12": releases.KeepNewest, "v08": releases.KeepNewest}
	for v, why := range want {
		if plan.Kept[v] != why {
			t.Errorf("%s kept for %q, want %q", v, plan.Kept[v], why)
		}
	}
	in.Now = t0.Add(10 * time.Hour) // everything is young
	if plan := releases.PlanPrune(in); len(plan.Delete) != 0 {
		t.Fatalf("young releases deleted: %v", plan.Delete)
	}
}

// The example in docs/design.md (Retention).
func TestPrunePlanReadmeExample(t *testing.T) {
	t0 := testclock.Day()
	var rels []releases.Release
	for i := 1; i <= 12; i++ {
		rels = append(rels, releases.Release{Version: fmt.Sprintf("v%02d", i), PublishedAt: t0.Add(time.Duration(i) * 24 * time.Hour)})
	}
	plan := releases.PlanPrune(releases.PlanInput{Releases: rels, Live: "v12", Now: t0.Add(13 * 24 * time.Hour),
		Deploys: []releases.Deploy{{To: "v12", Phase: releases.PhaseDone}, {To: "v10", Phase: releases.PhaseDone}, {To: "v03", Phase: releases.PhaseDone}},
		Pins:    map[string]releases.Pin{"v05": {}}, Policy: releases.Policy{Keep: 5, KeepDeployed: 2, MinAge: 72 * time.Hour}})
	var del []string
	for _, r := range plan.Delete {
		del = append(del, r.Version)
	}
	if fmt.Sprint(del) != "[v01 v02 v03 v04 v06 v07]" {
		t.Fatalf("deleted %v, kept %v", del, plan.Kept)
	}
}
