package cloud_test

// Ways the replicas' shared state (lock, lease, notices, catch-up) could
// go wrong that a second review found, as an attacker (the bucket is
// outside input) and as a distributed-systems skeptic (pauses, clocks,
// lost mirrors). Each test failed when it was written; the comment says
// how it went.

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// takeOverLock rewrites the site's lock as another replica's takeover
// writes it: same deploy, another runner, a fresh heartbeat.
func takeOverLock(t *testing.T, ctx context.Context, sh *releases.SharedStore, site releases.Site, id string) {
	t.Helper()
	body, etag, err := sh.State.GetState(ctx, site, releases.StateLock)
	if err != nil {
		t.Fatal(err)
	}
	var st map[string]any
	if err := json.Unmarshal(body, &st); err != nil {
		t.Fatal(err)
	}
	lock := st["lock"].(map[string]any)
	if lock["deploy_id"] != id {
		t.Fatalf("the lock names %v, not the running deploy %s", lock["deploy_id"], id)
	}
	lock["host"], lock["process"], lock["pid"], lock["heartbeat"] = "host-z", "other-replica", 9, time.Now().UTC().Format(time.RFC3339Nano)
	delete(st, "write")
	taken, _ := json.Marshal(st)
	if _, err := sh.State.PutState(ctx, site, releases.StateLock, taken, etag); err != nil {
		t.Fatal(err)
	}
}

// V1. A runner taken over between two heartbeats (a GC pause, a node cut
// off for 25 s) that then reaches the end of its steps before its next
// heartbeat learns of the takeover only at FinishDeploy. SharedStore's
// FinishDeploy records the end locally first and queues it for the
// history (create-only: the first record mirrored wins), and only then
// finds the bucket's lock run by another process. The fenced runner's
// store says done, its record reaches the bucket's history before the
// new runner has ended the deploy, and every other store that catches up
// imports it: the new runner's own outcome (done or failed) is refused
// by the history, so stores disagree on how the deploy ended.
func TestReviewAFencedRunnerReachingTheEndRecordsNoEnd(t *testing.T) {
	e, p := twoProcesses(t, 300*time.Millisecond)
	ctx := context.Background()
	shared := p[0].Store.(*releases.SharedStore)
	var id string
	out, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "ci"}, func(ev releases.Event) {
		// The last step: its phase is recorded, then (while the runner
		// waits for the invalidation) another replica takes it over.
		if ev.Type == releases.EventPhaseStarted && ev.Phase == cloud.PhaseInvalidateWait {
			id = ev.Deploy.ID
			takeOverLock(t, ctx, shared, e.Site, id)
		}
	})
	if id == "" {
		t.Fatalf("the deploy never reached its last phase: %+v %v", out, err)
	}
	if !errors.Is(err, releases.ErrFenced) {
		t.Errorf("the fenced runner's promote: want a handed-over refusal, got %v", err)
	}
	if d, err := p[0].Store.Deploy(ctx, "www", id); err != nil || d.Phase.Final() {
		t.Errorf("the fenced runner recorded an end (%s) of a deploy another process runs: %v", d.Phase, err)
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	if raw, err := e.Bucket.GetHistory(ctx, e.Site, releases.HistoryDeploys+id+".json"); err == nil {
		t.Errorf("the fenced runner's end reached the history while the other runner still runs the deploy:\n%s", raw)
	}
}

