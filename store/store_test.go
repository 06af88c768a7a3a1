package store

import (
	"context"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
)

var ctx = context.Background()

func open(t *testing.T, path string, opts Options) *DB {
	t.Helper()
	db, err := Open(path, opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}

func TestReleases(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"), Options{})
	t0 := testclock.Day()
	for i, v := range []string{"b", "a", "c"} {
		created, err := db.PutRelease(ctx, releases.Release{Site: "www", Version: v, PublishedAt: t0.Add(time.Duration(i) * time.Hour), Files: i})
		if err != nil || !created {
			t.Fatalf("put %s: %v %v", v, created, err)
		}
	}
	created, err := db.PutRelease(ctx, releases.Release{Site: "www", Version: "a", Files: 99})
	if err != nil || created {
		t.Fatalf("second put: %v %v", created, err)
	}
	r, err := db.Release(ctx, "www", "a")
	if err != nil || r.Files != 1 {
		t.Fatalf("release a was overwritten: %+v %v", r, err)
	}
	if _, err := db.Release(ctx, "www", "zz"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("missing release: %v", err)
	}
	rs, _ := db.Releases(ctx, "www")
	if len(rs) != 3 || rs[0].Version != "c" || rs[2].Version != "b" {
		t.Fatalf("order %+v", rs)
	}
	if rs, _ := db.Releases(ctx, "other"); len(rs) != 0 {
		t.Fatalf("other site sees %v", rs)
	}
}

func TestDeployLifecycleIsAtomic(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"), Options{})
	d := releases.Deploy{ID: "20260101T000000Z-aaaa", Site: "www", To: "v1", Phase: releases.PhasePending}
	lock := releases.Lock{Site: "www", Holder: "alice", DeployID: d.ID}
	if err := db.StartDeploy(ctx, d, lock); err != nil {
		t.Fatal(err)
	}
	d2 := releases.Deploy{ID: "20260101T000001Z-bbbb", Site: "www", To: "v2"}
	err := db.StartDeploy(ctx, d2, releases.Lock{Site: "www", Holder: "bob", DeployID: d2.ID})
	var le *releases.LockedError
	if !errors.As(err, &le) || le.Lock.Holder != "alice" {
		t.Fatalf("second start: %v", err)
	}
	if _, err := db.Deploy(ctx, "www", d2.ID); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("refused deploy was recorded: %v", err)
	}
	d.Phase = "update"
	if err := db.SaveDeploy(ctx, d); err != nil {
		t.Fatal(err)
	}
	if err := db.SaveDeploy(ctx, d2); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("save of an unstarted deploy: %v", err)
	}
	d.Phase = releases.PhaseDone
	if err := db.FinishDeploy(ctx, d, &releases.Live{Version: "v1", DeployID: d.ID}); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.Lock(ctx, "www"); l != nil {
		t.Fatalf("lock kept: %+v", l)
	}
	live, ok, _ := db.Live(ctx, "www")
	if !ok || live.Version != "v1" {
		t.Fatalf("live %+v", live)
	}
	got, _ := db.Deploy(ctx, "www", d.ID)
	if got.Phase != releases.PhaseDone {
		t.Fatalf("deploy %+v", got)
	}
}

func TestFinishDoesNotFreeAnotherHoldersLock(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"), Options{})
	d := releases.Deploy{ID: "a", Site: "www"}
	if err := db.StartDeploy(ctx, d, releases.Lock{Site: "www", Holder: "x", DeployID: "a"}); err != nil {
		t.Fatal(err)
	}
	// Someone replaced the lock (a manual lock after a forced unlock).
	if err := db.with(ctx, true, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketLocks), "www", releases.Lock{Site: "www", Holder: "ops", Reason: "freeze"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishDeploy(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.Lock(ctx, "www"); l == nil || l.Holder != "ops" {
		t.Fatalf("manual lock lost: %+v", l)
	}
}

// A deploy that ends with LockAfter leaves that lock instead of a free
// site, in the transaction that records its end, and the stored deploy
// says so; another holder's lock is still left alone.
func TestFinishHandsTheLockOver(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"), Options{})
	since := testclock.At(12, 0)
	after := &releases.Lock{Site: "www", Holder: "deploybot", Reason: "auto-rollback: v2 failed health checks", Since: since}
	d := releases.Deploy{ID: "rb", Site: "www", Kind: releases.KindRollback, To: "v1", LockAfter: after}
	if err := db.StartDeploy(ctx, d, releases.Lock{Site: "www", Holder: "deploybot", DeployID: "rb"}); err != nil {
		t.Fatal(err)
	}
	d.Phase = releases.PhaseDone
	if err := db.FinishDeploy(ctx, d, &releases.Live{Version: "v1", DeployID: "rb"}); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.Lock(ctx, "www"); l == nil || *l != *after {
		t.Fatalf("lock after the deploy: %+v, want %+v", l, after)
	}
	if got, _ := db.Deploy(ctx, "www", "rb"); got.LockAfter == nil || *got.LockAfter != *after {
		t.Fatalf("stored deploy: %+v", got)
	}
	// A person's lock, not a deploy's: it is freed by ReleaseLock.
	if l, err := db.ReleaseLock(ctx, "www"); err != nil || l == nil || l.Reason != after.Reason {
		t.Fatalf("releasing the handed-over lock: %+v %v", l, err)
	}

	d2 := releases.Deploy{ID: "rb2", Site: "www", LockAfter: after}
	if err := db.StartDeploy(ctx, d2, releases.Lock{Site: "www", Holder: "deploybot", DeployID: "rb2"}); err != nil {
		t.Fatal(err)
	}
	if err := db.with(ctx, true, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketLocks), "www", releases.Lock{Site: "www", Holder: "ops", Reason: "freeze"})
	}); err != nil {
		t.Fatal(err)
	}
	if err := db.FinishDeploy(ctx, d2, nil); err != nil {
		t.Fatal(err)
	}
	if l, _ := db.Lock(ctx, "www"); l == nil || l.Holder != "ops" {
		t.Fatalf("another holder's lock was replaced: %+v", l)
	}
}

