package main_test

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/slackfake"
)

// serveConfig rewrites the configuration for serve: listener, token, hook.
func (w *world) serveConfig(listen string) {
	w.write("deploybot.yaml", fmt.Sprintf(`store: {path: %q}
aws: {endpoint: %q}
http: {listen: %q, api_token: "${TEST_API_TOKEN}"}
hook: {secret: "${TEST_HOOK_SECRET}", url: "http://%s/hooks/release"}
deploy: {poll_interval: 50ms, timeout: 1m}
reconcile: {interval: 1s}
sites:
  - name: www
    bucket: example-site
    prefix: www/
    distribution_id: E2ETEST
`, filepath.Join(w.dir, "db", "deploybot.db"), w.api, listen, listen))
	w.env = append(w.env, "TEST_API_TOKEN=tok", "TEST_HOOK_SECRET=hooksecret")
}

func freeAddr(t *testing.T) string {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// syncBuffer is a bytes.Buffer safe for the process's output goroutine
// and the test to share.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}
func (s *syncBuffer) String() string { s.mu.Lock(); defer s.mu.Unlock(); return s.b.String() }

type serveProc struct {
	cmd  *exec.Cmd
	logs *syncBuffer
	done chan error
}

// serve starts serve (with args) and waits until addr answers /readyz.
func (w *world) serve(addr string, args ...string) *serveProc {
	w.t.Helper()
	cmd := exec.Command(w.bin, append([]string{"serve"}, args...)...)
	cmd.Env = w.env
	logs := &syncBuffer{}
	cmd.Stdout, cmd.Stderr = logs, logs
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	p := &serveProc{cmd: cmd, logs: logs, done: make(chan error, 1)}
	go func() { p.done <- cmd.Wait() }()
	w.t.Cleanup(func() { _ = cmd.Process.Kill(); <-p.done })
	deadline := time.Now().Add(15 * time.Second)
	for {
		resp, err := http.Get("http://" + addr + "/readyz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == 200 {
				return p
			}
		}
		select {
		case err := <-p.done:
			p.done <- err
			w.t.Fatalf("serve exited (%v); logs:\n%s", err, logs.String())
		default:
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("serve did not become ready; logs:\n%s", logs.String())
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// stop sends SIGTERM and waits for serve to exit 0.
func (p *serveProc) stop(t *testing.T) {
	t.Helper()
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("serve exited with %v after SIGTERM; logs:\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not exit within 30s of SIGTERM")
	}
}

// In a container http.listen must be 0.0.0.0:8088: $DEPLOYBOT_LISTEN
// (which the image sets) and --listen override the configuration, the
// flag first, and the log says which one chose the address.
func TestServeListenOverride(t *testing.T) {
	w := start(t, "100ms", "100ms")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	w.serveConfig(ln.Addr().String()) // taken: serve fails if it listens there

	fromEnv := freeAddr(t)
	w.env = append(w.env, "DEPLOYBOT_LISTEN="+fromEnv)
	p := w.serve(fromEnv)
	if !strings.Contains(p.logs.String(), `"listen":"`+fromEnv+`","listen_from":"DEPLOYBOT_LISTEN"`) {
		t.Errorf("the log does not say where serve listens and why:\n%s", p.logs.String())
	}
	p.stop(t)

	fromFlag := freeAddr(t)
	p = w.serve(fromFlag, "--listen", fromFlag)
	if !strings.Contains(p.logs.String(), `"listen":"`+fromFlag+`","listen_from":"--listen"`) {
		t.Errorf("the log does not say where serve listens and why:\n%s", p.logs.String())
	}
	p.stop(t)
}

func TestServeWithoutSlack(t *testing.T) {
	w := start(t, "1500ms", "200ms")
	addr := freeAddr(t)
	w.serveConfig(addr)
	p := w.serve(addr)
	if !strings.Contains(p.logs.String(), `"level":"WARN","msg":"slack tokens are not set`) {
		t.Fatalf("no JSON warning about Slack in the logs:\n%s", p.logs.String())
	}

	// publish notifies the bot; the release is recorded at once.
	r := w.must("publish", "--version", "v1", "--json", w.siteDir("v1"))
	if !strings.Contains(r.stdout, `"notified": true`) {
		t.Fatalf("publish did not notify: %s", r.stdout)
	}
	// The store is held by serve: the CLI says how to reach it.
	r = w.expect(1, "DEPLOYBOT_SERVER", "versions")
	_ = r

	w.env = append(w.env, "DEPLOYBOT_SERVER=http://"+addr)
	var vs []map[string]any
	if err := json.Unmarshal([]byte(w.must("versions", "--json").stdout), &vs); err != nil || len(vs) != 1 {
		t.Fatalf("versions through serve: %v %v", vs, err)
	}
	r = w.must("promote", "v1")
	if !strings.Contains(r.stdout, "v1 is live on www") || !strings.Contains(r.stdout, "propagate") {
		t.Fatalf("promote through serve:\n%s", r.stdout)
	}
	w.serves("v1")

	w.publishWithoutNotice(addr, "v2")
	w.must("backup", "--out", filepath.Join(w.dir, "backup.db"))
	if st, err := os.Stat(filepath.Join(w.dir, "backup.db")); err != nil || st.Size() == 0 {
		t.Fatalf("backup: %v", err)
	}

	// SIGTERM mid-flip: serve exits 0 in bounded time; the deploy resumes
	// when serve starts again.
	w.sigtermMidPromote(p, "v2")
	w.waitResumed(w.serve(addr), "v2")
}

// publishWithoutNotice publishes version with the hook unset (as when
// it is down) and waits until serve's reconcile finds it.
func (w *world) publishWithoutNotice(addr, version string) {
	w.t.Helper()
	w.write("deploybot-nohook.yaml", strings.Replace(readFile(w.t, w.config), `url: "http://`+addr+`/hooks/release"`, `url: ""`, 1))
	w.must("publish", "--config", filepath.Join(w.dir, "deploybot-nohook.yaml"), "--version", version, w.siteDir(version))
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(w.must("versions").stdout, version) {
		if time.Now().After(deadline) {
			w.t.Fatal("reconcile did not find " + version)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// sigtermMidPromote promotes version through serve p and sends p SIGTERM
// once the deploy propagates: serve must exit 0 within 30s, and the CLI
// be told the deploy resumes.
func (w *world) sigtermMidPromote(p *serveProc, version string) {
	t := w.t
	t.Helper()
	flip := exec.Command(w.bin, "promote", version)
	flip.Env = w.env
	var out syncBuffer
	flip.Stdout, flip.Stderr = &out, &out
	if err := flip.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for !strings.Contains(out.String(), "propagate") {
		if time.Now().After(deadline) {
			t.Fatalf("the promote never reached propagate:\n%s", out.String())
		}
		time.Sleep(10 * time.Millisecond)
	}
	began := time.Now()
	p.stop(t)
	t.Logf("serve stopped %s after SIGTERM", time.Since(began).Round(time.Millisecond))
	_ = flip.Wait()
	if !strings.Contains(out.String(), "resumes") {
		t.Fatalf("the CLI was not told the deploy resumes:\n%s", out.String())
	}
}

// waitResumed waits until serve p2, started after a stop mid-deploy, has
// finished the interrupted deploy of version: the edge serves it, status
// shows it live with nothing running or locked, and the log says so.
func (w *world) waitResumed(p2 *serveProc, version string) {
	t := w.t
	t.Helper()
	deadline := time.Now().Add(15 * time.Second)
	for {
		code, body := w.page("/")
		if code == 200 && strings.Contains(body, "release "+version+"<") {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("the interrupted deploy did not finish after restart; logs:\n%s", p2.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	deadline = time.Now().Add(15 * time.Second)
	for {
		var st map[string]any
		_ = json.Unmarshal([]byte(w.must("status", "--json").stdout), &st)
		if st["live"] == version && st["lock"] == nil && st["deploy"] == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("status after recovery: %v", st)
		}
		time.Sleep(100 * time.Millisecond)
	}
	if !strings.Contains(p2.logs.String(), "resuming interrupted deploy") {
		t.Fatalf("no recovery in the logs:\n%s", p2.logs.String())
	}
}

func readFile(t *testing.T, p string) string {
	b, err := os.ReadFile(p)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestServeWithSlack(t *testing.T) {
	w := start(t, "300ms", "100ms")
	fake := slackfake.New(t)
	addr := freeAddr(t)
	w.serveConfig(addr)
	w.slackConfig(fake)
	p := w.serve(addr) // ready means Slack is connected too
	if strings.Contains(p.logs.String(), "slack tokens are not set") {
		t.Fatal("serve ignored the Slack tokens")
	}

	// A publish notifies serve, which posts a notice with a Promote button.
	w.must("publish", "--version", "v1", "--commit", "abc123", w.siteDir("v1"))
	fake.WaitFor("the release notice", func() bool {
		posts, _, _ := fake.Snapshot()
		return len(posts) > 0 && strings.Contains(posts[0].Text, "New release of *www*: `v1`") && strings.Contains(string(posts[0].Blocks), "deploybot_promote")
	})
	fake.Slash("e2e-1", "UALICE", "promote v1 launch")
	fake.WaitFor("the deploy to finish in Slack", func() bool {
		posts, _, _ := fake.Snapshot()
		for _, p := range posts {
			if strings.Contains(p.Text, "`v1` is live on *www*") {
				return true
			}
		}
		return false
	})
	w.serves("v1")
	fake.Slash("e2e-2", "UOTHER", "rollback")
	fake.WaitFor("the refusal, to the person alone through the command's response_url", func() bool {
		_, _, eph := fake.Snapshot()
		for _, p := range eph {
			if p.User == "UOTHER" && p.Via == "response_url" && strings.Contains(p.Text, "only the deployers") {
				return true
			}
		}
		return false
	})
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		p.done <- err
		if err != nil {
			t.Fatalf("serve exited with %v; logs:\n%s", err, p.logs.String())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("serve did not stop")
	}
}

// slackConfig points the configuration at a fake Slack: channel CREL,
// deployer UALICE.
func (w *world) slackConfig(fake *slackfake.Server) {
	w.t.Helper()
	cfg := readFile(w.t, w.config)
	cfg = strings.Replace(cfg, "sites:\n", fmt.Sprintf("slack: {app_token: xapp-1-e2e, bot_token: xoxb-e2e, command: /site, api_url: %q}\nsites:\n", fake.APIURL()), 1)
	cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", "    distribution_id: E2ETEST\n    channel: CREL\n    deployers: [UALICE]\n", 1)
	w.write("deploybot.yaml", cfg)
	// A public channel the bot is not in: chat:write.public posts there.
	fake.Mu.Lock()
	fake.Channels["CREL"] = slackfake.Channel{ID: "CREL", Name: "releases"}
	fake.Mu.Unlock()
}

// The same command ends with the same exit status with and without
// --server: usage mistakes (an unknown site, a malformed version) are 2,
// failed operations 1.
func TestExitStatusIsTheSameThroughTheServer(t *testing.T) {
	w := start(t, "200ms", "100ms")
	addr := freeAddr(t)
	w.serveConfig(addr)
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.must("promote", "v1")
	cases := [][]string{
		{"promote", "--site", "nope", "v1"},
		{"promote", "v1/../x"},
		{"promote", "v9"},
		{"promote", "v1"},
		{"rollback"},
		{"rollback", "v9"},
		{"status", "--site", "nope"},
		{"versions", "--site", "nope"},
		{"pin", "v9"},
		{"unpin", "v1"},
		{"unlock"},
		{"promote"},
	}
	local := make([]int, len(cases))
	for i, args := range cases {
		local[i] = w.run(args...).code
	}
	if local[0] != 2 || local[1] != 2 || local[2] != 1 || local[3] != 0 {
		t.Fatalf("exit statuses without --server: %v", local)
	}
	w.serve(addr)
	for i, args := range cases {
		r := w.run(append([]string{args[0], "--server", "http://" + addr}, args[1:]...)...)
		if r.code != local[i] {
			t.Errorf("deploybot %s: exit %d through the server, %d without\nstderr: %s", strings.Join(args, " "), r.code, local[i], r.stderr)
		}
	}
}
