package main_test

import (
	"bufio"
	"context"
	"io"
	"net/http"
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
	bin := binary(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, "dev", "--data", t.TempDir(), "--edge", "127.0.0.1:0", "--propagation", "300ms", "--invalidation", "200ms")
	stdin, _ := cmd.StdinPipe()
	stdout, _ := cmd.StdoutPipe()
	var stderr syncBuffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() { _ = cmd.Process.Kill(); _ = cmd.Wait() }()
	var out syncBuffer
	lines := make(chan string, 1000)
	go func() {
		sc := bufio.NewScanner(io.TeeReader(stdout, &out))
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	wait := func(re *regexp.Regexp) []string {
		t.Helper()
		for {
			select {
			case l, ok := <-lines:
				if !ok {
					t.Fatalf("dev exited before %s\nstdout:\n%s\nstderr:\n%s", re, out.String(), stderr.String())
				}
				if m := re.FindStringSubmatch(l); m != nil {
					return m
				}
			case <-ctx.Done():
				t.Fatalf("timed out waiting for %s\nstdout:\n%s", re, out.String())
			}
		}
	}
	url := wait(regexp.MustCompile(`site:\s+(http://127\.0\.0\.1:\d+/)`))[1]
	get := func() string {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return string(b)
	}
	wait(regexp.MustCompile(`Ctrl-D or Ctrl-C quits`))
	if body := get(); !strings.Contains(body, "<h1>v1</h1>") {
		t.Fatalf("the sample site does not show v1: %q", body)
	}
	io.WriteString(stdin, "/site promote demo v2 trying it out\n")
	wait(regexp.MustCompile("`v2` is live on"))
	if body := get(); !strings.Contains(body, "<h1>v2</h1>") {
		t.Fatalf("after promote the site shows %q", body)
	}
	io.WriteString(stdin, "/site promote ../x\n")
	wait(regexp.MustCompile(`\[only you\] invalid version`))
	io.WriteString(stdin, "/site rollback\n")
	wait(regexp.MustCompile("`v1` is live on"))
	if body := get(); !strings.Contains(body, "<h1>v1</h1>") {
		t.Fatalf("after rollback the site shows %q", body)
	}
	stdin.Close()
	if err := cmd.Wait(); err != nil {
		t.Fatalf("dev did not exit cleanly at end of input: %v\n%s", err, stderr.String())
	}
}