func TestDeploysNewestFirstWithLimit(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"), Options{})
	for i := range 5 {
		d := releases.Deploy{ID: fmt.Sprintf("20260101T00000%dZ-x", i), Site: "www"}
		if err := db.StartDeploy(ctx, d, releases.Lock{Site: "www", DeployID: d.ID}); err != nil {
			t.Fatal(err)
		}
		if err := db.FinishDeploy(ctx, d, nil); err != nil {
			t.Fatal(err)
		}
	}
	ds, _ := db.Deploys(ctx, "www", 2)
	if len(ds) != 2 || ds[0].ID != "20260101T000004Z-x" || ds[1].ID != "20260101T000003Z-x" {
		t.Fatalf("deploys %+v", ds)
	}
	if all, _ := db.Deploys(ctx, "www", 0); len(all) != 5 {
		t.Fatalf("all: %d", len(all))
	}
}

func TestTransientStoresShareLocks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	a := open(t, path, Options{Transient: true})
	b := open(t, path, Options{Transient: true})
	var wg sync.WaitGroup
	results := make([]error, 8)
	for i := range results {
		wg.Add(1)
		go func() {
			defer wg.Done()
			db := a
			if i%2 == 1 {
				db = b
			}
			id := fmt.Sprintf("d%d", i)
			results[i] = db.StartDeploy(ctx, releases.Deploy{ID: id, Site: "www"}, releases.Lock{Site: "www", Holder: id, DeployID: id})
		}()
	}
	wg.Wait()
	won := 0
	for _, err := range results {
		var le *releases.LockedError
		switch {
		case err == nil:
			won++
		case errors.As(err, &le):
		default:
			t.Fatalf("unexpected error %v", err)
		}
	}
	if won != 1 {
		t.Fatalf("%d deploys took the lock, want 1", won)
	}
}

func TestOpenTimeoutNamesTheHolder(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	open(t, path, Options{})
	_, err := Open(path, Options{Timeout: 100 * time.Millisecond})
	if err == nil {
		t.Fatal("second open of a held file succeeded")
	}
	if releases.ErrorCode(err) != releases.ECONFLICT || !errors.Is(err, bolterrors.ErrTimeout) {
		t.Fatalf("error %v", err)
	}
}

func TestRefusesNewerSchema(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := open(t, path, Options{})
	if err := db.with(ctx, true, func(tx *bolt.Tx) error {
		return tx.Bucket(bucketMeta).Put(keySchema, []byte("99"))
	}); err != nil {
		t.Fatal(err)
	}
	db.Close()
	if _, err := Open(path, Options{}); err == nil {
		t.Fatal("opened a store with a newer schema")
	}
}

