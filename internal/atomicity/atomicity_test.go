package atomicity_test

import (
	"context"
	"flag"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/atomicity"
)

// seedFlag replays a run: go test -run ... -args -seed N, or
// DEPLOYBOT_ATOMICITY_SEED=N. A failing run prints the seed it ran with.
var seedFlag = flag.Uint64("seed", 0, "the atomicity runs' seed (0: $DEPLOYBOT_ATOMICITY_SEED, else from the clock)")

// seed is the seed of a run, said when the test fails.
func seed(t *testing.T) uint64 {
	t.Helper()
	s := *seedFlag
	if v := os.Getenv("DEPLOYBOT_ATOMICITY_SEED"); s == 0 && v != "" {
		var err error
		if s, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("DEPLOYBOT_ATOMICITY_SEED=%q: %v", v, err)
		}
	}
	if s == 0 {
		s = uint64(time.Now().UnixNano())
	}
	t.Cleanup(func() {
		if t.Failed() {
			t.Logf("replay with DEPLOYBOT_ATOMICITY_SEED=%d (or -args -seed %d)", s, s)
		}
	})
	return s
}

// The short version of the atomicity load test (the long one is
// `make reliability`): with publish's default skew protection no page load
// breaks across promotes and rollbacks; without it, some do.
func TestNoBrokenPageLoadsAcrossFlips(t *testing.T) {
	ctx := context.Background()
	sd := seed(t)
	on, err := atomicity.Run(ctx, atomicity.Config{Dir: t.TempDir(), Flips: 12, PageLoads: 1500, SkewReleases: 2, Seed: sd})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("skew protection on: %+v", *on)
	if on.Flips < 12 || on.PageLoads < 1500 {
		t.Fatalf("ran %d flips and %d page loads", on.Flips, on.PageLoads)
	}
	if on.Broken != 0 {
		t.Fatalf("%d of %d page loads broken with skew protection: %v %v", on.Broken, on.PageLoads, on.Reasons, on.Examples)
	}
	off, err := atomicity.Run(ctx, atomicity.Config{Dir: t.TempDir(), Flips: 12, PageLoads: 1500, SkewReleases: 0, Seed: sd})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("skew protection off: %+v", *off)
	// The same run without it shows what it prevents, and that this
	// harness sees a broken page when there is one.
	if off.Broken == 0 {
		t.Fatalf("no broken page load without skew protection in %d loads across %d flips: the harness cannot see skew", off.PageLoads, off.Flips)
	}
}

// The same with strategy kvs: a flip is a key write that reaches each PoP
// at its own moment, and the version is part of every cache key.
func TestNoBrokenPageLoadsAcrossKVSFlips(t *testing.T) {
	rep, err := atomicity.Run(context.Background(), atomicity.Config{Dir: t.TempDir(), Flips: 12, PageLoads: 1500, SkewReleases: 2, Strategy: "kvs", Seed: seed(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kvs, skew protection on: %+v", *rep)
	if rep.Strategy != "kvs" || rep.Flips < 12 || rep.PageLoads < 1500 {
		t.Fatalf("ran %s, %d flips, %d page loads", rep.Strategy, rep.Flips, rep.PageLoads)
	}
	if rep.Broken != 0 {
		t.Fatalf("%d of %d page loads broken: %v %v", rep.Broken, rep.PageLoads, rep.Reasons, rep.Examples)
	}
}

// Under rolling releases: every promote sends 10%, then 50% of the
// browsers to the new release before all of them, while each browser
// loads pages and their lazy assets as one visitor. Both releases stay
// complete and each visitor meets one release per step: nothing breaks.
func TestNoBrokenPageLoadsUnderRollouts(t *testing.T) {
	rep, err := atomicity.Run(context.Background(), atomicity.Config{Dir: t.TempDir(), Flips: 8, PageLoads: 1200, SkewReleases: 2, Strategy: "kvs", Gradual: true, Seed: seed(t)})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("kvs rollouts: %+v", *rep)
	if rep.Promotes < 6 || rep.PageLoads < 1200 {
		t.Fatalf("ran %d promotes, %d page loads", rep.Promotes, rep.PageLoads)
	}
	if rep.Broken != 0 {
		t.Fatalf("%d of %d page loads broken: %v %v", rep.Broken, rep.PageLoads, rep.Reasons, rep.Examples)
	}
}
