package main_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
	"net/http/cookiejar"
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

// TestDev runs `deploybot dev` as a newcomer would: the sample site is
// served, and lines typed on stdin flip it through the same bot code as
// Slack.
func TestDev(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := startDev(t, ctx, "--propagation", "300ms", "--invalidation", "200ms")
	url := d.wait(regexp.MustCompile(`site:\s+(http://127\.0\.0\.1:\d+/)`))[1]
	d.wait(regexp.MustCompile(`Ctrl-D or Ctrl-C quits`))
	if b := body(t, http.DefaultClient, url); !strings.Contains(b, "<h1>v1</h1>") {
		t.Fatalf("the sample site does not show v1: %q", b)
	}
	io.WriteString(d.stdin, "/site promote demo v2 trying it out\n")
	// The thread says when visitors began to get it, as the edge told.
	d.wait(regexp.MustCompile(`visitors get v2 since \d\d:\d\d:\d\d UTC, [0-9.]+m?s after the flip \(watched`))
	d.wait(regexp.MustCompile("`v2` is live on \\*demo\\* \\([0-9]+s in all\\): visitors get v2 since"))
	if b := body(t, http.DefaultClient, url); !strings.Contains(b, "<h1>v2</h1>") {
		t.Fatalf("after promote the site shows %q", b)
	}
	if v := releaseHeader(t, url); v != "v2" {
		t.Fatalf("after promote the site's answer names release %q", v)
	}
	io.WriteString(d.stdin, "/site promote ../x\n")
	d.wait(regexp.MustCompile(`\[only you\] invalid version`))
	io.WriteString(d.stdin, "/site rollback\n")
	d.wait(regexp.MustCompile("`v1` is live on"))
	if b := body(t, http.DefaultClient, url); !strings.Contains(b, "<h1>v1</h1>") {
		t.Fatalf("after rollback the site shows %q", b)
	}
	d.stdin.Close()
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("dev did not exit cleanly at end of input: %v\n%s", err, d.stderr.String())
	}
}

// With --approvals 1 a promote waits: the console prints the card, you
// cannot approve your own, "as bob" can, and a freeze holds the next
// promote while a rollback goes through.
func TestDevApprovalsAndFreeze(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := startDev(t, ctx, "--propagation", "300ms", "--invalidation", "200ms", "--approvals", "1")
	url := d.wait(regexp.MustCompile(`site:\s+(http://127\.0\.0\.1:\d+/)`))[1]
	d.wait(regexp.MustCompile(`Ctrl-D or Ctrl-C quits`))
	io.WriteString(d.stdin, "/site promote v2 ship it\n")
	d.wait(regexp.MustCompile(`\[#demo\] approval card: \*Promote demo\*: .v1. → .v2. asked by console:you`))
	id := d.wait(regexp.MustCompile("waits for 1 approval\\(s\\) by an approver other than you, until [^:]+:\\d+Z: request `([^`]+)`"))[1]
	io.WriteString(d.stdin, "/site approve "+id+"\n")
	d.wait(regexp.MustCompile(`\[only you\] console:you asked for this promote and cannot approve it`))
	io.WriteString(d.stdin, "as bob /site approve "+id+"\n")
	d.wait(regexp.MustCompile("Approved by console:bob: the deploy runs in this thread"))
	d.wait(regexp.MustCompile("`v2` is live on"))
	if b := body(t, http.DefaultClient, url); !strings.Contains(b, "<h1>v2</h1>") {
		t.Fatalf("after the approval the site shows %q", b)
	}
	io.WriteString(d.stdin, "/site freeze 1h launch week\n")
	d.wait(regexp.MustCompile(`froze \*demo\* until`))
	io.WriteString(d.stdin, "/site rollback\n")
	d.wait(regexp.MustCompile("`v1` is live on"))
	io.WriteString(d.stdin, "/site promote v2\n")
	d.wait(regexp.MustCompile(`\[only you\] site demo is frozen by console:you until`))
	d.stdin.Close()
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("dev did not exit cleanly: %v\n%s", err, d.stderr.String())
	}
}

