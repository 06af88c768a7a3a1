package cloud_test

// The review's findings about the shared history, lease, notices and
// schedule: objects of the bucket that are outside input (from the
// future, strange, too large) and what a read of them must survive. See
// shared_review_test.go.

import (
	"context"
	"fmt"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

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
