package atomicity_test

import (
	"context"
	"testing"

	"github.com/deploybot/deploybot/internal/atomicity"
)

// The short version of the atomicity load test (the long one is
// `make reliability`): with publish's default skew protection no page load
// breaks across promotes and rollbacks; without it, some do.
func TestNoBrokenPageLoadsAcrossFlips(t *testing.T) {
	ctx := context.Background()
	on, err := atomicity.Run(ctx, atomicity.Config{Dir: t.TempDir(), Flips: 12, PageLoads: 1500, SkewReleases: 2})
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
	off, err := atomicity.Run(ctx, atomicity.Config{Dir: t.TempDir(), Flips: 12, PageLoads: 1500, SkewReleases: 0})
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
	rep, err := atomicity.Run(context.Background(), atomicity.Config{Dir: t.TempDir(), Flips: 12, PageLoads: 1500, SkewReleases: 2, Strategy: "kvs"})
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
