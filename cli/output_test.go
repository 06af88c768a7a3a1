package cli

import (
	"bytes"
	"flag"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares what a printer wrote with testdata/name.golden.
func golden(t *testing.T, name string, got []byte) {
	t.Helper()
	// Dates as days from the fixtures' day, which moves with the wall
	// clock: the file must not depend on the day the test runs.
	got = testclock.Relative(got)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./cli -update to create it)", err)
	}
	if !bytes.Equal(got, want) {
		t.Fatalf("%s differs from the golden file:\n%s", name, got)
	}
}

// The command line's text output, as people (and scripts that grep) read
// it: versions, status, history and the prune summary.
func TestTextOutput(t *testing.T) {
	t0 := testclock.At(10, 0)
	at := func(d time.Duration) time.Time { return t0.Add(d) }
	live := "v42"
	since := at(-time.Hour)
	vs := []releases.VersionInfo{
		{Release: releases.Release{Version: "v43", Commit: "9f1c2d3e4b5a6978", Message: "Faster checkout\nand more", Files: 812, Bytes: 14_500_000, PublishedAt: at(-10 * time.Minute)}},
		{Release: releases.Release{Version: "v42", Commit: "3f9c1b2a77e0d1c2", Files: 810, Bytes: 14_400_000, PublishedAt: at(-2 * time.Hour)}, Live: true},
		{Release: releases.Release{Version: "v40", Files: 800, Bytes: 14_000_000, PublishedAt: at(-72 * time.Hour)},
			Pin: &releases.Pin{By: "UALICE", Reason: "the audit", At: at(-48 * time.Hour)}},
		{Release: releases.Release{Version: "v39", Files: 790, Bytes: 13_900_000, PublishedAt: at(-96 * time.Hour), Pruned: true}},
	}
	var b bytes.Buffer
	if err := printVersions(&b, "www", vs); err != nil {
		t.Fatal(err)
	}
	golden(t, "versions", b.Bytes())

	b.Reset()
	d := releases.Deploy{ID: "20261128T100000Z-abcd1234", Site: "www", Kind: releases.KindPromote, Actor: "UALICE", From: "v42", To: "v43",
		Phase: "propagate", StartedAt: at(-time.Minute)}
	printStatus(&b, &releases.Status{Site: "www", Live: &live, LiveSince: &since, OriginPath: "/www/v42", Deploy: &d,
		Lock:       &releases.Lock{Site: "www", Holder: "UALICE", Reason: "promote v43", DeployID: d.ID, Since: at(-time.Minute)},
		LastDeploy: &releases.Deploy{ID: "20261128T080000Z-0f0f0f0f", Kind: releases.KindRollback, From: "v41", To: "v42", Actor: "cli:bob@laptop", Phase: releases.PhaseDone}})
	golden(t, "status", b.Bytes())

	b.Reset()
	h := []releases.AuditEntry{
		{Time: at(-time.Minute), Site: "www", Actor: "UALICE", Action: "promote", Result: "ok", Detail: "v43 faster checkout", Door: "slack"},
		{Time: at(-10 * time.Minute), Site: "www", Actor: "api:ci", Action: "lock", Result: "refused", Detail: "site www is locked by UBOB since 09:00Z: launch freeze", Door: "api"},
		{Time: at(-time.Hour), Site: "www", Actor: "schedule", Action: "prune", Result: "ok", Detail: "2 release(s), 1624 objects, 28400000 bytes", Door: "schedule"},
	}
	if err := printHistory(&b, "www", h); err != nil {
		t.Fatal(err)
	}
	golden(t, "history", b.Bytes())

	golden(t, "prune", []byte(PruneSummary(&releases.PruneReport{Site: "www", Actor: "schedule", Seconds: 1.5, Objects: 1624, Bytes: 28_400_000,
		Deleted: []releases.PrunedRelease{{Version: "v38", Objects: 812, Bytes: 14_200_000}, {Version: "tmp-upload", Objects: 812, Bytes: 14_200_000, Abandoned: true}},
		Kept:    []releases.KeptRelease{{Version: "v43", Reason: "newest"}, {Version: "v42", Reason: "live"}, {Version: "v40", Reason: "pinned"}}})))
}

// A recovered deploy's output never saw it start: its duration is the
// domain's (started to finished), not measured from a zero time.
func TestPrinterOfAResumedDeploy(t *testing.T) {
	start := testclock.At(10, 0)
	d := releases.Deploy{ID: "d1", Site: "www", Kind: releases.KindPromote, From: "v1", To: "v2", Phase: "propagate", StartedAt: start}
	var out bytes.Buffer
	p := printer(&out)
	p(releases.Event{Type: releases.EventDeployResumed, Deploy: d, Phase: d.Phase})
	d.Phase, d.FinishedAt = releases.PhaseDone, start.Add(75*time.Second)
	p(releases.Event{Type: releases.EventDeployFinished, Deploy: d, Elapsed: d.FinishedAt.Sub(d.StartedAt)})
	if want := "v2 is live on www (deploy d1, 75.0s)"; !bytes.Contains(out.Bytes(), []byte(want)) {
		t.Fatalf("printed:\n%s\nwant %q", out.String(), want)
	}
}
