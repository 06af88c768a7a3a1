package main_test

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/cli"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/iamcheck"
	"github.com/deploybot/deploybot/localaws"
)

// The end-to-end test runs the built binary: localaws, publish v1 and v2,
// promote v1, promote v2, rollback, and after each step the edge serves
// that version's index.html.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
	// builtDir is where binary built it, removed when the tests end
	// (a 55 MB binary per run would otherwise pile up in the temp dir).
	builtDir string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if builtDir != "" {
		os.RemoveAll(builtDir)
	}
	os.Exit(code)
}

func binary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		if p := os.Getenv("DEPLOYBOT_BIN"); p != "" {
			binPath = p
			return
		}
		dir, err := os.MkdirTemp("", "deploybot-e2e-")
		if err != nil {
			buildErr = err
			return
		}
		builtDir = dir
		binPath = filepath.Join(dir, "deploybot")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type world struct {
	t      *testing.T
	bin    string
	dir    string
	config string
	api    string
	edge   string
	env    []string
	kvsARN string // with localaws --kvs
}

var addrRE = regexp.MustCompile(`on (http://[0-9.:]+)`)
var kvsRE = regexp.MustCompile(`key value store \S+: (arn:\S+)`)

// accessKey is the AWS access key id a test's actor runs the binary with;
// callerARN is who the stand-in's STS says that key is.
func accessKey(actor string) string {
	return "AKID" + strings.ToUpper(strings.ReplaceAll(actor, "-", ""))
}
func callerARN(actor string) string {
	return "arn:aws:iam::" + localaws.StandInAccount + ":user/" + accessKey(actor)
}

func start(t *testing.T, propagation, invalidation string, localawsFlags ...string) *world {
	t.Helper()
	w := &world{t: t, bin: binary(t), dir: t.TempDir()}
	ctx, cancel := context.WithCancel(context.Background())
	cmd := exec.CommandContext(ctx, w.bin, append([]string{"localaws", "--listen", "127.0.0.1:0", "--edge", "127.0.0.1:0",
		"--data", filepath.Join(w.dir, "aws"), "--propagation", propagation, "--invalidation", invalidation,
		"--distribution", "E2ETEST=example-site"}, localawsFlags...)...)
	stdout, _ := cmd.StdoutPipe()
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cancel(); _ = cmd.Wait() })
	sc := bufio.NewScanner(stdout)
	for (w.api == "" || w.edge == "") && sc.Scan() {
		if m := kvsRE.FindStringSubmatch(sc.Text()); m != nil {
			w.kvsARN = m[1]
		}
		m := addrRE.FindStringSubmatch(sc.Text())
		switch {
		case m == nil:
		case strings.Contains(sc.Text(), "API"):
			w.api = m[1]
		case strings.Contains(sc.Text(), "edge"):
			w.edge = m[1]
		}
	}
	if w.api == "" || w.edge == "" {
		t.Fatalf("localaws did not print its addresses; stderr: %s", stderr.String())
	}
	go func() { _, _ = io.Copy(io.Discard, stdout) }()
	w.config = filepath.Join(w.dir, "deploybot.yaml")
	// The command line is its AWS identity: the stand-in's STS names
	// each access key a user (callerARN); the people link them to names
	// the site's deployers (and so its approvers) list.
	w.write("deploybot.yaml", fmt.Sprintf(`store: {path: %q}
aws: {endpoint: %q}
deploy: {poll_interval: 50ms, timeout: 1m}
people:
  - {name: e2e, aws: [%q]}
  - {name: alice, aws: [%q]}
  - {name: bob, aws: [%q]}
  - {name: carol, aws: [%q]}
sites:
  - name: www
    bucket: example-site
    prefix: www/
    distribution_id: E2ETEST
    deployers: [e2e, alice, bob, carol]
`, filepath.Join(w.dir, "db", "deploybot.db"), w.api, callerARN("e2e"), callerARN("alice"), callerARN("bob"), callerARN("carol")))
	w.env = append(os.Environ(), "AWS_ACCESS_KEY_ID="+accessKey("e2e"), "AWS_SECRET_ACCESS_KEY=secret", "AWS_EC2_METADATA_DISABLED=true",
		"AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null", "DEPLOYBOT_CONFIG="+w.config, "DEPLOYBOT_ACTOR=e2e",
		cli.CallLogEnv+"="+filepath.Join(w.dir, "aws-calls.jsonl"))
	t.Cleanup(w.checkCallsAgainstPolicy)
	return w
}

