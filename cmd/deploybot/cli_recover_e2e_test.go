package main_test

import (
	"encoding/json"
	"os/exec"
	"regexp"
	"strings"
	"syscall"
	"testing"
	"time"
)

// A command-line promote killed after its flip leaves its deploy
// resumable. With no serve to finish it, the next command says the
// deploy's process is gone and how to finish it, and deploybot recover
// does, from what the distribution serves; history shows the deploy
// interrupted, resumed and how it ended. Stopped with Ctrl-C after the
// flip instead, the promote ends its record itself: the release is live
// and the site free, with nothing left to recover.
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
			stderr, err := stopPromoteAfterTheFlip(t, w, c.sig)
			if c.sig == syscall.SIGINT {
				checkCtrlCAfterTheFlip(t, w, stderr, err)
				return
			}
			checkGoneDeployIsRecovered(t, w)
		})
	}
}

// stopPromoteAfterTheFlip runs promote v2 from the command line, sends
// it sig once it waits for the distribution (after the flip), and
// returns what it printed on stderr and how it exited.
func stopPromoteAfterTheFlip(t *testing.T, w *world, sig syscall.Signal) (string, error) {
	t.Helper()
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
	if err := flip.Process.Signal(sig); err != nil {
		t.Fatal(err)
	}
	err := flip.Wait()
	return stderr.String(), err
}

// checkCtrlCAfterTheFlip: the promote stopped with Ctrl-C after the flip
// ended its record itself, said so in one line, and left nothing to
// recover.
func checkCtrlCAfterTheFlip(t *testing.T, w *world, stderr string, err error) {
	t.Helper()
	ee, ok := err.(*exec.ExitError)
	if !ok || ee.ExitCode() != 1 {
		t.Fatalf("ctrl-c: %v, want exit 1", err)
	}
	msg := strings.TrimSpace(stderr)
	if strings.Count(msg, "\n") != 0 || strings.Contains(msg, "internal error") || strings.Contains(msg, "level=") ||
		!strings.Contains(msg, "live now: v2") || !strings.Contains(msg, "stopped in phase propagate after the flip") ||
		strings.Contains(msg, "recover") {
		t.Fatalf("ctrl-c after the flip should print one line saying where it stopped and what is live; stderr:\n%s", msg)
	}
	if st := w.status(); st["deploy"] != nil || st["lock"] != nil || st["live"] != "v2" {
		t.Fatalf("status after ctrl-c after the flip: %v", st)
	}
	if r := w.must("recover"); !strings.Contains(r.stdout, "nothing to recover") {
		t.Fatalf("recover after ctrl-c:\n%s", r.stdout)
	}
	// Ended by itself, nothing resumes it: failed, not
	// interrupted (which promises a resume and its outcome).
	if got := historyTrail(t, w); got != "promote:ok promote:failed" {
		t.Fatalf("history after ctrl-c after the flip: %s", got)
	}
	// What the edge serves now is up to its caches: the
	// invalidation was never made (the message says so).
	w.must("rollback", "v1")
	w.serves("v1")
}

// checkGoneDeployIsRecovered: after a kill -9 of the promote, the next
// command and status say its process is gone and how to finish it, and
// recover does.
func checkGoneDeployIsRecovered(t *testing.T, w *world) {
	t.Helper()
	r := w.expect(1, "whose process (host ", "promote", "v1")
	if !strings.Contains(r.stderr, "is gone; recovery finishes it") || !strings.Contains(r.stderr, "(run deploybot recover --site www)") {
		t.Fatalf("the refusal does not say how to finish the deploy:\n%s", r.stderr)
	}
	var st map[string]any
	if err := json.Unmarshal([]byte(w.must("status", "--json").stdout), &st); err != nil {
		t.Fatal(err)
	}
	if st["runner_gone"] != true || st["deploy"] == nil || st["drift"] != false {
		t.Fatalf("status of a deploy whose process is gone: %v", st)
	}
	var vs []map[string]any
	if err := json.Unmarshal([]byte(w.must("versions", "--json").stdout), &vs); err != nil {
		t.Fatal(err)
	}
	for _, v := range vs {
		if (v["version"] == st["live"]) != (v["live"] == true) {
			t.Fatalf("status says %v is live, versions: %v", st["live"], vs)
		}
	}
	if r := w.must("status"); !strings.Contains(r.stdout, "deploybot recover --site www") {
		t.Fatalf("status does not offer recover:\n%s", r.stdout)
	}

	r = w.must("recover")
	if !strings.Contains(r.stdout, "v1 -> v2 by "+callerARN("e2e")+") recovered: done") {
		t.Fatalf("recover:\n%s", r.stdout)
	}
	if !regexp.MustCompile(`v2 is live on www \(deploy \S+, [0-9]{1,3}\.[0-9]s\)`).MatchString(r.stdout) {
		t.Fatalf("recover does not say how long the deploy took:\n%s", r.stdout)
	}
	// History has the refused promote above, then the deploy
	// interrupted (as recovery found it), resumed by recover, and
	// done.
	if got := historyTrail(t, w); got != "promote:ok promote:refused promote:interrupted promote:resumed promote:ok" {
		t.Fatalf("history after kill -9 and recover: %s\n%s", got, w.must("history").stdout)
	}
	w.serves("v2")
	if r := w.must("recover"); !strings.Contains(r.stdout, "nothing to recover") {
		t.Fatalf("a second recover:\n%s", r.stdout)
	}
	w.must("rollback", "v1")
	w.serves("v1")
}

// historyTrail is the site's history, oldest first, as action:result.
func historyTrail(t *testing.T, w *world) string {
	t.Helper()
	var h []struct{ Action, Result, Door string }
	if err := json.Unmarshal([]byte(w.must("history", "--json").stdout), &h); err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(h) - 1; i >= 0; i-- {
		out = append(out, h[i].Action+":"+h[i].Result)
	}
	return strings.Join(out, " ")
}
