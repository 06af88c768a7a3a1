package main_test

import (
	"context"
	"encoding/json"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

// The same operations through each door (the command line, the API,
// Slack) leave the same audit records but for the door and the actor:
// the service writes them, not the doors. history reads them through the
// API (and locally, the same).
func TestEveryDoorAuditsTheSame(t *testing.T) {
	w := start(t, "200ms", "100ms")
	fake := slackfake.New(t)
	addr := freeAddr(t)
	w.serveConfig(addr)
	w.slackConfig(fake)
	const reason = "frozen for the audit <!channel>"

	// The command line, before serve holds the store.
	w.must("lock", reason)
	w.must("unlock")
	w.expect(1, "not pinned", "unpin", "v9")

	w.serve(addr)
	client := &server.Client{URL: "http://" + addr, Token: "tok"}
	ctx := context.Background()
	if _, err := client.LockSite(ctx, "www", "ci-bot", reason); err != nil {
		t.Fatal(err)
	}
	if _, err := client.UnlockSite(ctx, "www", "ci-bot"); err != nil {
		t.Fatal(err)
	}
	if err := client.UnpinRelease(ctx, "www", "v9", "ci-bot"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("API unpin of a release never pinned: %v", err)
	}
	fake.Slash("audit-1", "UALICE", "lock "+reason)
	fake.WaitFor("the Slack lock", func() bool { posts, _, _ := fake.Snapshot(); return slackfake.HasText(posts, ":lock:") })
	fake.Slash("audit-2", "UALICE", "unlock")
	fake.WaitFor("the Slack unlock", func() bool { posts, _, _ := fake.Snapshot(); return slackfake.HasText(posts, ":unlock:") })
	fake.Slash("audit-3", "UALICE", "unpin v9")
	fake.WaitFor("the Slack refusal", func() bool { _, _, eph := fake.Snapshot(); return slackfake.HasText(eph, "not pinned") })

	var h []releases.AuditEntry
	r := w.must("history", "--json", "--server", "http://"+addr)
	if err := json.Unmarshal([]byte(r.stdout), &h); err != nil {
		t.Fatalf("history --json: %v\n%s", err, r.stdout)
	}
	type key struct{ action, result, detail string }
	byDoor := map[string][]key{}
	for i := len(h) - 1; i >= 0; i-- { // oldest first
		e := h[i]
		byDoor[e.Door] = append(byDoor[e.Door], key{e.Action, e.Result, e.Detail})
	}
	want := byDoor["cli"]
	if len(want) != 3 || want[0] != (key{"lock", "ok", reason}) || want[1].action != "unlock" || want[2].result != "refused" {
		t.Fatalf("the command line's records: %+v (all: %+v)", want, h)
	}
	for _, door := range []string{"api", "slack"} {
		if got := byDoor[door]; len(got) != len(want) || got[0] != want[0] || got[1] != want[1] || got[2] != want[2] {
			t.Errorf("door %s recorded %+v, the command line %+v", door, got, want)
		}
	}
	if r := w.run("history", "--server", "http://"+addr); r.code != 0 || !strings.Contains(r.stdout, "DOOR") || !strings.Contains(r.stdout, "slack") {
		t.Fatalf("history as text: %d\n%s%s", r.code, r.stdout, r.stderr)
	}
}
