package main_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/slackfake"
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
	// 50 promotes at once: 16 command lines, 34 API calls over both
	// replicas.
	for i := range 16 {
		cmd := exec.Command(w.bin, "promote", "v1")
		cmd.Env = w.env
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go_
			out, err := cmd.CombinedOutput()
			// A promote that starts after the winner ended finds v1
			// live: it succeeds, having run nothing.
			ran := err == nil && !strings.Contains(string(out), "is already live")
			record(answer{fmt.Sprintf("cli-%d", i), ran, string(out)})
		}()
	}
	for i := range 34 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go_
			out, err := clients[i%2].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "ci"}, nil)
			text := ""
			switch {
			case err != nil:
				text = err.Error()
			case out.AlreadyLive:
				text = "already live"
			}
			record(answer{fmt.Sprintf("replica%d", i%2), err == nil && !out.AlreadyLive, text})
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

// serveAs starts a replica that names its machine host in the locks of
// the deploys it runs (another pod: judged by its heartbeats, not its pid).
func (w *world) serveAs(host, path, addr string) *serveProc {
	w.t.Helper()
	saved := w.env
	w.env = append(append([]string(nil), saved...), "DEPLOYBOT_HOST="+host)
	defer func() { w.env = saved }()
	return w.serveAt(path, addr)
}

// kill -9 of the replica running a deploy: the other replica sees the
// running deploy while it runs (from the lock), and once the dead one's
// heartbeats are missed (20 s) it takes the deploy over and finishes it,
// within half a minute of the kill; nothing is left locked.
func TestKillNineOfTheReplicaRunningADeploy(t *testing.T) {
	w := start(t, "6s", "200ms")
	for _, v := range []string{"v1", "v2"} {
		w.must("publish", "--version", v, w.siteDir(v))
	}
	addrs := []string{freeAddr(t), freeAddr(t)}
	var procs []*serveProc
	var clients []*server.Client
	for i, addr := range addrs {
		procs = append(procs, w.serveAs(fmt.Sprintf("pod-%d", i), w.replicaConfig(fmt.Sprintf("replica%d", i), addr, ""), addr))
		clients = append(clients, &server.Client{URL: "http://" + addr, Token: "tok"})
	}
	ctx := context.Background()
	go func() {
		_, _ = clients[0].Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "ci"}, nil)
	}()

	// The other replica, which does not run it, sees it running.
	var id string
	waitFor(t, 20*time.Second, "the other replica to see the deploy propagating", func() bool {
		st, err := clients[1].Status(ctx, "www")
		if err != nil || st.Deploy == nil || st.Deploy.Phase != releases.Phase("propagate") {
			return false
		}
		id = st.Deploy.ID
		return true
	})
	if err := procs[0].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now()
	var st *releases.Status
	waitFor(t, 90*time.Second, "the other replica to finish the deploy", func() bool {
		var err error
		st, err = clients[1].Status(ctx, "www")
		return err == nil && st.Lock == nil && st.LastDeploy != nil && st.LastDeploy.ID == id && st.LastDeploy.Phase.Final()
	})
	t.Logf("deploy %s finished by the other replica %.1fs after the kill", id, time.Since(killed).Seconds())
	if st.LastDeploy.Phase != releases.PhaseDone || st.Live == nil || *st.Live != "v2" {
		t.Fatalf("after the takeover: %+v (last %+v)", st, st.LastDeploy)
	}
	w.serves("v2")
	if !strings.Contains(procs[1].logs.String(), "resuming interrupted deploy") {
		t.Fatalf("the other replica's log does not say it resumed the deploy:\n%s", procs[1].logs.String())
	}
}

