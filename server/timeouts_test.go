package server_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

// closedWithin reports whether the server closes conn within d: a read
// returns EOF or a reset (anything the server sent before is drained).
func closedWithin(t *testing.T, conn net.Conn, d time.Duration) bool {
	t.Helper()
	_ = conn.SetReadDeadline(time.Now().Add(d))
	_, err := io.Copy(io.Discard, conn)
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return false
	}
	return true
}

// No connection is held for ever: a body that stalls one byte short, a
// request whose headers never end, and an idle keep-alive are each closed
// once their timeout passes; a deploy's answer, which streams for as long
// as the deploy runs, is not cut off by them.
func TestConnectionsAreNotHeldForEver(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	short := 300 * time.Millisecond
	e.srv.Timeouts = server.Timeouts{ReadHeader: short, Read: short, Write: short, Idle: short}
	e.start()
	addr := strings.TrimPrefix(e.url, "http://")
	dial := func() net.Conn {
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { c.Close() })
		return c
	}
	// A slow body: 64 KiB announced, one byte missing.
	slow := dial()
	io.WriteString(slow, "POST /hooks/release HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 65536\r\n\r\n")
	slow.Write(make([]byte, 65535))
	// Headers that never end.
	stalled := dial()
	io.WriteString(stalled, "GET /healthz HTTP/1.1\r\nHost: x\r\nX-Slow: ")
	// An idle keep-alive after one answer.
	idle := dial()
	io.WriteString(idle, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if line, err := bufio.NewReader(idle).ReadString('\n'); err != nil || !strings.Contains(line, "200") {
		t.Fatalf("healthz: %q %v", line, err)
	}
	// Many more bodies stalled one byte short of 64 KiB
	// (DEPLOYBOT_STALLED_CONNS; make reliability opens 2,000).
	n := 20
	if v, err := strconv.Atoi(os.Getenv("DEPLOYBOT_STALLED_CONNS")); err == nil && v > 0 {
		n = v
	}
	many := make([]net.Conn, n)
	for i := range many {
		many[i] = dial()
		io.WriteString(many[i], "POST /api/v1/sites/www/pins HTTP/1.1\r\nHost: x\r\nAuthorization: Bearer x\r\nContent-Length: 65536\r\n\r\n")
		many[i].Write(make([]byte, 65535))
	}
	began := time.Now()
	for name, c := range map[string]net.Conn{"slow body": slow, "endless headers": stalled, "idle keep-alive": idle} {
		if !closedWithin(t, c, 5*time.Second) {
			t.Errorf("%s: still open 5 s after a %s timeout", name, short)
		}
	}
	open := 0
	for _, c := range many {
		if !closedWithin(t, c, time.Second) {
			open++
		}
	}
	if open > 0 {
		t.Fatalf("%d of %d stalled connections still open", open, n)
	}
	t.Logf("stalled connections: %d bodies one byte short of 64 KiB, a slow body, endless headers, an idle keep-alive: all closed within %s of a %s timeout",
		n, time.Since(began).Round(100*time.Millisecond), short)

	// A deploy that runs longer than every timeout streams to its end.
	ctx := context.Background()
	go func() {
		time.Sleep(4 * short)
		e.flow()
	}()
	out, err := e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice"}, nil)
	if err != nil || out.Deploy == nil || out.Deploy.Phase != releases.PhaseDone {
		t.Fatalf("a deploy longer than the timeouts: %+v %v", out, err)
	}
}