// V2. Whether a deploy's runner is gone is judged by comparing the
// heartbeat the runner wrote (by its clock) with the judge's clock: a
// runner whose clock is 30 s behind the judge's, beating every 10 s, is
// taken for dead at the judge's first look (the watch, every 5 s), and
// its deploy is taken over and run by a second process while the first
// still runs it, until the first's next heartbeat (up to 10 s). Nothing
// tells an operator that clocks must agree within 20 s; a judge could
// instead time how long the heartbeat it sees has not changed.
func TestReviewAClockBehindHasItsLiveDeployTakenOver(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	behind := func() time.Time { return time.Now().Add(-30 * time.Second) }
	d := releases.Deploy{ID: releases.NewDeployID(behind()), Site: "www", Kind: releases.KindPromote, Actor: "ci", To: "v1",
		Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: behind()}
	runner := releases.Lock{Site: "www", Holder: "ci", Reason: "promote v1", DeployID: d.ID, Since: behind(), Host: "host-a", PID: 100, Process: "proc-a", Heartbeat: behind()}
	if err := p[0].Store.StartDeploy(ctx, d, runner); err != nil {
		t.Fatal(err)
	}
	for beat := range 3 {
		// The runner beats, by its clock.
		runner.Heartbeat = behind()
		if err := p[0].Store.TouchLock(ctx, runner); err != nil {
			t.Fatalf("beat %d: %v", beat, err)
		}
		recovered, err := p[1].Watch(ctx, "www", nil)
		l, _ := p[1].Store.Lock(ctx, "www")
		if len(recovered) > 0 || l == nil || l.Process != "proc-a" {
			t.Fatalf("beat %d: the other process took over a deploy whose runner beats (its clock 30 s behind): recovered %+v (%v), lock %+v", beat, recovered, err, l)
		}
	}
}

// countingBucket counts the history reads of one process.
type countingBucket struct {
	releases.Bucket
	lists, gets atomic.Int32
}

func (c *countingBucket) ListHistory(ctx context.Context, site releases.Site, dir, after string) ([]string, error) {
	c.lists.Add(1)
	return c.Bucket.ListHistory(ctx, site, dir, after)
}

func (c *countingBucket) GetHistory(ctx context.Context, site releases.Site, key string) ([]byte, error) {
	c.gets.Add(1)
	return c.Bucket.GetHistory(ctx, site, key)
}

// V3. The live pointer names a deploy whose record never reaches the
// bucket's history (its replica's pod was deleted with it pending, as
// docs/serve.md says can happen; or the lock object says so): every
// replica's watch then lists a whole day of the site's deploys and audit
// entries every 5 seconds, forever (two LISTs, paged per 1,000 keys, per
// site and replica: 1,440 an hour where an idle site should cost none).
func TestReviewWatchDoesNotRelistForARecordThatNeverCame(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	if _, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "ci"}, nil); err != nil {
		t.Fatal(err)
	}
	// p[0] never pushes its history (its pod is gone).
	c := &countingBucket{Bucket: p[1].Bucket}
	p[1].Bucket = c
	for range 5 {
		if _, err := p[1].Watch(ctx, "www", nil); err != nil {
			t.Fatal(err)
		}
	}
	if n := c.lists.Load(); n > 2 {
		t.Fatalf("five watches 5 s apart listed the history %d times for one deploy record that never came", n)
	}
}

