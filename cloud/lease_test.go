package cloud_test

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

// sharedOf is process i's SharedStore, named as its own process.
func sharedOf(p [2]*releases.Service, i int) *releases.SharedStore {
	sh := p[i].Store.(*releases.SharedStore)
	sh.Process = fmt.Sprintf("replica%d", i)
	return sh
}

// One replica holds a site's lease while it renews it; the other is told
// who holds it; when the holder stops renewing, the other takes it once
// it lapses, with a new epoch, and the old holder knows by its own clock
// that it no longer holds it. A holder that gives it up is replaced at
// once.
func TestTheSiteLeaseHasOneHolderAndPassesOnWhenItLapses(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	a, b := sharedOf(p, 0), sharedOf(p, 1)
	now := time.Now()
	const ttl = time.Minute

	la, err := a.HoldLease(ctx, "www", now, ttl)
	if err != nil || !la.Mine || la.Epoch != 1 {
		t.Fatalf("first take: %+v %v", la, err)
	}
	lb, err := b.HoldLease(ctx, "www", now.Add(time.Second), ttl)
	if err != nil || lb.Mine || lb.Holder != "replica0" {
		t.Fatalf("the other replica while it is held: %+v %v", lb, err)
	}
	// Renewed before it lapses: still a's, same epoch.
	if la, err = a.HoldLease(ctx, "www", now.Add(20*time.Second), ttl); err != nil || !la.Mine || la.Epoch != 1 {
		t.Fatalf("renewal: %+v %v", la, err)
	}
	if !a.HoldsLease("www", now.Add(30*time.Second)) || b.HoldsLease("www", now.Add(30*time.Second)) {
		t.Fatal("HoldsLease disagrees with the holder")
	}
	// a stops renewing (killed): b takes it after it lapses, not before.
	if lb, _ = b.HoldLease(ctx, "www", now.Add(79*time.Second), ttl); lb.Mine {
		t.Fatal("taken before it lapsed")
	}
	if lb, err = b.HoldLease(ctx, "www", now.Add(81*time.Second), ttl); err != nil || !lb.Mine || lb.Epoch != 2 {
		t.Fatalf("take after the lapse: %+v %v", lb, err)
	}
	if a.HoldsLease("www", now.Add(81*time.Second)) {
		t.Fatal("the old holder still believes it holds the lease after it lapsed")
	}
	// a comes back and renews from what it last wrote: refused (the
	// ETag moved on), told b holds it.
	if la, err = a.HoldLease(ctx, "www", now.Add(82*time.Second), ttl); err != nil || la.Mine || la.Holder != "replica1" {
		t.Fatalf("the old holder's late renewal: %+v %v", la, err)
	}
	// b gives it up; a takes it at its next renewal, before any expiry.
	if err := b.ReleaseLease(ctx, "www", now.Add(83*time.Second)); err != nil {
		t.Fatal(err)
	}
	if la, err = a.HoldLease(ctx, "www", now.Add(84*time.Second), ttl); err != nil || !la.Mine || la.Epoch != 3 {
		t.Fatalf("take after a release: %+v %v", la, err)
	}
}

// Replicas racing for a free lease: exactly one holds it.
func TestReplicasRacingForTheSiteLeaseGetOneHolder(t *testing.T) {
	_, p := twoProcesses(t, 0)
	ctx := context.Background()
	stores := []*releases.SharedStore{sharedOf(p, 0), sharedOf(p, 1)}
	now := time.Now()
	var wg sync.WaitGroup
	var mu sync.Mutex
	holders := map[string]bool{}
	for i := range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			l, err := stores[i].HoldLease(ctx, "www", now, time.Minute)
			if err != nil {
				t.Error(err)
				return
			}
			mu.Lock()
			defer mu.Unlock()
			if l.Mine {
				holders[l.Holder] = true
			}
		}()
	}
	wg.Wait()
	if len(holders) != 1 || stores[0].HoldsLease("www", now) == stores[1].HoldsLease("www", now) {
		t.Fatalf("holders: %v", holders)
	}
}