// checkCallsAgainstPolicy holds every AWS call the test's commands made
// against the policy deploybot iam-policy prints for the role that made
// it, from the configuration as the test left it: a call the policy does
// not allow fails the test, naming the call and what it needs.
func (w *world) checkCallsAgainstPolicy() {
	t := w.t
	raw, err := os.ReadFile(filepath.Join(w.dir, "aws-calls.jsonl"))
	if errors.Is(err, os.ErrNotExist) {
		return
	}
	if err != nil {
		t.Fatal(err)
	}
	policies := map[string]cloud.PolicyDocument{}
	for _, role := range []string{"bot", "ci"} {
		r := w.run("iam-policy", "--role", role)
		if r.code != 0 {
			t.Errorf("iam-policy --role %s: exit %d: %s", role, r.code, r.stderr)
			return
		}
		var doc cloud.PolicyDocument
		if err := json.Unmarshal([]byte(r.stdout), &doc); err != nil {
			t.Fatalf("iam-policy --role %s: %v\n%s", role, err, r.stdout)
		}
		policies[role] = doc
	}
	seen := map[string]bool{}
	for _, line := range strings.Split(strings.TrimSpace(string(raw)), "\n") {
		var c struct {
			Role string `json:"role"`
			cloud.Call
		}
		if err := json.Unmarshal([]byte(line), &c); err != nil {
			t.Fatalf("call log line %q: %v", line, err)
		}
		if c.Role == "admin" {
			continue
		}
		needs, err := iamcheck.Needs(c.Call, "123456789012")
		if err != nil {
			t.Error(err)
			continue
		}
		for _, n := range needs {
			if !iamcheck.Allowed(policies[c.Role], n) && !seen[c.Role+n.String()] {
				seen[c.Role+n.String()] = true
				t.Errorf("the %s role's policy (deploybot iam-policy --role %s) does not allow %s:%s: it needs %s", c.Role, c.Role, c.Service, c.Operation, n)
			}
		}
	}
}

func (w *world) write(name, body string) string {
	p := filepath.Join(w.dir, name)
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		w.t.Fatal(err)
	}
	if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
		w.t.Fatal(err)
	}
	return p
}

type result struct {
	code           int
	stdout, stderr string
}

func (w *world) run(args ...string) result {
	w.t.Helper()
	cmd := exec.Command(w.bin, args...)
	cmd.Env = w.env
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	err := cmd.Run()
	code := 0
	if ee, ok := err.(*exec.ExitError); ok {
		code = ee.ExitCode()
	} else if err != nil {
		w.t.Fatal(err)
	}
	return result{code, out.String(), errb.String()}
}

func (w *world) must(args ...string) result {
	w.t.Helper()
	r := w.run(args...)
	if r.code != 0 {
		w.t.Fatalf("deploybot %s: exit %d\nstdout: %s\nstderr: %s", strings.Join(args, " "), r.code, r.stdout, r.stderr)
	}
	return r
}

func (w *world) expect(code int, want string, args ...string) result {
	w.t.Helper()
	r := w.run(args...)
	if r.code != code || !strings.Contains(r.stderr+r.stdout, want) {
		w.t.Fatalf("deploybot %s: exit %d (want %d), output should mention %q\nstdout: %s\nstderr: %s",
			strings.Join(args, " "), r.code, code, want, r.stdout, r.stderr)
	}
	return r
}

func (w *world) fault(body string) {
	w.t.Helper()
	req, _ := http.NewRequest(http.MethodPut, w.api+"/_localaws/faults", strings.NewReader(body))
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		w.t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusNoContent {
		w.t.Fatalf("setting faults: %s", resp.Status)
	}
}

