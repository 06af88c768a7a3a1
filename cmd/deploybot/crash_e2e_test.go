package main_test

import (
	"encoding/json"
	"fmt"
	"os/exec"
	"strings"
	"syscall"
	"testing"
	"time"
)

// killCase is a phase of a promote in which serve is killed, and what
// the deploy must come to after the restart.
type killCase struct {
	name        string
	before      string // promoted to completion first, when set
	phase       string
	fault       string // held while the deploy is in phase, so the kill lands there
	propagation string
	inval       string
	// settle: between the kill and the restart, the test waits until
	// CloudFront has finished what it was doing.
	settle bool
	want   string // final phase of the deploy after the restart
	live   any    // what is live after recovery
}

// TestKillNineInEachPhase kills `serve` with SIGKILL while a promote is in
// each phase, starts it again, and checks the deploy reaches a final state
// that matches the distribution, the lock is free and no release is lost.
func TestKillNineInEachPhase(t *testing.T) {
	cases := []killCase{
		{"before the update, copying the live release's assets", "v2", "carry", `{"latency": 3000000000, "only": "s3 CopyObject"}`, "300ms", "200ms", false, "failed", "v2"},
		{"during the distribution update", "", "update", `{"latency": 3000000000, "only": "cloudfront UpdateDistribution"}`, "300ms", "200ms", false, "failed", nil},
		{"after the update, before Deployed", "", "propagate", `{}`, "4s", "200ms", false, "done", "v1"},
		{"while the invalidation runs", "", "invalidate-wait", `{}`, "200ms", "4s", false, "done", "v1"},
		// The process dies before it records the end of the deploy; by
		// the restart the invalidation has long Completed.
		{"after the invalidation Completed, before the store write", "", "invalidate-wait", `{}`, "200ms", "4s", true, "done", "v1"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			w := start(t, c.propagation, c.inval)
			addr := freeAddr(t)
			w.serveConfig(addr)
			p := w.serve(addr)
			w.must("publish", "--version", "v1", w.siteDir("v1"))
			// v2 has an asset v1 lacks, so a flip from v2 to v1 carries it.
			w.write("v2/assets/only-v2.89abcdef.js", "console.log('v2')")
			w.must("publish", "--version", "v2", w.siteDir("v2"))
			w.env = append(w.env, "DEPLOYBOT_SERVER=http://"+addr)
			if c.before != "" {
				w.must("promote", c.before)
			}
			w.fault(c.fault)

			// Back to the older v1, as a promote (--rollback says so).
			flip := exec.Command(w.bin, "promote", "--rollback", "v1")
			flip.Env = w.env
			var out syncBuffer
			flip.Stdout, flip.Stderr = &out, &out
			if err := flip.Start(); err != nil {
				t.Fatal(err)
			}
			defer func() { _ = flip.Wait() }()
			w.waitDeployPhase(c.phase, &out)
			if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
				t.Fatal(err)
			}
			<-p.done
			p.done <- nil
			w.fault(`{}`)
			if c.settle {
				w.waitDeployed()
				w.waitInvalidated()
			}

			w.serve(addr)
			checkDeployAfterTheRestart(t, w, c, w.waitDeployEnded())
		})
	}
}

// waitDeployPhase waits until the running deploy is in phase; out is the
// CLI's output, shown if it never gets there.
func (w *world) waitDeployPhase(phase string, out *syncBuffer) {
	w.t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for {
		var st map[string]any
		_ = json.Unmarshal([]byte(w.must("status", "--json").stdout), &st)
		if d, ok := st["deploy"].(map[string]any); ok && d["phase"] == phase {
			return
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("the deploy never reached %s; CLI says:\n%s", phase, out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitDeployEnded waits until no deploy runs, the site is not locked and
// the last deploy is done or failed, and returns that status.
func (w *world) waitDeployEnded() map[string]any {
	w.t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	var st map[string]any
	for {
		st = nil
		_ = json.Unmarshal([]byte(w.must("status", "--json").stdout), &st)
		last, _ := st["last_deploy"].(map[string]any)
		if st["deploy"] == nil && st["lock"] == nil && last != nil && (last["phase"] == "done" || last["phase"] == "failed") {
			return st
		}
		if time.Now().After(deadline) {
			w.t.Fatalf("no final state after the restart: %v", st)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// checkDeployAfterTheRestart checks the deploy ended as c wants, what is
// live matches the distribution, and no release was lost.
func checkDeployAfterTheRestart(t *testing.T, w *world, c killCase, st map[string]any) {
	t.Helper()
	last := st["last_deploy"].(map[string]any)
	if last["phase"] != c.want {
		t.Fatalf("deploy ended %v (%v), want %s", last["phase"], last["error"], c.want)
	}
	if c.phase == "carry" && !strings.Contains(fmt.Sprint(last["error"]), "nothing changed") {
		t.Fatalf("the deploy interrupted while copying assets ended %q, want a plain \"nothing changed\"", last["error"])
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
}
