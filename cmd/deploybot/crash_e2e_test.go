package main_test

import (
	"encoding/json"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// TestKillNineInEachPhase kills `serve` with SIGKILL while a promote is in
// each phase, starts it again, and checks the deploy reaches a final state
// that matches the distribution, the lock is free and no release is lost.
func TestKillNineInEachPhase(t *testing.T) {
	cases := []struct {
		name        string
		phase       string
		fault       string // held while the deploy is in phase, so the kill lands there
		propagation string
		want        string // final phase of the deploy after the restart
		live        any    // what is live after recovery
	}{
		{"during the distribution update", "update", `{"latency": 3000000000, "only": "cloudfront UpdateDistribution"}`, "300ms", "failed", nil},
		{"after the update, before Deployed", "propagate", `{}`, "4s", "done", "v1"},
		{"while the invalidation runs", "invalidate-wait", `{}`, "200ms", "done", "v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			inval := "200ms"
			if c.phase == "invalidate-wait" {
				inval = "4s"
			}
			w := start(t, c.propagation, inval)
			addr := freeAddr(t)
			w.serveConfig(addr)
			p := w.serve(addr)
			w.must("publish", "--version", "v1", w.siteDir("v1"))
			w.must("publish", "--version", "v2", w.siteDir("v2"))
			w.env = append(w.env, "DEPLOYBOT_SERVER=http://"+addr)
			w.fault(c.fault)

			flip := exec.Command(w.bin, "promote", "v1")
			flip.Env = w.env
			var out syncBuffer
			flip.Stdout, flip.Stderr = &out, &out
			if err := flip.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = flip.Wait() }()
			deadline := time.Now().Add(20 * time.Second)
			for {
				var st map[string]any
				_ = json.Unmarshal([]byte(w.must("status", "--json").stdout), &st)
				if d, ok := st["deploy"].(map[string]any); ok && d["phase"] == c.phase {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("the deploy never reached %s; CLI says:\n%s", c.phase, out.String())
				}
				time.Sleep(20 * time.Millisecond)
			}
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-p.done
			p.done <- nil
			w.fault(`{}`)

			w.serve(addr)
			deadline = time.Now().Add(30 * time.Second)
			var st map[string]any
			for {
				st = nil
				_ = json.Unmarshal([]byte(w.must("status", "--json").stdout), &st)
				last, _ := st["last_deploy"].(map[string]any)
				if st["deploy"] == nil && st["lock"] == nil && last != nil && (last["phase"] == "done" || last["phase"] == "failed") {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("no final state after the restart: %v", st)
				}
				time.Sleep(50 * time.Millisecond)
			}
			last := st["last_deploy"].(map[string]any)
			if last["phase"] != c.want {
				t.Fatalf("deploy ended %v (%v), want %s", last["phase"], last["error"], c.want)
			}
			if st["live"] != c.live || st["drift"] != false {
				t.Fatalf("live %v (drift %v), want %v: %v", st["live"], st["drift"], c.live, st)
			}
			if c.live != nil {
				w.serves(c.live.(string))
			}
			r := w.must("versions", "--json")
			if !strings.Contains(r.stdout, `"v1"`) || !strings.Contains(r.stdout, `"v2"`) {
				t.Fatalf("a release record was lost: %s", r.stdout)
			}
		})
	}
}
