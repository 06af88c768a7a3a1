package server_test

import (
	"context"
	"io"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// Under AWS faults (10% 5xx, 10% throttling) deploys finish and the
// history waiting for the bucket drains to nothing; every finished deploy
// is then in the bucket.
func TestHistoryMirrorDrainsUnderFaults(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	e.srv.MirrorInterval = 20 * time.Millisecond
	e.start()
	e.flow()
	ctx := context.Background()
	c := e.client()
	e.AWS.SetFaults(localaws.Faults{ErrorRate: 0.1, ThrottleRate: 0.1, MaxStreak: 3})
	for i := range 6 {
		v := []string{"v1", "v2"}[i%2]
		var err error
		for attempt := 0; attempt < 5; attempt++ {
			// A deploy refused before it starts (the fault hit a read) is
			// asked again, as a person would.
			if _, err = c.Promote(ctx, releases.PromoteRequest{Site: "www", Version: v, Actor: "ci", Back: v == "v1"}, nil); err == nil {
				break
			}
		}
		if err != nil {
			t.Fatalf("promote %s under faults: %v", v, err)
		}
	}
	e.eventually("the history to drain", func() bool { n, _ := e.Service.HistoryPending(ctx); return n == 0 })
	e.AWS.SetFaults(localaws.Faults{})
	ds, err := e.Service.Deploys(ctx, "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	keys, err := e.Bucket.ListHistory(ctx, e.Site, releases.HistoryDeploys, "")
	if err != nil {
		t.Fatal(err)
	}
	finished := 0
	for _, d := range ds {
		if d.Phase.Final() {
			finished++
		}
	}
	if finished == 0 || len(keys) != finished {
		t.Fatalf("%d finished deploys, %d in the bucket", finished, len(keys))
	}
	e.eventually("the pending gauge to read 0", func() bool { return metric(t, e.url, "deploybot_history_mirror_pending") == "0" })
}

// metric reads one unlabelled series from /metrics ("" when absent).
func metric(t *testing.T, base, name string) string {
	t.Helper()
	resp, err := http.Get(base + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			return v
		}
	}
	return ""
}