// With --strategy kvs the demo site flips by key, and previews work.
func TestDevWithKVS(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	d := startDev(t, ctx, "--propagation", "300ms", "--invalidation", "200ms", "--strategy", "kvs", "--kvs-propagation", "200ms")
	d.wait(regexp.MustCompile(`strategy kvs: function dev-demo runs at the edge, key demo not written yet \(the first promote writes it\)`))
	url := d.wait(regexp.MustCompile(`site:\s+(http://127\.0\.0\.1:\d+/)`))[1]
	api := d.wait(devAPI)[1]
	d.wait(regexp.MustCompile(`- \{name: demo, bucket: demo-site, prefix: demo/, distribution_id: EDEVDEMO, strategy: kvs, kvs: \{arn: "arn:aws:cloudfront::\d{12}:key-value-store/[^"]+"\}, url: "http://127\.0\.0\.1:\d+"\}`))
	d.wait(regexp.MustCompile(`Ctrl-D or Ctrl-C quits`))
	if b := body(t, http.DefaultClient, url); !strings.Contains(b, "<h1>v1</h1>") {
		t.Fatalf("the sample site on kvs does not show v1: %q", b)
	}
	waitDeployed(t, api, "EDEVDEMO") // the function's association reaches every PoP
	io.WriteString(d.stdin, "/site promote v2\n")
	d.wait(regexp.MustCompile("writing the live version to the key value store: done"))
	d.wait(regexp.MustCompile(`visitors get v2 since \d\d:\d\d:\d\d UTC`))
	d.wait(regexp.MustCompile("`v2` is live on"))
	if b := body(t, http.DefaultClient, url); !strings.Contains(b, "<h1>v2</h1>") {
		t.Fatalf("after a kvs promote the site shows %q", b)
	}
	if v := releaseHeader(t, url); v != "v2" {
		t.Fatalf("after a kvs promote the site's answer names release %q", v)
	}
	io.WriteString(d.stdin, "/site preview v1\n")
	// The console prints the link as a plain URL, not Slack's <url|label>.
	link := d.wait(regexp.MustCompile(`Preview of .v1. on \*demo\*: (http://\S+) \(works until`))[1]
	if !strings.HasPrefix(link, strings.TrimSuffix(url, "/")+"/?deploybot-preview=v1.") {
		t.Fatalf("preview link %q for site %q", link, url)
	}
	jar, _ := cookiejar.New(nil)
	if b := body(t, &http.Client{Jar: jar}, link); !strings.Contains(b, "<h1>v1</h1>") {
		t.Fatalf("the preview shows %q", b)
	}
	if b := body(t, http.DefaultClient, url); !strings.Contains(b, "<h1>v2</h1>") {
		t.Fatalf("everyone else sees %q", b)
	}
	d.stdin.Close()
	if err := d.cmd.Wait(); err != nil {
		t.Fatalf("dev did not exit cleanly: %v\n%s", err, d.stderr.String())
	}
}

// One --data, run with kvs, then origin-path, then kvs again: each start
// moves the demo site over cleanly, and what the console says is live is
// what the edge serves.
func TestDevSwitchesStrategyOnTheSameData(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Minute)
	defer cancel()
	data := t.TempDir()
	run := func(strategy, promote, want string) {
		t.Helper()
		d := startDevIn(t, ctx, data, "--propagation", "300ms", "--invalidation", "200ms", "--strategy", strategy, "--kvs-propagation", "200ms")
		url := d.wait(regexp.MustCompile(`site:\s+(http://127\.0\.0\.1:\d+/)`))[1]
		api := d.wait(devAPI)[1]
		d.wait(regexp.MustCompile(`Ctrl-D or Ctrl-C quits`))
		waitDeployed(t, api, "EDEVDEMO") // a distribution change reaches every PoP
		io.WriteString(d.stdin, "/site "+promote+"\n")
		d.wait(regexp.MustCompile("`" + want + "` is live on"))
		if b := body(t, http.DefaultClient, url); !strings.Contains(b, "<h1>"+want+"</h1>") {
			t.Fatalf("%s: the console says %s is live, the edge serves %q", strategy, want, b)
		}
		if b := body(t, http.DefaultClient, url+"assets/"); strings.Contains(b, "demo/v") && strings.Count(b, "demo/") > 1 {
			t.Fatalf("%s: a path with two release folders: %q", strategy, b)
		}
		d.stdin.Close()
		if err := d.cmd.Wait(); err != nil {
			t.Fatalf("dev did not exit cleanly: %v\n%s", err, d.stderr.String())
		}
	}
	run("kvs", "promote v2", "v2")
	run("origin-path", "rollback", "v1")
	run("kvs", "promote v2", "v2")
	run("origin-path", "rollback v1", "v1") // v1 is older: a promote would ask to say rollback
}

// devProc is a running `deploybot dev`: its stdin, and wait, which reads
// its output up to a line matching re.
type devProc struct {
	cmd    *exec.Cmd
	stdin  io.WriteCloser
	stderr *syncBuffer
	wait   func(re *regexp.Regexp) []string
}

// devAPI is the line of dev's banner that names the stand-in's API.
var devAPI = regexp.MustCompile(`S3 \+ CloudFront API \(local stand-in\): (http://127\.0\.0\.1:\d+)`)

func startDev(t *testing.T, ctx context.Context, args ...string) *devProc {
	t.Helper()
	return startDevIn(t, ctx, t.TempDir(), args...)
}

func startDevIn(t *testing.T, ctx context.Context, data string, args ...string) *devProc {
	t.Helper()
	cmd := exec.CommandContext(ctx, binary(t), append([]string{"dev", "--data", data, "--edge", "127.0.0.1:0"}, args...)...)
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	d := &devProc{cmd: cmd, stdin: stdin, stderr: &syncBuffer{}}
	cmd.Stderr = d.stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = cmd.Process.Kill(); _ = cmd.Wait() })
	var out syncBuffer
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stdout, &out))
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	d.wait = func(re *regexp.Regexp) []string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("dev exited before %s\nstdout:\n%s\nstderr:\n%s", re, out.String(), d.stderr.String())
				}
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s\nstdout:\n%s", re, out.String())
			}
		}
	}
	return d
}

// body GETs url.
// releaseHeader is the release an answer of url names to visitors.
func releaseHeader(t *testing.T, url string) string {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	return resp.Header.Get("X-Deploybot-Release")
}

func body(t *testing.T, c *http.Client, url string) string {
	t.Helper()
	resp, err := c.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}