// A release's notice is claimed by one replica, however many ask; the
// link it records is what every replica's refresh reads; a name
// published again (a new manifest) is a new release with its own notice.
func TestReleaseNoticesAreClaimedOnceAndShared(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	for i := range p {
		if _, err := p[i].Sync(ctx, "www"); err != nil {
			t.Fatal(err)
		}
	}
	var wg sync.WaitGroup
	var mu sync.Mutex
	won := 0
	for i := range 10 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			mine, err := p[i%2].ClaimReleaseLink(ctx, "www", "v2", "slack")
			if err != nil {
				t.Error(err)
			}
			if mine {
				mu.Lock()
				won++
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if won != 1 {
		t.Fatalf("%d claims won, want 1", won)
	}
	// The claim is not a link: no refresh tries to update a post that
	// is not there yet.
	if links, err := p[1].ReleaseLinks(ctx, "www"); err != nil || links["v2"]["slack"] != "" {
		t.Fatalf("links while the post is under way: %v %v", links, err)
	}
	if err := p[0].SetReleaseLink(ctx, "www", "v2", "slack", "C1 1700000000.000100 older"); err != nil {
		t.Fatal(err)
	}
	if links, err := p[1].ReleaseLinks(ctx, "www"); err != nil || links["v2"]["slack"] != "C1 1700000000.000100 older" {
		t.Fatalf("the other replica's links: %v %v", links, err)
	}
	if mine, err := p[1].ClaimReleaseLink(ctx, "www", "v2", "slack"); err != nil || mine {
		t.Fatalf("a posted notice claimed again: %v %v", mine, err)
	}

	// v2 pruned (its folder, then its manifest, as retention deletes
	// them) and published again: a new release, a new notice.
	if _, _, err := e.Bucket.DeleteFolder(ctx, e.Site, "v2"); err != nil {
		t.Fatal(err)
	}
	if _, err := e.S3.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v2"))}); err != nil {
		t.Fatal(err)
	}
	for i := range p {
		if err := p[i].Store.MarkPruned(ctx, "www", "v2", time.Now()); err != nil {
			t.Fatal(err)
		}
	}
	e.Publish("v2", time.Now().UTC().Truncate(time.Second), map[string]string{"index.html": "v2 again"})
	for i := range p {
		if _, err := p[i].Sync(ctx, "www"); err != nil {
			t.Fatal(err)
		}
	}
	if mine, err := p[1].ClaimReleaseLink(ctx, "www", "v2", "slack"); err != nil || !mine {
		t.Fatalf("the re-published release's notice: %v %v", mine, err)
	}
}

// A replica that ran none of a site's deploys walks back through the
// ones another ran: its rollback, history, status and versions catch up
// with the bucket's history first.
func TestAReplicaCatchesUpWithDeploysAnotherRan(t *testing.T) {
	e, p := twoProcesses(t, 0)
	ctx := context.Background()
	for _, v := range []string{"v1", "v2"} {
		if _, err := p[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "alice"}, nil); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := p[0].PushHistory(ctx); err != nil {
		t.Fatal(err)
	}
	// Published through the other replica's hook: this one's store has
	// not heard of it.
	e.Publish("v4", time.Now().UTC().Truncate(time.Second), map[string]string{"index.html": "v4"})
	if _, err := p[0].Sync(ctx, "www"); err != nil {
		t.Fatal(err)
	}

	st, err := p[1].Status(ctx, "www")
	if err != nil || st.LastDeploy == nil || st.LastDeploy.To != "v2" || st.Deploy != nil {
		t.Fatalf("the other replica's status: %+v %v", st, err)
	}
	hist, err := p[1].History(ctx, "www", 10)
	if err != nil {
		t.Fatal(err)
	}
	promotes := 0
	for _, h := range hist {
		if h.Action == "promote" && h.Result == "ok" {
			promotes++
		}
	}
	if promotes != 2 {
		t.Fatalf("the other replica's history has %d promotes, want 2: %+v", promotes, hist)
	}
	vs, err := p[1].Versions(ctx, "www")
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, v := range vs {
		found = found || v.Version == "v4"
	}
	if !found {
		t.Fatalf("the other replica's versions lack v4: %+v", vs)
	}
	out, err := p[1].Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "bob"}, nil)
	if err != nil || out.Version != "v1" {
		t.Fatalf("rollback in the replica that ran nothing: %+v %v", out, err)
	}
}
