package cloud_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// A version name that retention pruned can be published again. The new
// build is a new release: nothing the old one was (pruned, live, pinned)
// carries over, and no prune deletes it while it is live, whatever the
// records said. The site keeps answering 200 through the edge.
func TestPruneNeverDeletesAReusedNameWhileLive(t *testing.T) {
	e := testenv.New(t, testenv.Options{AWS: localaws.Options{}, Provision: true, MaxAttempts: 8, Edge: true,
		Site: releases.Site{Retention: releases.Policy{Keep: 1, KeepDeployed: 1}}})
	e.OpenStore()
	svc := e.Service
	ctx := context.Background()
	// The stand-in stamps objects by the wall clock, and the prune judges
	// uploads by it, so publish times follow it too.
	t0 := time.Now().UTC().Add(-10 * time.Hour).Truncate(time.Second)
	page := func(v, text string) map[string]string { return map[string]string{"index.html": "<p>" + text + "</p>"} }
	promote := func(v string) {
		t.Helper()
		if _, err := svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "alice", NoVerify: false}, nil); err != nil {
			t.Fatalf("promote %s: %v", v, err)
		}
	}
	prune := func() *releases.PruneReport {
		t.Helper()
		rep, err := svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "cron"})
		if err != nil {
			t.Fatalf("prune: %v", err)
		}
		return rep
	}
	deleted := func(rep *releases.PruneReport) string {
		var vs []string
		for _, d := range rep.Deleted {
			vs = append(vs, d.Version)
		}
		return strings.Join(vs, ",")
	}

	e.Publish("preview", t0, page("preview", "first preview"))
	e.Publish("main", t0.Add(time.Hour), page("main", "main"))
	promote("main")
	e.Publish("main2", t0.Add(2*time.Hour), page("main2", "main2"))
	promote("main2")
	// main is the rollback target now: only preview goes.
	if rep := prune(); deleted(rep) != "preview" {
		t.Fatalf("first prune deleted %q, want preview (main is the rollback target)", deleted(rep))
	}
	if r, err := svc.Store.Release(ctx, "www", "preview"); err != nil || !r.Pruned {
		t.Fatalf("preview after the prune: %+v %v", r, err)
	}

	// The pruned name is published again, with other content, and goes live.
	e.Publish("preview", t0.Add(3*time.Hour), page("preview", "second preview"))
	promote("preview")
	r, err := svc.Store.Release(ctx, "www", "preview")
	if err != nil || r.Pruned || !r.Reused || r.ManifestETag == "" {
		t.Fatalf("the re-published preview is recorded as %+v (%v); want a fresh, reused, unpruned release", r, err)
	}
	vs, err := svc.Versions(ctx, "www")
	if err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if v.Version == "preview" && (!v.Live || v.Pruned) {
			t.Fatalf("versions says %+v", v)
		}
	}
	for range 2 {
		rep := prune()
		for _, d := range rep.Deleted {
			if d.Version == "preview" || d.Version == "main2" {
				t.Fatalf("the prune deleted %s (report %+v)", d.Version, rep)
			}
		}
	}
	if code, body := (&env{e}).get(t, "/"); code != 200 || !strings.Contains(body, "second preview") {
		t.Fatalf("the site answers %d %q after the prunes", code, body)
	}
	// main2 was live and is older than preview: the way back stays.
	if err := svc.CanRollBack(ctx, "www", "main2"); err != nil {
		t.Fatalf("rollback to main2: %v", err)
	}
}

// The old release's history does not make the new one a rollback target:
// a name published again after a prune was never live.
func TestAReusedNameIsNoRollbackTarget(t *testing.T) {
	e := testenv.New(t, testenv.Options{Provision: true, MaxAttempts: 8, Edge: true,
		Site: releases.Site{Retention: releases.Policy{Keep: 1}}})
	e.OpenStore()
	svc := e.Service
	ctx := context.Background()
	t0 := time.Now().UTC().Add(-10 * time.Hour).Truncate(time.Second)
	e.Publish("a", t0, map[string]string{"index.html": "a"})
	e.Publish("b", t0.Add(time.Hour), map[string]string{"index.html": "b"})
	e.Publish("c", t0.Add(2*time.Hour), map[string]string{"index.html": "c"})
	for _, v := range []string{"a", "b", "c"} {
		if _, err := svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "alice"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	// a is pruned by hand, as retention would once b and c are kept.
	if _, _, err := e.Bucket.DeleteFolder(ctx, e.Site, "a"); err != nil {
		t.Fatal(err)
	}
	if err := e.Bucket.DeleteManifest(ctx, e.Site, "a"); err != nil {
		t.Fatal(err)
	}
	if err := svc.Store.MarkPruned(ctx, "www", "a", time.Now()); err != nil {
		t.Fatal(err)
	}
	// a comes back with other content, older than the live c by its name's
	// sort but newer by time: never live, so no rollback goes to it.
	e.Publish("a", t0.Add(-time.Hour), map[string]string{"index.html": "a, again"})
	if err := svc.CanRollBack(ctx, "www", "a"); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "never live") {
		t.Fatalf("rollback to the re-published a: %v", err)
	}
	if _, err := svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Version: "a", Actor: "bob"}, nil); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("rollback to the re-published a ran: %v", err)
	}
	// The default target walks past it to b.
	if got, err := svc.RollbackTarget(ctx, "www"); err != nil || got != "b" {
		t.Fatalf("rollback target %q %v, want b", got, err)
	}
}
