package main_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// theFive are the audit results people script against (the public
// contract): written here, not read from the releases package, so a
// result added there fails the tests that scan a flow's history.
var theFive = map[string]bool{"ok": true, "refused": true, "failed": true, "interrupted": true, "resumed": true}

// history is the site's whole audit log as `history --json` prints it,
// oldest first; it fails the test on any result outside the five, there
// or in the RESULT column of the table `history` prints. args are extra
// flags (--site, --server).
func (w *world) history(args ...string) []releases.AuditEntry {
	w.t.Helper()
	h := w.historyJSON(args...)
	for _, e := range h {
		if !theFive[e.Result] {
			w.t.Errorf("history --json holds result %q outside ok, refused, failed, interrupted, resumed: %+v", e.Result, e)
		}
	}
	table := w.must(append([]string{"history", "--limit", "10000"}, args...)...).stdout
	lines := strings.Split(strings.TrimSpace(table), "\n")
	if len(lines) != len(h)+1 || !strings.Contains(lines[0], "RESULT") {
		w.t.Fatalf("history prints %d line(s) for %d record(s):\n%s", len(lines), len(h), table)
	}
	for _, line := range lines[1:] {
		// TIME is two fields (date and time); DOOR, ACTOR and ACTION hold
		// no spaces.
		if f := strings.Fields(line); len(f) < 6 || !theFive[f[5]] {
			w.t.Errorf("history prints a result outside the five: %q", line)
		}
	}
	for i, j := 0, len(h)-1; i < j; i, j = i+1, j-1 {
		h[i], h[j] = h[j], h[i]
	}
	return h
}

// historyJSON is the site's whole audit log as `history --json` prints
// it, newest first, unchecked: for reading a log that is still growing
// (history compares it with a second read).
func (w *world) historyJSON(args ...string) []releases.AuditEntry {
	w.t.Helper()
	r := w.must(append([]string{"history", "--json", "--limit", "10000"}, args...)...)
	var h []releases.AuditEntry
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		w.t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	return h
}

// trail is the records as actor:action:result, oldest first, for
// comparing a flow's history at once.
func trail(h []releases.AuditEntry) string {
	var out []string
	for _, e := range h {
		out = append(out, e.Actor+":"+e.Action+":"+e.Result)
	}
	return strings.Join(out, " ")
}

// A flow through the binary whose records cover every result, and every
// action a change through the command line writes: each is one of the
// five, in history --json and in its table.
func TestHistoryHoldsOnlyTheFiveResults(t *testing.T) {
	w := start(t, "100ms", "100ms")
	w.write("deploybot.yaml", strings.Replace(readFile(t, w.config), "    distribution_id: E2ETEST\n",
		"    distribution_id: E2ETEST\n    approval: {required: 1, timeout: 10m}\n", 1))
	for _, v := range []string{"v1", "v2"} {
		w.must("publish", "--site", "www", "--version", v, w.siteDir(v))
	}
	r := w.runAs("alice", "promote", "--no-wait", "v1")
	m := requestRE.FindStringSubmatch(r.stdout)
	if r.code != 0 || m == nil {
		t.Fatalf("promote --no-wait: %d %q %q", r.code, r.stdout, r.stderr)
	}
	w.runAs("alice", "approve", m[1]) // refused: one's own request
	if r := w.runAs("bob", "approve", m[1]); r.code != 0 {
		t.Fatalf("approve: %d %q %q", r.code, r.stdout, r.stderr)
	}
	r = w.runAs("alice", "promote", "--no-wait", "v2")
	if m = requestRE.FindStringSubmatch(r.stdout); r.code != 0 || m == nil {
		t.Fatalf("promote --no-wait: %d %q %q", r.code, r.stdout, r.stderr)
	}
	w.runAs("bob", "reject", "--reason", "not now", m[1])
	w.must("lock", "launch")
	w.expect(1, "no earlier release", "rollback")
	w.must("unlock")
	w.must("pin", "--reason", "keep", "v1")
	w.expect(1, "not pinned", "unpin", "v2")
	w.must("rebuild")
	h := w.history()
	want := map[string]string{"approval-requested": "ok", "approve": "refused", "reject": "ok", "promote": "ok", "lock": "ok",
		"rollback": "refused", "unlock": "ok", "pin": "ok", "unpin": "refused", "rebuild": "ok"}
	for action, result := range want {
		found := false
		for _, e := range h {
			found = found || e.Action == action && e.Result == result
		}
		if !found {
			t.Errorf("no %s %s in the history: %s", action, result, trail(h))
		}
	}
	// The rebuild asked for is the caller's, after everything it read.
	if last := h[len(h)-1]; last.Action != "rebuild" || !strings.HasPrefix(last.Actor, "arn:") || last.Door != "cli" ||
		!strings.Contains(last.Detail, "2 release(s), 1 deploy(s)") {
		t.Errorf("the rebuild's record: %+v", last)
	}
}