// V4. A mirrored deploy that does not decode, or says what deploybot
// would not write (anyone who can write the bucket can put one there,
// keyed inside the window or after it), is skipped and logged, but not
// remembered: every catch-up (each rollback, history, status, versions;
// the watch every 5 s) reads it again, one GET per planted object.
func TestReviewABadMirroredDeployIsReadOnce(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	const planted = 20
	for i := range planted {
		id := releases.NewDeployID(time.Now().Add(time.Duration(i) * time.Second))
		if err := e.Bucket.PutHistory(ctx, e.Site, releases.HistoryDeploys+id+".json", []byte(`{"id":"`+id+`","site":"www","phase":"running?"}`), false); err != nil {
			t.Fatal(err)
		}
	}
	c := &countingBucket{Bucket: p[1].Bucket}
	p[1].Bucket = c
	if _, err := p[1].PullHistory(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	first := c.gets.Load()
	if _, err := p[1].PullHistory(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if again := c.gets.Load() - first; again != 0 {
		t.Fatalf("the second catch-up read %d objects again (the first read %d); each was skipped as bad before", again, first)
	}
}

// V5. History keys that sort after any window (audit/9999…, planted) are
// listed by every catch-up, read, imported as audit entries dated in
// 9999, and kept in the per-process `pulled` set forever (it only drops
// keys below the window's floor): the set, the listing and each catch-up's
// marking (a pass over the whole set per key) grow with what an attacker
// plants, without bound, in every replica (serve is limited to 256 MiB).
func TestReviewHistoryKeysFromTheFutureAreIgnored(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	const planted = 1100 // more than one LIST page
	for i := range planted {
		at := time.Date(9999, 1, 1, 0, 0, 0, i, time.UTC)
		body := fmt.Sprintf(`{"time":%q,"site":"www","actor":"mallory","action":"promote","result":"ok","detail":"v%d"}`, at.Format(time.RFC3339Nano), i)
		key := releases.HistoryAudit + at.Format("20060102T150405.000000000Z") + "-000000000000.json"
		if _, err := e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.HistoryPrefix() + key), Body: strings.NewReader(body)}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p[1].PullHistory(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	before := e.AWS.Calls()
	if _, err := p[1].PullHistory(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	after := e.AWS.Calls()
	if n := after["s3 ListObjectsV2"] - before["s3 ListObjectsV2"]; n > 2 {
		t.Errorf("a catch-up with nothing new listed %d pages: the planted future keys are listed every time", n)
	}
	hist, err := p[1].History(ctx, "www", 10)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hist {
		if h.Actor == "mallory" {
			t.Fatalf("an audit entry dated %s, planted in the bucket, is in the history: %+v", h.Time, h)
		}
	}
}

// V6. A lease object whose expiry is far in the future (planted, or
// written by a replica whose clock was wrong by days) is never taken: no
// replica ever holds the site's lease again, so the release notices
// reconcile finds, the chat's drift reports and approval expiry stop for
// good, each replica logging a warning a minute. deploybot never writes
// an expiry more than one lease ahead.
func TestReviewALeaseFarInTheFutureIsTaken(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	planted := `{"holder":"mallory","epoch":1,"expires":"9999-01-01T00:00:00Z"}`
	if _, err := e.Bucket.PutState(ctx, e.Site, releases.StateLease, []byte(planted), ""); err != nil {
		t.Fatal(err)
	}
	a := sharedOf(p, 0)
	l, err := a.HoldLease(ctx, "www", time.Now(), time.Minute)
	if err != nil || !l.Mine {
		t.Fatalf("a lease expiring in 9999 keeps every replica out: %+v %v", l, err)
	}
}

// V7. A lease object that does not decode as deploybot writes it
// (planted: a holder that is not an id, a field deploybot does not know)
// is refused, as the lock is, but the lease guards nothing a refusal
// protects: every replica's HoldLease fails every minute, nobody holds
// the lease, and the site's notices, drift reports and approval expiry
// stop until someone removes the object by hand.
func TestReviewAStrangeLeaseObjectDoesNotStopTheJobs(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	planted := `{"holder":"../../x","epoch":1,"expires":"2000-01-01T00:00:00Z","extra":true}`
	if _, err := e.Bucket.PutState(ctx, e.Site, releases.StateLease, []byte(planted), ""); err != nil {
		t.Fatal(err)
	}
	a := sharedOf(p, 0)
	if l, err := a.HoldLease(ctx, "www", time.Now(), time.Minute); err != nil || !l.Mine {
		t.Fatalf("a strange lease object keeps every replica out: %+v %v", l, err)
	}
}

// V8. A notice claim stamped in the future ("claimed 2999-…", planted, or
// by a replica whose clock runs ahead that then died before it posted)
// never ages past claimTTL: the release's notice is never posted by
// anyone.
func TestReviewANoticeClaimFromTheFutureExpires(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	for i := range p {
		if _, err := p[i].Sync(ctx, "www"); err != nil {
			t.Fatal(err)
		}
	}
	planted := `{"releases":{"v2":{"links":{"slack":"claimed 2999-01-01T00:00:00Z"}}}}`
	if _, err := e.Bucket.PutState(ctx, e.Site, releases.StateNotices, []byte(planted), ""); err != nil {
		t.Fatal(err)
	}
	if mine, err := p[0].ClaimReleaseLink(ctx, "www", "v2", "slack"); err != nil || !mine {
		t.Fatalf("a claim dated 2999 holds v2's notice forever: %v %v", mine, err)
	}
}

// V9. notices.json grows by an entry per release and is trimmed only of
// releases retention pruned; nothing bounds what is written, while a read
// refuses more than releases.MaxStateBytes (64 KiB). A site that keeps
// its releases (retention.keep in the hundreds; ~110 bytes an entry) or a
// few hundred links written by hand passes 64 KiB and from then on every
// claim and every refresh fails: no release notice is posted or updated
// again, on any replica.
func TestReviewNoticesNeverGrowPastWhatAReadAccepts(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	for i := range 1000 {
		v := fmt.Sprintf("v%d", 1000+i)
		if err := p[0].SetReleaseLink(ctx, "www", v, "slack", fmt.Sprintf("C0123456789 1733550%03d.123456 superseded-%s", i, v)); err != nil {
			t.Fatalf("link %d: %v", i, err)
		}
	}
	if _, err := p[1].ClaimReleaseLink(ctx, "www", "v2", "slack"); err != nil {
		t.Fatalf("after 1000 notices, no notice can be claimed any more: %v", err)
	}
}

// V10. A notices entry that does not know its release's manifest (written
// by a process whose record of the release predates manifest ETags, or
// planted) is taken for every release of that name: once the name is
// pruned and published again, the old notice's link is the new release's
// (so refresh rewrites the pruned release's message to describe the new
// build), and the new release's notice is never posted (the link is
// "there"). The store itself treats a reused name as another release
// (Release.is: an unknown manifest names a record only if it is not
// Reused).
func TestReviewAnOldNoticeDoesNotPassToARepublishedName(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	// The old v2's notice, recorded without its manifest, then pruned.
	old := `{"releases":{"v2":{"links":{"slack":"C1 1600000000.000100 pruned"}}}}`
	if _, err := e.Bucket.PutState(ctx, e.Site, releases.StateNotices, []byte(old), ""); err != nil {
		t.Fatal(err)
	}
	if _, err := p[1].Sync(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if err := p[1].Store.MarkPruned(ctx, "www", "v2", time.Now()); err != nil {
		t.Fatal(err)
	}
	if _, _, err := e.Bucket.DeleteFolder(ctx, e.Site, "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v2"))}); err != nil {
		t.Fatal(err)
	}
	e.Publish("v2", time.Now().UTC().Truncate(time.Second), map[string]string{"index.html": "v2 again"})
	if _, err := p[1].Sync(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if r, err := p[1].Store.Release(ctx, "www", "v2"); err != nil || !r.Reused {
		t.Fatalf("the re-published v2: %+v %v", r, err)
	}
	if links, err := p[1].ReleaseLinks(ctx, "www"); err != nil || links["v2"]["slack"] != "" {
		t.Errorf("the pruned v2's notice is the re-published v2's: %v %v", links["v2"], err)
	}
	if mine, err := p[1].ClaimReleaseLink(ctx, "www", "v2", "slack"); err != nil || !mine {
		t.Errorf("the re-published v2's notice can never be posted: %v %v", mine, err)
	}
}

// V11. V1 once more, when the process that took the deploy over has also
// ended it (freed the lock) before the first runner, paused between two
// heartbeats, reaches its own end: the lock no longer names the deploy,
// so FinishDeploy takes it for nobody's and records the first runner's
// end (done) beside the other's (failed, here), and mirrors it. Its
// heartbeat would have said it was fenced ("freed or taken by someone
// else": whoever freed it took this runner for gone).
func TestReviewARunnerWhoseDeployAnotherEndedRecordsNoEnd(t *testing.T) {
	e, p := twoProcesses(t, 300*time.Millisecond)
	ctx := context.Background()
	shared := p[0].Store.(*releases.SharedStore)
	var id string
	_, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "ci"}, func(ev releases.Event) {
		if ev.Type != releases.EventPhaseStarted || ev.Phase != cloud.PhaseInvalidateWait {
			return
		}
		id = ev.Deploy.ID
		takeOverLock(t, ctx, shared, e.Site, id)
		// The other process ends the deploy (failed, say) and frees the
		// lock, recording what is live, as its FinishDeploy writes it.
		body, etag, err := shared.State.GetState(ctx, e.Site, releases.StateLock)
		if err != nil {
			t.Fatal(err)
		}
		var st map[string]any
		if err := json.Unmarshal(body, &st); err != nil {
			t.Fatal(err)
		}
		st["lock"] = nil
		delete(st, "deploy")
		delete(st, "write")
		st["live"] = map[string]any{"version": "v2", "deploy_id": id, "since": time.Now().UTC().Format(time.RFC3339Nano)}
		freed, _ := json.Marshal(st)
		if _, err := shared.State.PutState(ctx, e.Site, releases.StateLock, freed, etag); err != nil {
			t.Fatal(err)
		}
	})
	if id == "" {
		t.Fatalf("the deploy never reached its last phase: %v", err)
	}
	if d, err := p[0].Store.Deploy(ctx, "www", id); err != nil || d.Phase.Final() {
		t.Errorf("the first runner recorded an end (%s) of a deploy another process ended: %v", d.Phase, err)
	}
	if !errors.Is(err, releases.ErrFenced) {
		t.Errorf("the first runner's promote: want a handed-over refusal, got %v", err)
	}
}

