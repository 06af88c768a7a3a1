package server_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

// Fifty promotes of one site at once through the API: exactly one runs,
// every other is refused naming it, and nothing is left locked.
func TestFiftyConcurrentPromotes(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	e.start()
	ctx := context.Background()
	var wg sync.WaitGroup
	var mu sync.Mutex
	ran, refused := 0, 0
	var others []error
	start := make(chan struct{})
	for i := 0; i < 50; i++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-start
			v := []string{"v1", "v2"}[i%2]
			out, err := e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: v, Actor: "user" + v}, nil)
			mu.Lock()
			defer mu.Unlock()
			switch {
			case err == nil && out.Deploy != nil:
				ran++
			case err == nil:
				others = append(others, errors.New("answered "+v+" is already live while the first deploy was running"))
			case releases.ErrorCode(err) == releases.ECONFLICT && strings.Contains(err.Error(), "is busy: deploy"):
				refused++
			default:
				others = append(others, err)
			}
		}()
	}
	close(start)
	// CloudFront is held, so the one that runs cannot finish before all
	// the others have been answered; then time may flow.
	e.eventually("49 answers", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return refused+len(others) >= 49
	})
	e.flow()
	wg.Wait()
	if ran != 1 || refused != 49 || len(others) != 0 {
		t.Fatalf("ran %d, refused %d, other outcomes %v", ran, refused, errors.Join(others...))
	}
	if l, _ := e.Store.Lock(ctx, "www"); l != nil {
		t.Fatalf("lock left: %+v", l)
	}
	ds, _ := e.Store.Deploys(ctx, "www", 0)
	if len(ds) != 1 || ds[0].Phase != releases.PhaseDone {
		t.Fatalf("deploys recorded: %+v", ds)
	}
}

// With 20% of every S3 and CloudFront call failing or throttled, deploys
// either finish (the SDK retries, polls tolerate errors) or fail with a
// true record; none is left open or holding the lock, and the store's
// live pointer always matches the distribution.
func TestDeploysUnderFaults(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2", "v3")
	e.start()
	e.flow()
	e.AWS.SetFaults(localaws.Faults{ErrorRate: 0.1, ThrottleRate: 0.1})
	ctx := context.Background()
	done, failed := 0, 0
	refused := 0
	for i, v := range []string{"v1", "v2", "v3", "v1", "v2", "v3", "v1", "v2"} {
		before, _ := e.Store.Deploys(ctx, "www", 0)
		out, err := e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: v, Actor: "chaos"}, nil)
		after, _ := e.Store.Deploys(ctx, "www", 0)
		switch {
		case len(after) == len(before) && err == nil:
			// An earlier promote failed or was refused, so v is live
			// already.
			if out == nil || !out.AlreadyLive {
				t.Fatalf("deploy %d: no error, no deploy record, and not already live: %+v", i, out)
			}
		case len(after) == len(before):
			// Refused before a deploy started (a read failed after the
			// SDK's retries): nothing changed, which is the point.
			refused++
		case err == nil && after[0].Phase == releases.PhaseDone:
			done++
		case err != nil && after[0].Phase == releases.PhaseFailed && after[0].Error != "":
			failed++
		default:
			t.Fatalf("deploy %d to %s: %v, record %+v", i, v, err, after[0])
		}
		if l, _ := e.Store.Lock(ctx, "www"); l != nil {
			t.Fatalf("lock left after deploy %d: %+v", i, l)
		}
	}
	e.AWS.SetFaults(localaws.Faults{})
	live, _, _ := e.Store.Live(ctx, "www")
	if cur, _ := e.CDN.Current(ctx, e.Site); cur.Version != live.Version {
		t.Fatalf("store says %q is live, the distribution serves %q", live.Version, cur.Version)
	}
	t.Logf("under 20%% faults: %d deploys done, %d failed cleanly, %d refused before starting", done, failed, refused)
	if done == 0 {
		t.Fatal("no deploy survived 20% faults; the retries do not work")
	}
}
