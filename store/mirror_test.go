package store

import (
	"context"
	"path/filepath"
	"sort"
	"strings"
	"testing"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
)

func pendingKeys(t *testing.T, db *DB) []string {
	t.Helper()
	recs, err := db.MirrorPending(context.Background(), 0)
	if err != nil {
		t.Fatal(err)
	}
	var keys []string
	for _, r := range recs {
		keys = append(keys, r.Site+":"+strings.SplitN(r.Key, "/", 2)[0])
	}
	sort.Strings(keys)
	return keys
}

// Each record that only the store knows is queued for the bucket in the
// transaction that records it; a state written twice is queued once; done
// records leave the queue, a state written again meanwhile stays.
func TestRecordsAreQueuedForTheBucket(t *testing.T) {
	ctx := context.Background()
	db, err := Open(filepath.Join(t.TempDir(), "db"), Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	now := testclock.At(10, 0)
	if _, err := db.PutRelease(ctx, releases.Release{Site: "www", Version: "v1", PublishedAt: now}); err != nil {
		t.Fatal(err)
	}
	d := releases.Deploy{ID: "d1", Site: "www", Kind: releases.KindPromote, To: "v1", Phase: releases.PhasePending, StartedAt: now}
	if err := db.StartDeploy(ctx, d, releases.Lock{Site: "www", DeployID: "d1", Since: now}); err != nil {
		t.Fatal(err)
	}
	if got := pendingKeys(t, db); strings.Join(got, ",") != "www:releases" {
		t.Fatalf("a running deploy was queued: %v", got)
	}
	d.Phase, d.FinishedAt = releases.PhaseDone, now
	if err := db.FinishDeploy(ctx, d, &releases.Live{Version: "v1", Since: now, DeployID: "d1"}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, releases.AuditEntry{Time: now, Site: "www", Actor: "a", Action: "promote", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	for _, reason := range []string{"one", "two"} {
		if err := db.SetPin(ctx, releases.Pin{Site: "www", Version: "v1", By: "a", Reason: reason, At: now}); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.AcquireLock(ctx, releases.Lock{Site: "www", Holder: "a", Reason: "r", Since: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.MarkPruned(ctx, "www", "v1", now); err != nil {
		t.Fatal(err)
	}
	want := "www:audit,www:deploys,www:releases,www:state,www:state"
	if got := pendingKeys(t, db); strings.Join(got, ",") != want {
		t.Fatalf("queued %v, want %s", got, want)
	}
	recs, _ := db.MirrorPending(ctx, 0)
	var pins releases.MirrorRecord
	for _, r := range recs {
		if r.Key == releases.HistoryPins {
			pins = r
		}
		if r.Key == releases.HistoryReleases+"v1.json" && !strings.Contains(string(r.Body), `"pruned":true`) {
			t.Fatalf("the release's queued record is not its latest: %s", r.Body)
		}
	}
	if !strings.Contains(string(pins.Body), `"reason":"two"`) {
		t.Fatalf("pins queued %s", pins.Body)
	}
	// Written again before the push: the pushed version is not cleared.
	if err := db.SetPin(ctx, releases.Pin{Site: "www", Version: "v1", By: "a", Reason: "three", At: now}); err != nil {
		t.Fatal(err)
	}
	for _, r := range recs {
		if err := db.MirrorDone(ctx, r); err != nil {
			t.Fatal(err)
		}
	}
	if got := pendingKeys(t, db); strings.Join(got, ",") != "www:state" {
		t.Fatalf("after the push, pending %v", got)
	}
	if n, _ := db.MirrorCount(ctx); n != 1 {
		t.Fatalf("count %d", n)
	}
}

// A store written before the mirror (schema 1) queues all it holds once,
// when it is opened by this version.
func TestOldStoreQueuesItsHistoryOnce(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	now := testclock.At(10, 0)
	if _, err := db.PutRelease(ctx, releases.Release{Site: "www", Version: "v1", PublishedAt: now}); err != nil {
		t.Fatal(err)
	}
	if err := db.AppendAudit(ctx, releases.AuditEntry{Time: now, Site: "www", Actor: "a", Action: "lock", Result: "ok"}); err != nil {
		t.Fatal(err)
	}
	// As a schema 1 store was: no outbox entries, version 1.
	if err := db.db.Update(func(tx *bolt.Tx) error {
		if err := tx.DeleteBucket(bucketMirror); err != nil {
			return err
		}
		if _, err := tx.CreateBucket(bucketMirror); err != nil {
			return err
		}
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("1"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	if got := pendingKeys(t, db); strings.Join(got, ",") != "www:audit,www:releases,www:state" {
		t.Fatalf("the upgrade queued %v", got)
	}
	recs, _ := db.MirrorPending(ctx, 0)
	for _, r := range recs {
		_ = db.MirrorDone(ctx, r)
	}
	db.Close()
	db, err = Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if n, _ := db.MirrorCount(ctx); n != 0 {
		t.Fatalf("a second open queued %d again", n)
	}
}

// The outbox is pushed in the order entries were queued, a replaced state
// taking its new place; a call reads at most limit entries, in order; an
// order left behind by a deploybot that queued without it (a downgrade)
// is mended when the store is opened.
func TestOutboxOrder(t *testing.T) {
	ctx := context.Background()
	path := filepath.Join(t.TempDir(), "db")
	db, err := Open(path, Options{})
	if err != nil {
		t.Fatal(err)
	}
	queue := func(key, body string) {
		t.Helper()
		if err := db.db.Update(func(tx *bolt.Tx) error { return enqueue(tx, "www", key, true, body) }); err != nil {
			t.Fatal(err)
		}
	}
	order := func(limit int) string {
		t.Helper()
		recs, err := db.MirrorPending(ctx, limit)
		if err != nil {
			t.Fatal(err)
		}
		var keys []string
		for _, r := range recs {
			keys = append(keys, r.Key)
		}
		return strings.Join(keys, ",")
	}
	for _, k := range []string{"a", "b", "c", "d"} {
		queue(k, k+"1")
	}
	queue("a", "a2")
	if got := order(0); got != "b,c,d,a" {
		t.Fatalf("after a was written again: %s", got)
	}
	if got := order(2); got != "b,c" {
		t.Fatalf("limit 2: %s", got)
	}
	recs, _ := db.MirrorPending(ctx, 1)
	if err := db.MirrorDone(ctx, recs[0]); err != nil {
		t.Fatal(err)
	}
	if got := order(0); got != "c,d,a" {
		t.Fatalf("after b was pushed: %s", got)
	}

	// An older deploybot queues e and writes c again without the order.
	if err := db.db.Update(func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMirror)
		for _, k := range []string{"e", "c"} {
			seq, err := b.NextSequence()
			if err != nil {
				return err
			}
			if err := putJSON(b, string(outboxKey("www", k)), outboxEntry{Seq: seq, MirrorRecord: releases.MirrorRecord{Site: "www", Key: k, Body: []byte(`"x"`)}}); err != nil {
				return err
			}
		}
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if got := order(0); got != "d,a" {
		t.Fatalf("before the store is opened again, the order knows neither: %s", got)
	}
	db.Close()
	if db, err = Open(path, Options{}); err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if got := order(0); got != "d,a,e,c" {
		t.Fatalf("after opening again: %s", got)
	}
	if n, _ := db.MirrorCount(ctx); n != 4 {
		t.Fatalf("count %d", n)
	}
}