// V12. The scheduled prune's claim object holds the latest planned time
// claimed; one planted (or written by a clock years ahead) with a time
// far in the future makes every replica's claim lose, forever: retention
// never runs again, on any replica, and nothing says why but a log line
// per run ("runs elsewhere").
func TestReviewAScheduledRunClaimedFarAheadStillRuns(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	planted := `{"at":"9999-01-01T00:00:00Z"}`
	if _, err := e.Bucket.PutState(ctx, e.Site, "runs/prune.json", []byte(planted), ""); err != nil {
		t.Fatal(err)
	}
	slot := time.Now().UTC().Truncate(time.Hour)
	if mine, err := p[0].Store.(*releases.SharedStore).ClaimRun(ctx, "www", "prune", slot); err != nil || !mine {
		t.Fatalf("a run claimed for 9999 keeps every planned prune from running: %v %v", mine, err)
	}
}

// V13. A notices object that does not decode as deploybot writes it (a
// link longer than it writes, a release name it would not take, a field
// it does not know; or one past 64 KiB, as V9's growth left it) is
// refused, so every claim and every refresh fails: no release notice is
// posted or updated again, on any replica, until someone removes it by
// hand. Like the lease, it guards nothing a refusal would protect (the
// local store keeps each notice's link too).
func TestReviewAStrangeNoticesObjectDoesNotStopTheNotices(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	for i := range p {
		if _, err := p[i].Sync(ctx, "www"); err != nil {
			t.Fatal(err)
		}
	}
	for _, planted := range []string{
		`{"releases":{"../etc":{"links":{}}}}`,
		`{"releases":{},"extra":1}`,
		`{"releases":{"v9":{"links":{"slack":"` + strings.Repeat("x", 70<<10) + `"}}}}`,
	} {
		_, etag, _ := e.Bucket.GetState(ctx, e.Site, releases.StateNotices)
		if _, err := e.Bucket.PutState(ctx, e.Site, releases.StateNotices, []byte(planted), etag); err != nil {
			t.Fatal(err)
		}
		if _, err := p[1].ReleaseLinks(ctx, "www"); err != nil {
			t.Errorf("%.40s...: the release notices cannot be refreshed: %v", planted, err)
		}
		if mine, err := p[1].ClaimReleaseLink(ctx, "www", "v2", "slack"); err != nil || !mine {
			t.Errorf("%.40s...: v2's notice cannot be claimed: %v %v", planted, mine, err)
		}
		if err := p[1].SetReleaseLink(ctx, "www", "v2", "slack", ""); err != nil {
			t.Fatal(err)
		}
	}
}

