package releases_test

import (
	"context"
	"slices"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func TestFingerprinted(t *testing.T) {
	for name, want := range map[string]bool{
		"assets/app.3f9c1b2a.js":  true,
		"chunk-5QKZ7B3X.js":       true,
		"app.0123456789.css":      true,
		"index.html":              false,
		"app.js":                  false,
		"logo.png":                false,
		"about-us.html":           false,
		"release-notes.v2.txt":    false,
		"assets/app.3f9c1b2.js":   false, // seven characters
		"assets/backgrounds.jpeg": false,
		"index-BxR3k9aF.js":       true, // Vite
		"main-CqRk1Xwz.js":        true,
		"3f9c1b2a4d.js":           true, // the hash as the whole name
		"app.20240101.js":         true, // hex after a name
		// Names that only look like a hash: a year of immutable caching
		// would keep a changed file stale.
		"section01/page000001.html": false,
		"background1.jpg":           false,
		"screenshot2.png":           false,
		"chapter10.html":            false,
		"20240101.jpg":              false,
		"deadbeefcafe.png":          false,
		"my-photo-summer2024.jpg":   false,
		"favicon32.png":             false,
		"assets/ünïcødé1.js":        false,
	} {
		if got := releases.Fingerprinted(name); got != want {
			t.Errorf("Fingerprinted(%q) = %v, want %v", name, got, want)
		}
	}
}

// A flip to a release that lacks the live release's fingerprinted assets
// (a rollback, above all) first copies them in, so pages loaded before the
// flip keep finding them; with skew protection off it does not.
func TestFlipCarriesTheLiveAssetsTheTargetLacks(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	h.svc.Sites[0].SkewReleases = 2
	h.bucket.manifests["v1"] = &releases.Manifest{Version: "v1", Files: []releases.ManifestFile{
		{Path: "index.html", Size: 10}, {Path: "assets/app.1111aaaa.js", Size: 5}, {Path: "assets/vendor.9999ffff.js", Size: 5}}}
	h.bucket.manifests["v2"] = &releases.Manifest{Version: "v2",
		Files: []releases.ManifestFile{{Path: "index.html", Size: 11}, {Path: "assets/app.2222bbbb.js", Size: 5},
			{Path: "assets/vendor.9999ffff.js", Size: 5}, {Path: "robots.txt", Size: 1}},
		Carried: []releases.ManifestFile{{Path: "assets/app.1111aaaa.js", Size: 5, From: "v1"}}}
	h.promote(t, "v1")
	if len(h.bucket.copies) != 0 {
		t.Fatalf("first promote copied %v", h.bucket.copies)
	}
	// v2 carries v1's assets already: nothing to copy, no extra phase.
	out := h.promote(t, "v2")
	if len(h.bucket.copies) != 0 || out.Deploy.Phases[0].Phase == releases.PhaseCarry {
		t.Fatalf("promote of a release that carries the live one's assets copied %v (phases %v)", h.bucket.copies, out.Deploy.Phases)
	}
	// Back to v1: v2's own fingerprinted asset goes in first, nothing else
	// (not the HTML, not what v1 has, not non-fingerprinted files).
	rb, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "bob"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"v2/assets/app.2222bbbb.js -> v1"}; !slices.Equal(h.bucket.copies, want) {
		t.Fatalf("rollback copied %v, want %v", h.bucket.copies, want)
	}
	if p := rb.Deploy.Phases[0]; p.Phase != releases.PhaseCarry || p.Ended.IsZero() {
		t.Fatalf("the carry is not recorded as the deploy's first phase: %+v", rb.Deploy.Phases)
	}
	if h.cdn.path != "/www/v1" {
		t.Fatalf("origin path %s", h.cdn.path)
	}
	// Without skew protection nothing is carried.
	h.svc.Sites[0].SkewReleases = 0
	h.bucket.copies = nil
	out = h.promote(t, "v2")
	if _, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice", Back: true}, nil); err != nil {
		t.Fatal(err)
	}
	if len(h.bucket.copies) != 0 || out.Deploy.Phases[0].Phase == releases.PhaseCarry {
		t.Fatalf("skew protection off, yet copied %v", h.bucket.copies)
	}
}

// A live release whose manifest cannot be read does not stop the flip away
// from it (a rollback above all); the carry is skipped.
func TestFlipAwayFromAnUnreadableManifest(t *testing.T) {
	h := newHarness(t)
	h.svc.Sites[0].SkewReleases = 2
	h.publish("v1", "v2")
	h.promote(t, "v1")
	h.promote(t, "v2")
	h.bucket.unreadable = map[string]bool{"v2": true}
	if _, err := h.svc.Rollback(context.Background(), releases.RollbackRequest{Site: "www", Actor: "bob"}, nil); err != nil {
		t.Fatalf("rollback away from a damaged manifest: %v", err)
	}
	if h.cdn.path != "/www/v1" || len(h.bucket.copies) != 0 {
		t.Fatalf("origin path %s, copies %v", h.cdn.path, h.bucket.copies)
	}
}

// A bad manifest in the bucket does not hide the other releases.
func TestSyncSkipsAnInvalidManifest(t *testing.T) {
	h := newHarness(t)
	h.publish("v1", "v2", "v3")
	h.bucket.unreadable = map[string]bool{"v2": true}
	if _, err := h.svc.Sync(context.Background(), "www"); err != nil {
		t.Fatal(err)
	}
	vs, err := h.svc.Versions(context.Background(), "www")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, v := range vs {
		got = append(got, v.Version)
	}
	if len(got) != 2 || slices.Contains(got, "v2") {
		t.Fatalf("versions %v", got)
	}
	if _, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "a"}, nil); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("promote of the bad release: %v", err)
	}
}