// waitFor polls cond every 100 ms until it holds, or fails the test
// after limit saying what it waited for.
func waitFor(t *testing.T, limit time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(limit)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", limit, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// The scheduled prune runs once per planned time however many replicas
// are up: with two, one prunes; after kill -9 of the replica holding the
// site's lease, the next planned run still happens, once, in the other.
func TestTheScheduledPruneRunsOnceWithReplicasAndAfterAKill(t *testing.T) {
	w := start(t, "100ms", "100ms")
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	retention := "    retention: {keep: 5, keep_deployed: 1, min_age: 1h, schedule: \"* * * * *\"}\n"
	addrs := []string{freeAddr(t), freeAddr(t)}
	var procs []*serveProc
	var clients []*server.Client
	for i, addr := range addrs {
		procs = append(procs, w.serveAs(fmt.Sprintf("pod-%d", i), w.replicaConfig(fmt.Sprintf("replica%d", i), addr, retention), addr))
		clients = append(clients, &server.Client{URL: "http://" + addr, Token: "tok"})
	}
	ctx := context.Background()
	// Scheduled runs, as the bucket's history has them (either replica's
	// history answers from it), one per minute they ran in.
	runs := func(c *server.Client) map[string]int {
		t.Helper()
		h, err := c.History(ctx, "www", 500)
		if err != nil {
			t.Fatal(err)
		}
		out := map[string]int{}
		for _, e := range h {
			if strings.HasPrefix(e.Action, "prune") && e.Door == releases.DoorSchedule {
				out[e.Time.UTC().Format("2006-01-02T15:04")]++
			}
		}
		return out
	}
	holder := func() int {
		for i, addr := range addrs {
			body := metricsOf(t, addr)
			if strings.Contains(body, `deploybot_site_lease_held{site="www"} 1`) {
				return i
			}
		}
		return -1
	}

	var first map[string]int
	waitFor(t, 75*time.Second, "a scheduled prune with both replicas up", func() bool {
		first = runs(clients[0])
		return len(first) > 0
	})
	for minute, n := range first {
		if n != 1 {
			t.Fatalf("the prune planned for %s ran %d times with two replicas up", minute, n)
		}
	}
	h := holder()
	if h < 0 {
		t.Fatal("no replica holds the site lease")
	}
	if err := procs[h].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killed := time.Now().UTC().Format("2006-01-02T15:04")
	other := clients[1-h]
	var after map[string]int
	waitFor(t, 150*time.Second, "a scheduled prune after the lease holder was killed", func() bool {
		after = runs(other)
		for minute := range after {
			if minute > killed {
				return true
			}
		}
		return false
	})
	for minute, n := range after {
		if n != 1 {
			t.Fatalf("the prune planned for %s ran %d times (history %v)", minute, n, after)
		}
	}
}

// metricsOf reads a serve's /metrics.
func metricsOf(t *testing.T, addr string) string {
	t.Helper()
	resp, err := http.Get("http://" + addr + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// Two replicas on one Slack app: Slack hands each envelope to one of the
// app's connections, so each replica answers some of the commands; a
// release's notice is posted once, whichever replica finds it; promotes
// typed at once through both flip the site once.
func TestTwoReplicasOnOneSlackApp(t *testing.T) {
	w := start(t, "2s", "100ms")
	fake := slackfake.New(t)
	fake.Mu.Lock()
	fake.Channels["CREL"] = slackfake.Channel{ID: "CREL", Name: "releases"}
	fake.Mu.Unlock()
	slackCfg := fmt.Sprintf("slack: {app_token: xapp-1-e2e, bot_token: xoxb-e2e, command: /site, api_url: %q}\nsites:\n", fake.APIURL())
	var addrs []string
	for i := range 2 {
		addr := freeAddr(t)
		addrs = append(addrs, addr)
		path := w.replicaConfig(fmt.Sprintf("replica%d", i), addr, "    channel: CREL\n    deployers: [UALICE]\n")
		w.write(filepath.Base(path), strings.Replace(readFile(t, path), "sites:\n", slackCfg, 1))
		w.serveAs(fmt.Sprintf("pod-%d", i), path, addr)
	}
	fake.WaitFor("both replicas connected", func() bool { return fake.Live() == 2 })

	// Found in the bucket by both replicas' reconcile (every second here).
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	notices := func() int {
		posts, _, _ := fake.Snapshot()
		n := 0
		for _, p := range posts {
			if p.Channel == "CREL" && strings.Contains(p.Text, "New release of *www*: `v1`") {
				n++
			}
		}
		return n
	}
	fake.WaitFor("the release notice", func() bool { return notices() > 0 })
	// Two more reconcile rounds in each replica: each has found v1 by then.
	rounds := regexp.MustCompile(`deploybot_reconcile_runs_total\{result="ok",site="www"\} (\d+)`)
	roundsOf := func(addr string) int {
		m := rounds.FindStringSubmatch(metricsOf(t, addr))
		if m == nil {
			return 0
		}
		k, _ := strconv.Atoi(m[1])
		return k
	}
	was := []int{roundsOf(addrs[0]), roundsOf(addrs[1])}
	waitFor(t, 30*time.Second, "two more reconcile rounds in each replica", func() bool {
		return roundsOf(addrs[0]) >= was[0]+2 && roundsOf(addrs[1]) >= was[1]+2
	})
	if n := notices(); n != 1 {
		t.Fatalf("%d notices of v1, want 1", n)
	}

	// Every envelope goes to one connection, in turn: both replicas take
	// some of these, and the site flips once.
	const n = 10
	var wg sync.WaitGroup
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fake.Slash(fmt.Sprintf("both-%d", i), "UALICE", "promote v1 from both")
		}()
	}
	wg.Wait()
	live := func(posts []slackfake.Post) int {
		k := 0
		for _, p := range posts {
			if strings.Contains(p.Text, "`v1` is live on *www*") {
				k++
			}
		}
		return k
	}
	refused := func(eph []slackfake.Post) int {
		k := 0
		for _, p := range eph {
			if strings.Contains(p.Text, "busy") || strings.Contains(p.Text, "already live") {
				k++
			}
		}
		return k
	}
	fake.WaitFor("an answer to every command", func() bool {
		posts, _, eph := fake.Snapshot()
		return live(posts)+refused(eph) >= n
	})
	posts, _, eph := fake.Snapshot()
	if live(posts) != 1 || refused(eph) != n-1 {
		t.Fatalf("%d deploys went live and %d commands were refused, want 1 and %d\nposts: %s\nephemeral: %s", live(posts), refused(eph), n-1, slackfake.Dump(posts), slackfake.Dump(eph))
	}
	if st := w.status(); st["live"] != "v1" || st["lock"] != nil {
		t.Fatalf("status: %v", st)
	}
}