// V15. Retention keeps the last keep_deployed releases that were live
// (rollback targets), judged from the deploys in the pruning process's
// store; prune, unlike rollback, history and status, does not catch up
// with the deploys other processes ran first. The replica whose claim
// wins the scheduled prune (or a command line's `deploybot prune`)
// deletes the release another replica's deploys made a rollback target.
func TestReviewPruneKeepsWhatOtherProcessesDeployed(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		if _, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "alice"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	// Keep the newest and the last two live ones: v3, v2 (live), v1.
	p[1].Sites[0].Retention = releases.Policy{Keep: 1, KeepDeployed: 2, Grace: time.Hour}
	rep, err := p[1].Prune(ctx, releases.PruneRequest{Site: "www", Actor: "schedule"})
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range rep.Deleted {
		if d.Version == "v1" {
			t.Fatalf("the other replica's prune deleted v1, live before v2 (a rollback target): %+v", rep.Deleted)
		}
	}
}

// V16. Catch-up reads the last CatchUpWindow (a day) of the history,
// whatever the store lacks: a store that fell more than a day behind (a
// laptop's command line used weekly, a replica down for a weekend with
// its volume kept; only an empty store is rebuilt) never learns the
// deploys in between, and its rollback walks back through what it knows:
// from v3 it goes to v1, skipping v2, the release live before v3.
func TestReviewAStoreMoreThanADayBehindRollsBackToTheRightRelease(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	if _, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	// p[1] knows the releases and, caught up, the deploy to v1.
	if _, err := p[1].Versions(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if _, err := p[1].History(ctx, "www", 10); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v2", "v3"} {
		if _, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "alice"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	// Two days later, p[1] rolls back.
	p[1].Now = func() time.Time { return time.Now().Add(48 * time.Hour) }
	target, err := func() (string, error) {
		if _, err := p[1].History(ctx, "www", 10); err != nil {
			return "", err
		}
		return p[1].RollbackTarget(ctx, "www")
	}()
	if err != nil || target != "v2" {
		t.Fatalf("a rollback from v3 in a store two days behind goes to %q (%v), not v2", target, err)
	}
}

// V17. Catch-up records the final record of a deploy it knew as running
// through the SharedStore, whose SaveDeploy also writes the deploy's
// record into the bucket's lock while the lock is the deploy's: a read
// (history, status, rollback, the watch) then tries a write to the shared
// lock, is refused as fenced when another process runs it (its end was
// recorded but the lock not yet freed: the bucket failed at that write),
// and the whole catch-up stops there, every time, until the lock is freed:
// the audit entries after it are never read.
func TestReviewCatchUpWritesNothingToTheLock(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	started := time.Now().Add(-time.Minute)
	d := releases.Deploy{ID: releases.NewDeployID(started), Site: "www", Kind: releases.KindPromote, Actor: "ci", To: "v1",
		Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: started}
	runner := releases.Lock{Site: "www", Holder: "ci", Reason: "promote v1", DeployID: d.ID, Since: started, Host: "host-a", PID: 100, Process: "proc-a", Heartbeat: time.Now()}
	if err := p[0].Store.StartDeploy(ctx, d, runner); err != nil {
		t.Fatal(err)
	}
	if err := p[1].Store.(*releases.SharedStore).ImportRunning(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	// proc-a recorded the end and mirrored it; freeing the lock failed.
	final := d
	final.Phase, final.FinishedAt, final.Error = releases.PhaseFailed, time.Now(), "x"
	body, _ := json.Marshal(final)
	if err := e.Bucket.PutHistory(ctx, e.Site, releases.HistoryDeploys+d.ID+".json", body, false); err != nil {
		t.Fatal(err)
	}
	if _, err := p[1].PullHistory(ctx, "www"); err != nil {
		t.Fatalf("catching up failed: %v", err)
	}
	if got, err := p[1].Store.Deploy(ctx, "www", d.ID); err != nil || got.Phase != releases.PhaseFailed {
		t.Fatalf("the final record was not taken: %+v %v", got.Phase, err)
	}
}

// V18. R3 again, across a restart: a deploy recorded as ended whose lock
// the bucket did not free then ("deploybot recover frees it") is freed by
// recovery only in the process that ran it. After a restart (a new
// process id; the same host and, in a container, the same pid), recovery
// finds the deploy ended and the lock its own, but FinishDeploy refuses
// to free a lock that names another process: the site stays locked for
// every process, for good, with one replica or on the command line.
func TestReviewALockLeftByAnEndedDeployIsFreedAfterARestart(t *testing.T) {
	e, _ := twoProcesses(t, 0)
	ctx := context.Background()
	var f *flaky
	p := proc(t, e, "host-x", func(c releases.Coordinator) releases.Coordinator { f = &flaky{Coordinator: c}; return f })
	old := time.Now().Add(-time.Hour)
	d := releases.Deploy{ID: releases.NewDeployID(old), Site: "www", Kind: releases.KindPromote, Actor: "ci", To: "v1",
		Strategy: releases.DefaultStrategy, Phase: releases.PhasePending, StartedAt: old}
	// The process before the restart: same host and pid, another id.
	lock := releases.Lock{Site: "www", Holder: "ci", Reason: "promote v1", DeployID: d.ID, Since: old, Host: "host-x", PID: 7, Process: "before-the-restart", Heartbeat: old}
	if err := p.Store.StartDeploy(ctx, d, lock); err != nil {
		t.Fatal(err)
	}
	d.Phase, d.FinishedAt, d.Error = releases.PhaseFailed, time.Now(), "x"
	f.down.Store(true)
	// Its end: recorded locally, the bucket's lock not freed.
	if err := p.Store.(*releases.SharedStore).Store.FinishDeploy(ctx, d, nil); err != nil {
		t.Fatal(err)
	}
	f.down.Store(false)
	if _, err := p.RecoverSite(ctx, "www", nil); err != nil {
		t.Logf("recover: %v", err)
	}
	if l, _ := p.Store.Lock(ctx, "www"); l != nil {
		t.Fatalf("recovery after the restart left the lock of ended deploy %s: %+v", d.ID, l)
	}
}

// stuckOnce leaves the first write after it is armed unanswered, as a
// connection whose peer stopped answering does, until the caller's
// context ends (or the test does); later writes go through.
type stuckOnce struct {
	releases.Coordinator
	armed atomic.Bool
	hit   chan struct{}
	gone  chan struct{}
}

func (s *stuckOnce) PutState(ctx context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	if s.armed.CompareAndSwap(true, false) {
		close(s.hit)
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-s.gone:
			return "", errors.New("connection reset")
		}
	}
	return s.Coordinator.PutState(ctx, site, key, body, etag)
}

// V19. The heartbeat's write runs on context.WithoutCancel, with no
// deadline (the SDK's client has none either): one write that S3 never
// answers (a stuck connection) stops the heartbeat for good. The other
// replicas then take the deploy over 20 s later, while the runner, which
// learns of a takeover between phases from its heartbeat, keeps acting
// until its current step ends (a propagation wait: up to the deploy's
// 30-minute timeout), and the beat goroutine is never let go.
func TestReviewAStuckHeartbeatWriteDoesNotHideATakeover(t *testing.T) {
	e, _ := twoProcesses(t, 4*time.Second)
	ctx := context.Background()
	stuck := &stuckOnce{hit: make(chan struct{}), gone: make(chan struct{})}
	t.Cleanup(func() { close(stuck.gone) })
	p := proc(t, e, "host-s", func(c releases.Coordinator) releases.Coordinator { stuck.Coordinator = c; return stuck })
	p.Heartbeat = 100 * time.Millisecond
	var takenAt time.Time
	_, err := p.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "ci"}, func(ev releases.Event) {
		if ev.Type == releases.EventPhaseStarted && ev.Phase == cloud.PhasePropagate {
			stuck.armed.Store(true) // the next heartbeat's write gets no answer
			select {
			case <-stuck.hit:
			case <-time.After(3 * time.Second):
				t.Error("no heartbeat write")
			}
			takeOverLock(t, ctx, &releases.SharedStore{State: e.Bucket}, e.Site, ev.Deploy.ID)
			takenAt = time.Now()
		}
	})
	if !errors.Is(err, releases.ErrFenced) {
		t.Fatalf("want a handed-over refusal, got %v", err)
	}
	if late := time.Since(takenAt); late > 2*time.Second {
		t.Fatalf("the runner went on for %s after it was taken over (its heartbeat was stuck on one write)", late.Round(100*time.Millisecond))
	}
}
