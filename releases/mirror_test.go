package releases_test

import (
	"context"
	"encoding/json"
	"path/filepath"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// asJSON is v as the doors show it, for field-by-field comparison.
func asJSON(t *testing.T, v any) string {
	t.Helper()
	raw, err := json.MarshalIndent(v, "", " ")
	if err != nil {
		t.Fatal(err)
	}
	return string(raw)
}

// Everything only the store knew is in the bucket after a push, and a
// new, empty store rebuilt from the bucket and the CDN answers versions,
// status and history as the lost one did.
func TestLostStoreIsRebuiltFromTheBucket(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish("v1", "v2", "v3", "v4")
	h.promote(t, "v1")
	h.promote(t, "v2")
	h.promote(t, "v3")
	if _, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "bob", Reason: "broke checkout"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.PinRelease(ctx, "www", "v1", "carol", "audit"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.LockSite(ctx, "www", "dave", "launch week"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "2h", Reason: "sale", Actor: "erin"}); err != nil {
		t.Fatal(err)
	}
	if err := h.db.MarkPruned(ctx, "www", "v4", h.now); err != nil {
		t.Fatal(err)
	}
	if n, _ := h.svc.HistoryPending(ctx); n == 0 {
		t.Fatal("nothing waits to be mirrored")
	}
	pushed, err := h.svc.PushHistory(ctx)
	if err != nil || pushed == 0 {
		t.Fatalf("push: %d %v", pushed, err)
	}
	if n, _ := h.svc.HistoryPending(ctx); n != 0 {
		t.Fatalf("%d records still pending", n)
	}
	if again, _ := h.svc.PushHistory(ctx); again != 0 {
		t.Fatalf("a second push wrote %d", again)
	}
	for _, dir := range []string{releases.HistoryAudit, releases.HistoryDeploys, releases.HistoryReleases} {
		if keys, _ := h.bucket.ListHistory(ctx, releases.Site{}, dir, ""); len(keys) == 0 {
			t.Fatalf("nothing mirrored under %s", dir)
		}
	}
	before := func(svc *releases.Service) (string, string, string) {
		vs, err := svc.Versions(ctx, "www")
		if err != nil {
			t.Fatal(err)
		}
		st, err := svc.Status(ctx, "www")
		if err != nil {
			t.Fatal(err)
		}
		hist, err := svc.History(ctx, "www", 0)
		if err != nil {
			t.Fatal(err)
		}
		return asJSON(t, vs), asJSON(t, st), asJSON(t, hist)
	}
	v0, s0, h0 := before(h.svc)

	// The volume is lost: a new store, the same bucket and CDN.
	db2, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db2.Close() })
	svc2 := releases.Service{Store: db2, Bucket: h.svc.Bucket, CDNs: h.svc.CDNs, Sites: h.svc.Sites, Now: h.svc.Now, NewID: h.svc.NewID}
	if empty, _ := db2.Empty(ctx); !empty {
		t.Fatal("a new store is not empty")
	}
	rep, err := svc2.Rebuild(ctx, "www")
	if err != nil {
		t.Fatal(err)
	}
	if rep.Releases != 4 || rep.Deploys != 4 || rep.Pins != 1 || rep.Lock == nil || rep.Freeze == nil || rep.Live != "v2" || rep.Audit == 0 {
		t.Fatalf("rebuild report %+v", rep)
	}
	v1, s1, h1 := before(&svc2)
	for _, c := range []struct{ what, was, now string }{{"versions", v0, v1}, {"status", s0, s1}, {"history", h0, h1}} {
		if c.was != c.now {
			t.Errorf("%s differs after the rebuild:\nwas %s\nnow %s", c.what, c.was, c.now)
		}
	}
	// A second rebuild adds nothing.
	if _, err := svc2.Rebuild(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if _, _, h2 := before(&svc2); h2 != h1 {
		t.Fatal("a second rebuild changed the history")
	}
}

