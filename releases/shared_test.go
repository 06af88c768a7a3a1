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
