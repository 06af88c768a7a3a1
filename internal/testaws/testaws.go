// Package testaws starts real S3 servers for tests: versitygw, a real S3
// implementation, so that the S3 adapter is checked against something other
// than our own stand-in.
package testaws

import (
	"bufio"
	"context"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

// Versity keys used by tests. versitygw accepts any root credentials it is
// started with.
const (
	AccessKey = "AKIADEPLOYBOTTEST"
	SecretKey = "deploybot-test-secret"
)

// VersityGWPath finds the versitygw binary: $VERSITYGW, then PATH, then
// $GOBIN / $GOPATH/bin (where `go install` puts it).
func VersityGWPath() string {
	if p := os.Getenv("VERSITYGW"); p != "" {
		return p
	}
	if p, err := exec.LookPath("versitygw"); err == nil {
		return p
	}
	for _, dir := range []string{os.Getenv("GOBIN"), goEnv("GOBIN"), filepath.Join(goEnv("GOPATH"), "bin")} {
		if dir == "" {
			continue
		}
		p := filepath.Join(dir, "versitygw")
		if _, err := os.Stat(p); err == nil {
			return p
		}
	}
	return ""
}

func goEnv(name string) string {
	out, err := exec.Command("go", "env", name).Output()
	if err != nil {
		return ""
	}
	return strings.TrimSpace(string(out))
}

// required reports whether a missing versitygw fails the test rather than
// skipping it: in CI and under `make test`, which installs it.
func required() bool {
	return os.Getenv("CI") != "" || os.Getenv("DEPLOYBOT_REQUIRE_VERSITYGW") != ""
}

// FreePort returns a loopback address that was free a moment ago.
func FreePort(t testing.TB) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// StartVersityGW starts versitygw with a posix backend in a temporary
// directory and returns its endpoint URL. It stops with the test.
func StartVersityGW(t testing.TB) string {
	t.Helper()
	bin := VersityGWPath()
	if bin == "" {
		msg := "versitygw not found: `make test` installs it (go install github.com/versity/versitygw/cmd/versitygw@v1.8.0)"
		if required() {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	endpoint, stop, err := Start(bin, t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(stop)
	return endpoint
}

// Start runs versitygw from bin with a posix backend under dir (which must
// exist) on a free loopback port; stop ends it.
func Start(bin, dir string) (endpoint string, stop func(), err error) {
	endpoint, _, stop, err = StartPID(bin, dir)
	return endpoint, stop, err
}

// StartPID is Start that also returns the server's process id (for
// benchmarks that measure the server's CPU time) and passes flags (say,
// --keep-alive) to versitygw.
func StartPID(bin, dir string, flags ...string) (endpoint string, pid int, stop func(), err error) {
	root := filepath.Join(dir, "root")
	if err := os.MkdirAll(root, 0o755); err != nil {
		return "", 0, nil, err
	}
	// versitygw's default keeps each object's metadata (ETag, Content-Type,
	// Cache-Control, checksums) in extended attributes. Its sidecar mode,
	// for file systems without them, writes one small file per attribute
	// through a temporary file and a rename: several times the server's
	// work per PutObject, which would make every benchmark measure
	// versitygw's metadata files more than the clients.
	backend := []string{"posix", root}
	if !xattrsWork(root) {
		sidecar := filepath.Join(dir, "sidecar")
		if err := os.MkdirAll(sidecar, 0o755); err != nil {
			return "", 0, nil, err
		}
		backend = []string{"posix", "--sidecar", sidecar, root}
	}
	var lastErr error
	for range 3 { // the free port may be taken in between; try again
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return "", 0, nil, err
		}
		addr := ln.Addr().String()
		ln.Close()
		ctx, cancel := context.WithCancel(context.Background())
		args := append([]string{"--access", AccessKey, "--secret", SecretKey, "--port", addr, "--quiet"}, flags...)
		args = append(args, backend...)
		cmd := exec.CommandContext(ctx, bin, args...)
		logf, err := os.Create(filepath.Join(dir, "versitygw.log"))
		if err != nil {
			cancel()
			return "", 0, nil, err
		}
		cmd.Stdout, cmd.Stderr = logf, logf
		if err := cmd.Start(); err != nil {
			cancel()
			logf.Close()
			return "", 0, nil, fmt.Errorf("starting versitygw: %w", err)
		}
		if lastErr = waitPort(addr, 10*time.Second); lastErr == nil {
			return "http://" + addr, cmd.Process.Pid, func() {
				cancel()
				_ = cmd.Wait()
				logf.Close()
			}, nil
		}
		cancel()
		_ = cmd.Wait()
		logf.Close()
		if raw, err := os.ReadFile(logf.Name()); err == nil {
			lastErr = fmt.Errorf("%w; log: %s", lastErr, firstLines(string(raw), 20))
		}
	}
	return "", 0, nil, fmt.Errorf("versitygw did not start: %w", lastErr)
}

func waitPort(addr string, d time.Duration) error {
	deadline := time.Now().Add(d)
	for time.Now().Before(deadline) {
		c, err := net.DialTimeout("tcp", addr, 200*time.Millisecond)
		if err == nil {
			c.Close()
			return nil
		}
		time.Sleep(50 * time.Millisecond)
	}
	return fmt.Errorf("nothing listens on %s after %s", addr, d)
}

func firstLines(s string, n int) string {
	var out []string
	sc := bufio.NewScanner(strings.NewReader(s))
	for sc.Scan() && len(out) < n {
		out = append(out, sc.Text())
	}
	return strings.Join(out, "\n")
}

// Serve runs h on a free loopback port until stop, for benchmarks and
// harnesses that need the stand-in on a real socket.
func Serve(h http.Handler) (url string, stop func(), err error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", nil, err
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = srv.Serve(ln) }()
	return "http://" + ln.Addr().String(), func() { _ = srv.Close() }, nil
}