// A push that fails leaves the records pending, and the next one sends
// them; a state written twice before a push is sent once, as it is last.
func TestMirrorRetriesAndSendsTheLatestState(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish("v1")
	if _, err := h.svc.PinRelease(ctx, "www", "v1", "a", "one"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.PinRelease(ctx, "www", "v1", "a", "two"); err != nil {
		t.Fatal(err)
	}
	failing := &failingHistory{fakeBucket: h.bucket, failures: 1}
	svc := releases.Service{Store: h.svc.Store, Bucket: failing, CDNs: h.svc.CDNs, Sites: h.svc.Sites, Now: h.svc.Now}
	if _, err := svc.PushHistory(ctx); err == nil || !strings.Contains(err.Error(), "mirroring") {
		t.Fatalf("a failing push: %v", err)
	}
	if n, _ := svc.HistoryPending(ctx); n == 0 {
		t.Fatal("a failed push dropped its records")
	}
	if _, err := svc.PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if n, _ := svc.HistoryPending(ctx); n != 0 {
		t.Fatalf("%d pending after a good push", n)
	}
	raw, _ := h.bucket.GetHistory(ctx, releases.Site{}, releases.HistoryPins)
	var st releases.PinsState
	if err := json.Unmarshal(raw, &st); err != nil || len(st.Pins) != 1 || st.Pins[0].Reason != "two" {
		t.Fatalf("pins state %s", raw)
	}
	if failing.stateWrites != 1 {
		t.Fatalf("the pins state was written %d times", failing.stateWrites)
	}
}

type failingHistory struct {
	*fakeBucket
	failures    int
	stateWrites int
}

func (f *failingHistory) PutHistory(ctx context.Context, site releases.Site, key string, body []byte, replace bool) error {
	if f.failures > 0 {
		f.failures--
		return releases.Errorf(releases.EINTERNAL, "503 SlowDown")
	}
	if replace && key == releases.HistoryPins {
		f.stateWrites++
	}
	return f.fakeBucket.PutHistory(ctx, site, key, body, replace)
}

// A mirrored deploy whose id or versions deploybot would not write (the
// bucket is outside input) is left out of a rebuild and reported, naming
// it; the rest of the history (a good deploy, the pins) is rebuilt.
func TestRebuildSkipsAHostileMirroredDeploy(t *testing.T) {
	ctx := context.Background()
	good := `{"id":"d2","site":"www","kind":"promote","to":"v1","phase":"done"}`
	for name, body := range map[string]string{
		"id with a slash": `{"id":"../x","site":"www","kind":"promote","to":"v1","phase":"done"}`,
		"bad version":     `{"id":"d1","site":"www","kind":"promote","to":"../v1","phase":"done"}`,
		"bad from":        `{"id":"d1","site":"www","kind":"promote","from":"a b","to":"v1","phase":"done"}`,
		"another site":    `{"id":"d1","site":"docs","kind":"promote","to":"v1","phase":"done"}`,
		"not finished":    `{"id":"d1","site":"www","kind":"promote","to":"v1","phase":"update"}`,
		"not JSON":        `{"id":`,
	} {
		h := newHarness(t)
		h.bucket.history = map[string][]byte{
			releases.HistoryDeploys + "d1.json": []byte(body),
			releases.HistoryDeploys + "d2.json": []byte(good),
			releases.HistoryPins:                []byte(`{"pins":[{"site":"www","version":"v1","by":"ops"}]}`),
		}
		rep, err := h.svc.Rebuild(ctx, "www")
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		if len(rep.Skipped) != 1 || rep.Skipped[0].Key != "www/.deploybot/history/"+releases.HistoryDeploys+"d1.json" || rep.Skipped[0].Why == "" {
			t.Fatalf("%s: skipped %+v", name, rep.Skipped)
		}
		if ds, _ := h.db.Deploys(ctx, "www", 0); len(ds) != 1 || ds[0].ID != "d2" {
			t.Fatalf("%s: imported %+v", name, ds)
		}
		if rep.Pins != 1 {
			t.Fatalf("%s: the pins were not rebuilt after the bad object: %+v", name, rep)
		}
	}
}