func TestManualLocksAndAudit(t *testing.T) {
	db := open(t, filepath.Join(t.TempDir(), "db"), Options{})
	if err := db.AcquireLock(ctx, releases.Lock{Site: "www", Holder: "ops", Reason: "freeze"}); err != nil {
		t.Fatal(err)
	}
	var le *releases.LockedError
	if err := db.AcquireLock(ctx, releases.Lock{Site: "www", Holder: "bob"}); !errors.As(err, &le) || le.Lock.Holder != "ops" {
		t.Fatalf("second lock: %v", err)
	}
	if err := db.StartDeploy(ctx, releases.Deploy{ID: "d", Site: "www"}, releases.Lock{Site: "www", DeployID: "d"}); !errors.As(err, &le) {
		t.Fatalf("deploy on a locked site: %v", err)
	}
	l, err := db.ReleaseLock(ctx, "www")
	if err != nil || l == nil || l.Holder != "ops" {
		t.Fatalf("release: %+v %v", l, err)
	}
	if l, err := db.ReleaseLock(ctx, "www"); err != nil || l != nil {
		t.Fatalf("release of a free site: %+v %v", l, err)
	}
	if err := db.StartDeploy(ctx, releases.Deploy{ID: "d", Site: "www"}, releases.Lock{Site: "www", DeployID: "d"}); err != nil {
		t.Fatal(err)
	}
	if _, err := db.ReleaseLock(ctx, "www"); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("releasing a deploy's lock: %v", err)
	}
	t0 := testclock.Day()
	for i, a := range []string{"promote", "lock", "unlock"} {
		if err := db.AppendAudit(ctx, releases.AuditEntry{Time: t0.Add(time.Duration(i%2) * time.Second), Site: "www", Actor: "u", Action: a}); err != nil {
			t.Fatal(err)
		}
	}
	es, _ := db.Audit(ctx, "www", 2)
	if len(es) != 2 || es[0].Action != "lock" {
		t.Fatalf("audit newest first: %+v", es)
	}
}

// Release links (a release's notice) live next to deploy links without
// mixing with them, and survive a reopen.
func TestReleaseLinks(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	db := open(t, path, Options{})
	ctx := context.Background()
	if err := db.SetDeployLink(ctx, "www", "20261128T100000Z-abcd1234", "slack", "https://thread"); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		if err := db.SetReleaseLink(ctx, "www", v, "slack", "C1/"+v); err != nil {
			t.Fatal(err)
		}
	}
	if err := db.SetReleaseLink(ctx, "docs", "v1", "slack", "C2/v1"); err != nil {
		t.Fatal(err)
	}
	db.Close()
	db = open(t, path, Options{})
	got, err := db.ReleaseLinks(ctx, "www")
	if err != nil {
		t.Fatal(err)
	}
	if len(got) != 2 || got["v1"]["slack"] != "C1/v1" || got["v2"]["slack"] != "C1/v2" {
		t.Fatalf("release links %v", got)
	}
	if d, _ := db.DeployLinks(ctx, "www", "20261128T100000Z-abcd1234"); d["slack"] != "https://thread" {
		t.Fatalf("deploy links %v", d)
	}
	if none, err := db.ReleaseLinks(ctx, "nosite"); err != nil || len(none) != 0 {
		t.Fatalf("a site without links: %v %v", none, err)
	}
}

// A command line waits for other command lines (each holds the file for
// moments, but many at once may queue for longer than the wait of old,
// 2 seconds) and does not wait for serve, which never lets go.
func TestTransientWaitsForCommandLinesNotForServe(t *testing.T) {
	path := filepath.Join(t.TempDir(), "db")
	cli := open(t, path, Options{Transient: true})

	// Another command line holds the file for 2.5 seconds.
	other, err := bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	released := make(chan struct{})
	go func() {
		time.Sleep(2500 * time.Millisecond)
		close(released)
		other.Close()
	}()
	if err := cli.SetPin(ctx, releases.Pin{Site: "www", Version: "v1", By: "alice"}); err != nil {
		t.Fatalf("a command line gave up on another: %v", err)
	}
	select {
	case <-released:
	default:
		t.Fatal("the operation ran while another command line held the file")
	}

	// serve holds it: the command line is told so, without waiting for
	// the file (which would end in the other error, "held by another
	// deploybot process").
	patient := open(t, path, Options{Transient: true, Timeout: 5 * time.Second})
	serve := open(t, path, Options{})
	_, err = patient.Pins(ctx, "www")
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "held by a running deploybot serve") {
		t.Fatalf("a command line while serve holds the store: %v", err)
	}
	serve.Close()

	// serve starts while a command line waits for another: the command
	// line notices the mark at its next look and says so, without
	// waiting out its 5 seconds (after which the error would be the
	// other one).
	other, err = bolt.Open(path, 0o600, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer other.Close()
	waiting := make(chan error, 1)
	go func() { _, err := patient.Pins(ctx, "www"); waiting <- err }()
	mark := hold(path) // as serve marks it once it has the file
	if mark == nil {
		t.Fatal("no mark")
	}
	if err := <-waiting; !strings.Contains(fmt.Sprint(err), "held by a running deploybot serve") {
		t.Fatalf("a command line waiting when serve started: %v", err)
	}
	_ = mark.release()
	other.Close()
	serve = open(t, path, Options{})
	serve.Close()
	if _, err := patient.Pins(ctx, "www"); err != nil {
		t.Fatalf("after serve stopped: %v", err)
	}
}
