package main_test

import (
	"os/exec"
	"regexp"
	"strings"
	"testing"
	"time"
)

var requestRE = regexp.MustCompile(`request (\S+)\n`)

// runAs runs the binary as actor.
func (w *world) runAs(actor string, args ...string) result {
	w.t.Helper()
	saved := w.env
	w.env = append(append([]string(nil), saved...), "DEPLOYBOT_ACTOR="+actor, "AWS_ACCESS_KEY_ID="+accessKey(actor))
	defer func() { w.env = saved }()
	return w.run(args...)
}

// startAs starts the binary as actor and returns a function that waits
// for it to end.
func (w *world) startAs(actor string, args ...string) (output func() string, wait func() result) {
	w.t.Helper()
	cmd := exec.Command(w.bin, args...)
	cmd.Env = append(append([]string(nil), w.env...), "DEPLOYBOT_ACTOR="+actor, "AWS_ACCESS_KEY_ID="+accessKey(actor))
	var out, errb syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	if err := cmd.Start(); err != nil {
		w.t.Fatal(err)
	}
	return out.String, func() result {
		err := cmd.Wait()
		code := 0
		if ee, ok := err.(*exec.ExitError); ok {
			code = ee.ExitCode()
		}
		return result{code, out.String(), errb.String()}
	}
}

// Four eyes through the binary: the requester cannot approve, another
// person's approval runs the deploy and the waiting promote follows it to
// the end, a rejection ends a waiting promote with exit 1.
func TestApprovalFromTheCommandLine(t *testing.T) {
	w := start(t, "100ms", "100ms")
	w.write("deploybot.yaml", strings.Replace(readFile(t, w.config), "    distribution_id: E2ETEST\n",
		"    distribution_id: E2ETEST\n    approval: {required: 1, timeout: 10m}\n", 1))
	for _, v := range []string{"v1", "v2", "v3"} {
		w.must("publish", "--site", "www", "--version", v, w.siteDir(v))
	}
	r := w.runAs("alice", "promote", "--no-wait", "v1")
	m := requestRE.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil || !strings.Contains(r.stdout, "waits for 1 approval(s)") {
		t.Fatalf("promote --no-wait: %d %q %q", r.code, r.stdout, r.stderr)
	}
	id := m[1]
	if r := w.runAs("carol", "promote", "--no-wait", "v2"); r.code != 1 || !strings.Contains(r.stderr, "already has a promote waiting for approval: "+id) {
		t.Fatalf("a second request: %d %q", r.code, r.stderr)
	}
	if r := w.runAs("alice", "approve", id); r.code != 1 || !strings.Contains(r.stderr, "cannot approve") {
		t.Fatalf("self-approval: %d %q", r.code, r.stderr)
	}
	if r := w.runAs("bob", "approve", id); r.code != 0 || !strings.Contains(r.stdout, "v1 is live on www (deploy "+id) {
		t.Fatalf("approval: %d %q %q", r.code, r.stdout, r.stderr)
	}
	w.serves("v1")

	// A promote that waits, approved from another process.
	out, wait := w.startAs("alice", "promote", "--reason", "ship it", "v2")
	var id2 string
	deadline := time.Now().Add(20 * time.Second)
	for id2 == "" && time.Now().Before(deadline) {
		if m := requestRE.FindStringSubmatch(out()); m != nil {
			id2 = m[1]
		}
		time.Sleep(20 * time.Millisecond)
	}
	if id2 == "" {
		t.Fatalf("the waiting promote printed no request: %q", out())
	}
	if r := w.runAs("bob", "approve", id2); r.code != 0 {
		t.Fatalf("approve: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = wait()
	if r.code != 0 || !strings.Contains(r.stdout, "approved by "+callerARN("bob")+" (1 of 1)") || !strings.Contains(r.stdout, "v2 is live on www (deploy "+id2+", approved by "+callerARN("bob")+")") {
		t.Fatalf("the waiting promote: %d %q %q", r.code, r.stdout, r.stderr)
	}
	w.serves("v2")

	// A rejection ends a waiting promote.
	out, wait = w.startAs("alice", "promote", "v3")
	var id3 string
	for deadline := time.Now().Add(20 * time.Second); id3 == "" && time.Now().Before(deadline); time.Sleep(20 * time.Millisecond) {
		if m := requestRE.FindStringSubmatch(out()); m != nil {
			id3 = m[1]
		}
	}
	if r := w.runAs("bob", "reject", "--reason", "not during the sale", id3); r.code != 0 || !strings.Contains(r.stdout, "rejected "+id3) {
		t.Fatalf("reject: %d %q %q", r.code, r.stdout, r.stderr)
	}
	if r := wait(); r.code != 1 || !strings.Contains(r.stderr, "rejected by "+callerARN("bob")+": not during the sale") {
		t.Fatalf("the rejected promote: %d %q %q", r.code, r.stdout, r.stderr)
	}
	w.serves("v2")
	// Rollbacks do not wait.
	w.runAs("alice", "rollback")
	w.serves("v1")
	// A request is its own record (approval-requested ok), its deploy
	// another (promote ok), as are the refused self-approval and the
	// rejection; every result is one of the five.
	got := trail(w.history())
	alice, bob, carol := callerARN("alice"), callerARN("bob"), callerARN("carol")
	want := alice + ":approval-requested:ok " + carol + ":promote:refused " + alice + ":approve:refused " +
		alice + ":promote:ok " + bob + ":approve:ok " +
		alice + ":approval-requested:ok " + alice + ":promote:ok " + bob + ":approve:ok " +
		alice + ":approval-requested:ok " + bob + ":reject:ok " + alice + ":rollback:ok"
	if got != want {
		t.Fatalf("history\n%s\nwant\n%s", got, want)
	}
}
