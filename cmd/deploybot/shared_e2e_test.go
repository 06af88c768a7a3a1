package main_test

import (
	"context"
	"fmt"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

// replicaConfig writes the configuration of one more serve on the same
// bucket with its own store (another pod, another machine) and returns
// its path; extra is added to the site.
func (w *world) replicaConfig(name, listen, extra string) string {
	return w.write(name+".yaml", fmt.Sprintf(`store: {path: %q}
aws: {endpoint: %q}
http: {listen: %q, api_token: "${TEST_API_TOKEN}"}
deploy: {poll_interval: 50ms, timeout: 1m}
reconcile: {interval: 1s}
sites:
  - name: www
    bucket: example-site
    prefix: www/
    distribution_id: E2ETEST
%s`, filepath.Join(w.dir, name, "deploybot.db"), w.api, listen, extra))
}

// serveAt starts serve with the configuration at path.
func (w *world) serveAt(path, addr string) *serveProc {
	w.t.Helper()
	saved := w.env
	w.env = append(append([]string(nil), saved...), "DEPLOYBOT_CONFIG="+path, "TEST_API_TOKEN=tok")
	defer func() { w.env = saved }()
	return w.serve(addr)
}

// Two serve replicas and the command line without --server, each with
// its own store, on one bucket: a freeze set through one replica holds
// the command line and the other replica; promotes from all three at once
// flip the site once, every other refused naming the one that runs.
func TestTwoServesAndTheCommandLineShareOneTruth(t *testing.T) {
	w := start(t, "2s", "100ms")
	for _, v := range []string{"v1", "v2"} {
		w.must("publish", "--version", v, w.siteDir(v))
	}
	addrs := []string{freeAddr(t), freeAddr(t)}
	var clients []*server.Client
	for i, addr := range addrs {
		w.serveAt(w.replicaConfig(fmt.Sprintf("replica%d", i), addr, ""), addr)
		clients = append(clients, &server.Client{URL: "http://" + addr, Token: "tok"})
	}
	ctx := context.Background()

	if _, err := clients[0].Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "2h", Reason: "launch week", Actor: "ops"}); err != nil {
		t.Fatal(err)
	}
	w.expect(1, "frozen by token:api until", "promote", "v1")
	if _, err := clients[1].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "ci"}, nil); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "launch week") {
		t.Fatalf("the other replica promoted in the freeze: %v", err)
	}
	// The command line's caller lifts it as an approver (a person the
	// site's deployers name).
	w.must("unfreeze")

	type answer struct {
		door string
		ran  bool
		text string
	}
	var mu sync.Mutex
	var answers []answer
	record := func(a answer) { mu.Lock(); answers = append(answers, a); mu.Unlock() }
	go_ := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 8 {
		cmd := exec.Command(w.bin, "promote", "v1")
		cmd.Env = w.env
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go_
			out, err := cmd.CombinedOutput()
			record(answer{fmt.Sprintf("cli-%d", i), err == nil, string(out)})
		}()
	}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go_
			_, err := clients[i%2].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "ci"}, nil)
			text := ""
			if err != nil {
				text = err.Error()
			}
			record(answer{fmt.Sprintf("replica%d", i%2), err == nil, text})
		}()
	}
	close(go_)
	wg.Wait()
	st := w.status()
	last, _ := st["last_deploy"].(map[string]any)
	ran := 0
	for _, a := range answers {
		if a.ran {
			ran++
		}
	}
	if ran != 1 || st["live"] != "v1" || st["lock"] != nil {
		t.Fatalf("%d of %d promotes ran (want 1); status %v; answers %+v", ran, len(answers), st, answers)
	}
	id := ""
	if last != nil {
		id, _ = last["id"].(string)
	}
	for _, a := range answers {
		if a.ran {
			continue
		}
		// Refused while it ran (busy, naming it), or after it ended: v1
		// is live already.
		if !(strings.Contains(a.text, "busy") && (id == "" || strings.Contains(a.text, id))) && !strings.Contains(a.text, "already live") {
			t.Errorf("%s: not refused naming the running deploy %s: %s", a.door, id, a.text)
		}
	}
	w.serves("v1")
}

// A promote asked for on the command line (a CI runner, its own store) is
// approved through a serve replica's API, which runs it.
func TestApprovalAskedOnTheCommandLineIsApprovedByAReplica(t *testing.T) {
	w := start(t, "100ms", "100ms")
	w.write("deploybot.yaml", strings.Replace(readFile(t, w.config), "    distribution_id: E2ETEST\n",
		"    distribution_id: E2ETEST\n    approval: {required: 1, timeout: 10m}\n", 1))
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	addr := freeAddr(t)
	w.serveAt(w.replicaConfig("replica", addr, "    approval: {required: 1, timeout: 10m}\n"), addr)
	r := w.runAs("alice", "promote", "--no-wait", "v1")
	m := requestRE.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("promote --no-wait: %d %q %q", r.code, r.stdout, r.stderr)
	}
	c := &server.Client{URL: "http://" + addr, Token: "tok"}
	out, err := c.Approve(context.Background(), "www", m[1], "bob", nil)
	if err != nil || out.Deploy == nil || out.Deploy.ID != m[1] || out.Deploy.Actor != callerARN("alice") {
		t.Fatalf("the approval through the replica: %+v %v", out, err)
	}
	w.serves("v1")
	// The command line, whose store never saw the deploy, reads the
	// site as the replica left it.
	if st := w.status(); st["live"] != "v1" || st["lock"] != nil {
		t.Fatalf("status from the command line: %v", st)
	}
}
