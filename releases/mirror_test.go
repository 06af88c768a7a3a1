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

// leaveEverythingToMirror gives www what only the store knows (deploys,
// a rollback, a pin, a lock, a freeze, a pruned release), then pushes it
// to the bucket and checks nothing is left pending and a second push
// writes nothing.
func leaveEverythingToMirror(t *testing.T, h *harness) {
	t.Helper()
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
}

// answers is what svc answers for www's versions, status and history
// (rebuild records left out), as JSON.
func answers(t *testing.T, svc *releases.Service) (versions, status, history string) {
	t.Helper()
	ctx := context.Background()
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
	return asJSON(t, vs), asJSON(t, st), asJSON(t, withoutRebuilds(hist))
}

// Everything only the store knew is in the bucket after a push, and a
// new, empty store rebuilt from the bucket and the CDN answers versions,
// status and history as the lost one did.
func TestLostStoreIsRebuiltFromTheBucket(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	leaveEverythingToMirror(t, h)
	v0, s0, h0 := answers(t, h.svc)

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
	v1, s1, h1 := answers(t, &svc2)
	for _, c := range []struct{ what, was, now string }{{"versions", v0, v1}, {"status", s0, s1}, {"history", h0, h1}} {
		if c.was != c.now {
			t.Errorf("%s differs after the rebuild:\nwas %s\nnow %s", c.what, c.was, c.now)
		}
	}
	// A second rebuild adds nothing but its own record; each rebuild is
	// one, after what it brought back.
	if _, err := svc2.Rebuild(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if _, _, h2 := answers(t, &svc2); h2 != h1 {
		t.Fatal("a second rebuild changed the history")
	}
	hist, err := svc2.History(ctx, "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range hist[:2] {
		if e.Action != releases.ActionRebuild || e.Result != releases.ResultOK || !strings.Contains(e.Detail, "4 release(s), 4 deploy(s)") {
			t.Fatalf("record %d of the history is not a rebuild's: %+v", i, e)
		}
	}
	if n := len(hist) - len(withoutRebuilds(hist)); n != 2 {
		t.Fatalf("%d rebuild records for two rebuilds", n)
	}
}

// withoutRebuilds is h without the records of rebuilds: the one record a
// store rebuilt from the bucket holds that the lost one did not (see
// releases.ActionRebuild); every other record must be identical.
func withoutRebuilds(h []releases.AuditEntry) []releases.AuditEntry {
	var out []releases.AuditEntry
	for _, e := range h {
		if e.Action != releases.ActionRebuild {
			out = append(out, e)
		}
	}
	return out
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

// unreadableHistory is a bucket whose history cannot be listed (S3 down).
type unreadableHistory struct{ *fakeBucket }

func (unreadableHistory) ListHistory(context.Context, releases.Site, string, string) ([]string, error) {
	return nil, releases.Errorf(releases.EINTERNAL, "503 SlowDown")
}

// A rebuild asked for is one record, ok or failed, for whoever asked; the
// rebuild of a store found empty is deploybot's, recorded only when it
// brought history back: not on a new install's first command (nothing to
// restore), and not when it failed, since a record would make the store
// not empty and keep the next command from trying again.
func TestRebuildRecords(t *testing.T) {
	ctx := releases.WithDoor(context.Background(), releases.DoorCLI)
	h := newHarness(t)
	h.publish("v1")
	h.promote(t, "v1")
	if _, err := h.svc.PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := func(b releases.Bucket) (*releases.Service, *store.DB) {
		db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { db.Close() })
		return &releases.Service{Store: db, Bucket: b, CDNs: h.svc.CDNs, Sites: h.svc.Sites, Now: h.svc.Now}, db
	}
	records := func(db *store.DB) []releases.AuditEntry {
		es, err := db.Audit(ctx, "www", 0)
		if err != nil {
			t.Fatal(err)
		}
		return es
	}
	alice := releases.WithPrincipal(ctx, releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:iam::1:user/alice"})

	svc, db := fresh(h.bucket)
	if _, err := svc.RebuildLost(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if es := records(db); len(es) != 2 || es[0].Action != releases.ActionRebuild || es[0].Actor != releases.AutoActor ||
		es[0].Door != releases.DoorCLI || es[0].Result != releases.ResultOK || !strings.HasPrefix(es[0].Detail, "the store was empty: 1 release(s), 1 deploy(s), 1 audit record(s)") {
		t.Fatalf("the rebuild of a lost store: %+v", es)
	}
	if _, err := svc.Rebuild(alice, "www"); err != nil {
		t.Fatal(err)
	}
	if e := records(db)[0]; e.Action != releases.ActionRebuild || e.Actor != "arn:aws:iam::1:user/alice" || e.Result != releases.ResultOK {
		t.Fatalf("a rebuild asked for: %+v", e)
	}

	// A new install: the bucket holds releases and no history.
	empty := &fakeBucket{manifests: h.bucket.manifests}
	svc, db = fresh(empty)
	if rep, err := svc.RebuildLost(ctx, "www"); err != nil || rep.Releases != 1 || len(records(db)) != 0 {
		t.Fatalf("a new install's first rebuild: %+v %v, records %+v", rep, err, records(db))
	}

	svc, db = fresh(unreadableHistory{h.bucket})
	if _, err := svc.RebuildLost(ctx, "www"); err == nil || len(records(db)) != 0 {
		t.Fatalf("a failed rebuild of a lost store: %v, records %+v", err, records(db))
	}
	if empty, _ := db.Empty(ctx); !empty {
		t.Fatal("a failed rebuild left the store not empty: the next command would not try again")
	}
	if _, err := svc.Rebuild(alice, "www"); err == nil {
		t.Fatal("a rebuild with the history unreadable did not fail")
	}
	if es := records(db); len(es) != 1 || es[0].Action != releases.ActionRebuild || es[0].Result != releases.ResultFailed || !strings.Contains(es[0].Detail, "503 SlowDown") {
		t.Fatalf("a failed rebuild asked for: %+v", es)
	}
}
