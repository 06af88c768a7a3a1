package main_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A command-line promote that is stopped (Ctrl-C) or killed leaves its
// deploy resumable. With no serve to finish it, the next command says the
// deploy's process is gone and how to finish it, and deploybot recover
// does, from what the distribution serves.
func TestCommandLineDeployWhoseProcessIsGone(t *testing.T) {
	for _, c := range []struct {
		name string
		sig  syscall.Signal
	}{{"ctrl-c", syscall.SIGINT}, {"kill -9", syscall.SIGKILL}} {
		t.Run(c.name, func(t *testing.T) {
			w := start(t, "3s", "200ms")
			w.must("publish", "--version", "v1", w.siteDir("v1"))
			w.must("publish", "--version", "v2", w.siteDir("v2"))
			w.must("promote", "v1")

			flip := exec.Command(w.bin, "promote", "v2")
			flip.Env = w.env
			var stdout, stderr syncBuffer
			flip.Stdout, flip.Stderr = &stdout, &stderr
			if err := flip.Start(); err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(20 * time.Second)
			for !strings.Contains(stdout.String(), "Waiting for the distribution to deploy") {
				if time.Now().After(deadline) {
					t.Fatalf("the promote never reached propagate:\n%s", stdout.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := flip.Process.Signal(c.sig); err != nil {
				t.Fatal(err)
			}
			err := flip.Wait()
			if c.sig == syscall.SIGINT {
				ee, ok := err.(*exec.ExitError)
				if !ok || ee.ExitCode() != 1 {
					t.Fatalf("ctrl-c: %v, want exit 1", err)
				}
				msg := strings.TrimSpace(stderr.String())
				if strings.Count(msg, "\n") != 0 || strings.Contains(msg, "internal error") || strings.Contains(msg, "level=") ||
					!strings.Contains(msg, "was interrupted in phase propagate; live now: v2") ||
					!strings.Contains(msg, "deploybot recover --site www") {
					t.Fatalf("ctrl-c should print one line saying where it stopped, what is live and how to finish; stderr:\n%s", msg)
				}
			}

			r := w.expect(1, "whose process (host ", "promote", "v1")
			if !strings.Contains(r.stderr, "is gone; run deploybot recover --site www") {
				t.Fatalf("the refusal does not say how to finish the deploy:\n%s", r.stderr)
			}
			var st map[string]any
			if err := json.Unmarshal([]byte(w.must("status", "--json").stdout), &st); err != nil {
				t.Fatal(err)
			}
			if st["runner_gone"] != true || st["deploy"] == nil || st["drift"] != false {
				t.Fatalf("status of a deploy whose process is gone: %v", st)
			}
			if r := w.must("status"); !strings.Contains(r.stdout, "deploybot recover --site www") {
				t.Fatalf("status does not offer recover:\n%s", r.stdout)
			}

			r = w.must("recover")
			if !strings.Contains(r.stdout, "v1 -> v2 by "+callerARN("e2e")+") recovered: done") {
				t.Fatalf("recover:\n%s", r.stdout)
			}
			w.serves("v2")
			if r := w.must("recover"); !strings.Contains(r.stdout, "nothing to recover") {
				t.Fatalf("a second recover:\n%s", r.stdout)
			}
			w.must("rollback", "v1")
			w.serves("v1")
		})
	}
}
