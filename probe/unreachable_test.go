package probe

import (
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"syscall"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// An address that cannot be reached at all is told from one that answers
// slowly or badly: the visible phase gives up on the first soon.
func TestUnreachable(t *testing.T) {
	dial := func(errno error) error {
		return &net.OpError{Op: "dial", Net: "tcp", Err: os.NewSyscallError("connect", errno)}
	}
	for _, c := range []struct {
		name string
		err  error
		want bool
	}{
		{"name not found", &net.DNSError{Err: "no such host", Name: "wwww.example.com", IsNotFound: true}, true},
		{"resolver failed", &net.DNSError{Err: "server misbehaving", Name: "www.example.com"}, true},
		{"resolver timed out", &net.DNSError{Err: "i/o timeout", Name: "www.example.com", IsTimeout: true}, false},
		{"connection refused", dial(syscall.ECONNREFUSED), true},
		{"no route to host", dial(syscall.EHOSTUNREACH), true},
		{"network unreachable", dial(syscall.ENETUNREACH), true},
		{"connection reset", dial(syscall.ECONNRESET), false},
		{"deadline", fmt.Errorf("GET: %w", context.DeadlineExceeded), false},
	} {
		if got := unreachable(fmt.Errorf("Get %q: %w", "https://www.example.com/", c.err)); got != c.want {
			t.Errorf("%s: unreachable %v, want %v", c.name, got, c.want)
		}
	}
}

// A port nothing listens on is unreachable, as the visible phase sees it.
func TestProbeOfAClosedPortIsUnreachable(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	_, _, err = (&HTTP{}).ProbeRelease(context.Background(), "http://"+addr+"/")
	if !errors.Is(err, releases.ErrUnreachable) {
		t.Fatalf("probe of a closed port: %v, want ErrUnreachable", err)
	}
}