func (w *world) page(path string) (int, string) {
	w.t.Helper()
	resp, err := http.Get(w.edge + path)
	if err != nil {
		w.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// waitPage asks the edge for path until ok says the answer is the one
// wanted, for at most 10 s (a change reaches the edge's PoPs over time).
func (w *world) waitPage(path, what string, ok func(code int, body string) bool) {
	w.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		code, body := w.page(path)
		if ok(code, body) {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("timed out waiting for %s: the edge answers %d %q", what, code, body)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func (w *world) serves(version string) {
	w.t.Helper()
	code, body := w.page("/")
	if code != 200 || !strings.Contains(body, "release "+version+"<") {
		w.t.Fatalf("edge serves %d %q, want release %s", code, body, version)
	}
}

func (w *world) siteDir(version string) string {
	w.write(version+"/index.html", "<html><body><h1>release "+version+"</h1></body></html>")
	w.write(version+"/assets/app.0123abcd.css", "body{color:red}/*"+version+"*/")
	return filepath.Join(w.dir, version)
}

func (w *world) status() map[string]any {
	w.t.Helper()
	var st map[string]any
	r := w.must("status", "--json")
	if err := json.Unmarshal([]byte(r.stdout), &st); err != nil {
		w.t.Fatalf("status --json: %v\n%s", err, r.stdout)
	}
	return st
}

func TestEndToEnd(t *testing.T) {
	w := start(t, "300ms", "200ms")
	r := w.must("publish", "--site", "www", "--version", "v1", "--commit", "c1", "--message", "first", w.siteDir("v1"))
	if !strings.Contains(r.stdout, "published www v1: 2 files") {
		t.Fatalf("publish output %q", r.stdout)
	}
	r = w.must("publish", "--site", "www", "--version", "v2", "--json", w.siteDir("v2"))
	var pub map[string]any
	if err := json.Unmarshal([]byte(r.stdout), &pub); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"version", "files", "uploaded", "copied", "bytes_uploaded", "seconds"} {
		if _, ok := pub[k]; !ok {
			t.Fatalf("publish --json lacks %q: %s", k, r.stdout)
		}
	}
	if pub["files"].(float64) != 2 || pub["uploaded"].(float64) != 2 {
		t.Fatalf("publish --json %s", r.stdout)
	}

	var vs []map[string]any
	if err := json.Unmarshal([]byte(w.must("versions", "--json").stdout), &vs); err != nil {
		t.Fatal(err)
	}
	if len(vs) != 2 || vs[0]["version"] != "v2" || vs[1]["commit"] != "c1" || vs[0]["live"] != false {
		t.Fatalf("versions %v", vs)
	}
	if _, err := time.Parse(time.RFC3339, vs[0]["published_at"].(string)); err != nil {
		t.Fatalf("published_at: %v", err)
	}

	r = w.must("promote", "--site", "www", "--reason", "launch", "v1")
	for _, phase := range []string{"update", "propagate", "invalidate", "invalidate-wait", "v1 is live on www"} {
		if !strings.Contains(r.stdout, phase) {
			t.Fatalf("promote output lacks %q:\n%s", phase, r.stdout)
		}
	}
	w.serves("v1")
	if code, body := w.page("/assets/app.0123abcd.css"); code != 200 || !strings.Contains(body, "v1") {
		t.Fatalf("asset: %d %q", code, body)
	}
	w.must("promote", "v2")
	w.serves("v2")
	w.must("rollback", "--reason", "oops")
	w.serves("v1")

	st := w.status()
	if st["live"] != "v1" || st["origin_path"] != "/www/v1" || st["deploy"] != nil || st["lock"] != nil {
		t.Fatalf("status %v", st)
	}
	if r := w.must("versions"); !regexp.MustCompile(`(?m)^v1\s+live`).MatchString(r.stdout) {
		t.Fatalf("versions does not mark v1 live:\n%s", r.stdout)
	}
	w.expect(0, "already live", "promote", "v1")
}

func TestBadInputChangesNothing(t *testing.T) {
	w := start(t, "100ms", "100ms")
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.must("promote", "v1")

	w.expect(2, "invalid version", "promote", "v1/../x")
	w.expect(2, "invalid version", "publish", "--version", "-bad", w.siteDir("v3"))
	w.expect(2, `unknown site "nope"`, "promote", "--site", "nope", "v1")
	w.expect(1, "site www has no release v9: no manifest in the bucket (never published, upload unfinished, or pruned); nothing changed, live: v1", "promote", "v9")
	w.expect(1, "already published", "publish", "--version", "v1", w.siteDir("v1"))
	w.expect(2, "promote takes one VERSION", "promote")

	// A build folder with a link to a secret outside it is refused, and
	// nothing of it is uploaded; hidden files are left out and said so.
	w.write("linked/index.html", "<h1>release linked</h1>")
	w.write("linked/.env", "TOKEN=x")
	secret := w.write("outside/token.txt", "hook-secret")
	if err := os.Symlink(secret, filepath.Join(w.dir, "linked", "token.txt")); err != nil {
		t.Fatal(err)
	}
	w.expect(2, "token.txt -> "+secret, "publish", "--version", "linked", filepath.Join(w.dir, "linked"))
	if err := os.Remove(filepath.Join(w.dir, "linked", "token.txt")); err != nil {
		t.Fatal(err)
	}
	r := w.must("publish", "--version", "linked", "--dry-run", filepath.Join(w.dir, "linked"))
	if !strings.Contains(r.stdout, "left out: .env: excluded by default (.env*") {
		t.Fatalf("publish --dry-run does not say what it leaves out:\n%s", r.stdout)
	}
	w.expect(2, "unknown command", "frobnicate")

	// A publish that fails part way (S3 keeps failing one upload) leaves
	// the files it sent but no manifest, so the version never goes live.
	w.fault(`{"error_rate": 1, "path": "/www/broken/b.html"}`)
	w.write("broken/a.html", "a")
	w.write("broken/b.html", "b")
	w.write("broken/index.html", "<h1>release broken</h1>")
	w.expect(1, "no manifest written", "publish", "--version", "broken", filepath.Join(w.dir, "broken"))
	w.fault(`{}`)
	w.expect(1, "no manifest in the bucket (never published, upload unfinished, or pruned); nothing changed, live: v1", "promote", "broken")
	if r := w.must("versions", "--json"); strings.Contains(r.stdout, "broken") {
		t.Fatalf("an unfinished upload is listed as a release: %s", r.stdout)
	}

	bad := w.write("bad.yaml", "sites:\n  - name: www\n    bucket: b\n    distribution_id: E\n    colour: red\n")
	w.expect(2, "line 5", "versions", "--config", bad)
	w.expect(2, "no such file", "versions", "--config", filepath.Join(w.dir, "missing.yaml"))

	w.serves("v1")
	st := w.status()
	if st["live"] != "v1" || st["lock"] != nil {
		t.Fatalf("status after refusals: %v", st)
	}
}

func TestConcurrentPromoteRefusedNamingTheRunningOne(t *testing.T) {
	// Propagation long enough that the second command line, started
	// once the lock is seen, still finds the first deploy running on a
	// loaded machine.
	w := start(t, "6s", "100ms")
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.must("publish", "--version", "v2", w.siteDir("v2"))

	first := exec.Command(w.bin, "promote", "v1")
	first.Env = append(w.env[:len(w.env):len(w.env)], "DEPLOYBOT_ACTOR=alice", "AWS_ACCESS_KEY_ID="+accessKey("alice"))
	var out bytes.Buffer
	first.Stdout, first.Stderr = &out, &out
	if err := first.Start(); err != nil {
		t.Fatal(err)
	}
	// Wait until the first deploy holds the lock.
	deadline := time.Now().Add(10 * time.Second)
	for {
		if st := w.status(); st["lock"] != nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("the first promote never took the lock")
		}
		time.Sleep(20 * time.Millisecond)
	}
	r := w.expect(1, "busy", "promote", "v2")
	if !strings.Contains(r.stderr, callerARN("alice")) || !strings.Contains(r.stderr, "promote v1") {
		t.Fatalf("refusal does not name the running deploy: %s", r.stderr)
	}
	if err := first.Wait(); err != nil {
		t.Fatalf("first promote: %v\n%s", err, out.String())
	}
	w.serves("v1")
}
