package releases_test

import (
	"context"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// readerBetween is the shared state with a reader that runs right after
// the first write of the lock object: another process sharing the local
// store (status, recover) that reads the bucket between a deploy taking
// the lock there and recording itself here.
type readerBetween struct {
	*memState
	read func()
	done atomic.Bool
}

func (r *readerBetween) PutState(ctx context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	tag, err := r.memState.PutState(ctx, site, key, body, etag)
	if err == nil && key == releases.StateLock && strings.Contains(string(body), `"deploy"`) && r.done.CompareAndSwap(false, true) {
		r.read()
	}
	return tag, err
}

// A reader that imports the running deploy in the moment between its
// lock write and its local record does not fail the deploy: that copy
// is the deploy's own start (it failed once in CI with "deploy … exists"
// while the test polled status).
func TestAReaderBetweenLockAndRecordDoesNotFailTheDeploy(t *testing.T) {
	h := newHarness(t)
	state := &readerBetween{memState: &memState{}}
	shared := releases.NewSharedStore(h.db, state, h.svc.Sites)
	reader := releases.NewSharedStore(h.db, state, h.svc.Sites)
	state.read = func() {
		if err := reader.ImportRunning(context.Background(), "www"); err != nil {
			t.Errorf("the reader: %v", err)
		}
	}
	h.svc.Store = shared
	h.publish("v1")
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if !state.done.Load() {
		t.Fatal("the reader never ran: the test tests nothing")
	}
	got, err := h.db.Deploy(context.Background(), "www", out.Deploy.ID)
	if err != nil || got.Phase != releases.PhaseDone {
		t.Fatalf("the deploy as recorded: %+v, %v", got, err)
	}
}

// The card link of a running deploy is shared through the bucket: a
// replica that imports the running deploy gets it; a link for a deploy
// that does not hold the lock is not written; a later deploy does not get
// an earlier one's; and a links object holding a link deploybot would not
// write is not imported.
func TestTheCardLinkTravelsWithTheRunningDeploy(t *testing.T) {
	ctx := context.Background()
	h := newHarness(t)
	state := &memState{}
	runner := releases.NewSharedStore(h.db, state, h.svc.Sites)
	other := newHarness(t)
	replica := releases.NewSharedStore(other.db, state, other.svc.Sites)
	site := h.svc.Sites[0]
	start := func(id string) releases.Deploy {
		d := releases.Deploy{ID: id, Site: "www", Kind: releases.KindPromote, To: "v1", Phase: releases.PhasePending}
		if err := runner.StartDeploy(ctx, d, releases.Lock{Site: "www", Holder: "alice", DeployID: d.ID}); err != nil {
			t.Fatal(err)
		}
		return d
	}
	card := func(id string) string {
		links, err := other.db.DeployLinks(ctx, "www", id)
		if err != nil {
			t.Fatal(err)
		}
		return links[releases.DeployLinkCard]
	}

	d := start("20261207T120000Z-aaaa")
	link := "C0DEPLOYS 1700000000.000001 1700000000.000001"
	if err := runner.SetDeployLink(ctx, "www", d.ID, releases.DeployLinkCard, link); err != nil {
		t.Fatal(err)
	}
	// Another deploy's link, and a link that is not shared, stay here.
	if err := runner.SetDeployLink(ctx, "www", "20261207T110000Z-bbbb", releases.DeployLinkCard, "C0DEPLOYS 1.000002 1.000002"); err != nil {
		t.Fatal(err)
	}
	if err := runner.SetDeployLink(ctx, "www", d.ID, "slack", "https://example.slack.com/archives/C0DEPLOYS/p1"); err != nil {
		t.Fatal(err)
	}
	if err := replica.ImportRunning(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if got := card(d.ID); got != link {
		t.Fatalf("the replica's card link %q", got)
	}
	if links, _ := other.db.DeployLinks(ctx, "www", d.ID); len(links) != 1 {
		t.Fatalf("the replica got links that are not shared: %v", links)
	}

	d.Phase = releases.PhaseDone
	if err := runner.FinishDeploy(ctx, d, &releases.Live{Version: "v1", DeployID: d.ID}); err != nil {
		t.Fatal(err)
	}
	d2 := start("20261207T130000Z-cccc")
	if err := replica.ImportRunning(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	if got := card(d2.ID); got != "" {
		t.Fatalf("a later deploy got the card %q", got)
	}

	// Someone writes a links object of their own for the running deploy:
	// a link with mrkdwn in it, a link name deploybot does not share, a
	// field it does not write.
	for _, forged := range []string{
		`{"deploy_id":"` + d2.ID + `","links":{"card":"<https://evil|click> 1 2"}}`,
		`{"deploy_id":"` + d2.ID + `","links":{"card":"C0DEPLOYS 1.000001 1.000001","other":"x"}}`,
		`{"deploy_id":"` + d2.ID + `","links":{"card":"C0DEPLOYS 1.000001 1.000001"},"extra":1}`,
	} {
		_, tag, _ := state.GetState(ctx, site, releases.StateLinks)
		if _, err := state.PutState(ctx, site, releases.StateLinks, []byte(forged), tag); err != nil {
			t.Fatal(err)
		}
		if err := replica.ImportRunning(ctx, "www"); err != nil {
			t.Fatalf("a bad links object stopped the import: %v", err)
		}
		if got := card(d2.ID); got != "" {
			t.Fatalf("a forged link was imported from %s: %q", forged, got)
		}
	}
}
