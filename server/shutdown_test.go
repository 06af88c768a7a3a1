package server_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
	"github.com/deploybot/deploybot/store"
)

func TestGracefulShutdownMidFlipResumesOnRestart(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	ctx := context.Background()
	out := make(chan error, 1)
	go func() {
		_, err := e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice"}, nil)
		out <- err
	}()
	e.eventually("the deploy to wait for propagation", func() bool {
		ds, _ := e.Store.Deploys(ctx, "www", 1)
		return len(ds) == 1 && ds[0].Phase == cloud.PhasePropagate
	})
	began := time.Now()
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("shutdown took %s", took)
	}
	if err := <-out; err == nil || !strings.Contains(err.Error(), "resumes") {
		t.Fatalf("client saw %v", err)
	}
	ds, _ := e.Store.Deploys(ctx, "www", 1)
	if ds[0].Phase != cloud.PhasePropagate {
		t.Fatalf("after shutdown the deploy is in %s, want propagate (resumable)", ds[0].Phase)
	}
	if l, _ := e.Store.Lock(ctx, "www"); l == nil {
		t.Fatal("the interrupted deploy lost its lock")
	}
	// Restart (a new process would reopen the file; the record is the same).
	e.Store.Close()
	e.open()
	e.start()
	e.flow()
	e.eventually("the resumed deploy to finish", func() bool {
		d, _ := e.Store.Deploy(ctx, "www", ds[0].ID)
		return d.Phase == releases.PhaseDone
	})
	if l, _ := e.Store.Lock(ctx, "www"); l != nil {
		t.Fatalf("lock after the resumed deploy: %+v", l)
	}
}

func TestReadiness(t *testing.T) {
	e := newEnv(t)
	e.srv.Ready = []server.ReadyCheck{{Name: "slack", Check: func(context.Context) error { return errors.New("not connected to xoxb-secret-workspace") }}}
	e.start()
	getWith := func(path, auth string) answer {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		return e.do(req)
	}
	get := func() answer { return getWith("/readyz", "") }
	e.eventually("the first reconcile", func() bool {
		a := get()
		checks, _ := a.body["checks"].(map[string]any)
		return checks["aws"] == "ok"
	})
	// Anyone sees which check failed, not why: the reasons name
	// buckets, paths and workspaces.
	if a := get(); a.status != 503 || a.body["checks"].(map[string]any)["slack"] != "failed" || strings.Contains(fmt.Sprint(a.body), "not connected") {
		t.Fatalf("readyz with Slack down: %d %v", a.status, a.body)
	}
	if a := getWith("/readyz?verbose", ""); a.status != 401 {
		t.Fatalf("readyz?verbose without the token: %d %v", a.status, a.body)
	}
	if a := getWith("/readyz?verbose", token); a.status != 503 || !strings.Contains(fmt.Sprint(a.body), "not connected to xoxb-secret-workspace") {
		t.Fatalf("readyz?verbose with the token: %d %v", a.status, a.body)
	}
	// Slack down degrades, and says so, but the hook and the API stay
	// served: readiness is about them.
	e.srv.Ready = []server.ReadyCheck{{Name: "slack", Degrades: true, Check: func(context.Context) error { return errors.New("not connected to xoxb-secret-workspace") }}}
	if a := get(); a.status != 200 || a.body["degraded"] != true || a.body["checks"].(map[string]any)["slack"] != "degraded" || strings.Contains(fmt.Sprint(a.body), "not connected") {
		t.Fatalf("readyz with Slack down, degrading: %d %v", a.status, a.body)
	}
	if a := getWith("/readyz?verbose", token); a.status != 200 || !strings.Contains(fmt.Sprint(a.body), "degraded: not connected to xoxb-secret-workspace") {
		t.Fatalf("readyz?verbose, degraded: %d %v", a.status, a.body)
	}
	e.srv.Ready = nil
	if a := get(); a.status != 200 || a.body["degraded"] != false {
		t.Fatalf("readyz: %d %v", a.status, a.body)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/healthz", nil)
	if a := e.do(req); a.status != 200 {
		t.Fatalf("healthz %d", a.status)
	}
}

func TestBackupRestoresEverything(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	e.start()
	ctx := context.Background()
	c := e.client()
	e.flow()
	if _, err := c.Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	held := releases.Deploy{ID: "zz-running", Site: "www", To: "v2", Phase: cloud.PhasePropagate}
	if err := e.Store.StartDeploy(ctx, held, releases.Lock{Site: "www", Holder: "bob", DeployID: held.ID}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := c.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := writeFile(path, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	restored, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	rs, _ := restored.Releases(ctx, "www")
	ds, _ := restored.Deploys(ctx, "www", 0)
	lock, _ := restored.Lock(ctx, "www")
	live, _, _ := restored.Live(ctx, "www")
	if len(rs) != 2 || len(ds) != 2 || lock == nil || lock.Holder != "bob" || live.Version != "v1" {
		t.Fatalf("restored: %d releases, %d deploys, lock %+v, live %+v", len(rs), len(ds), lock, live)
	}
}
