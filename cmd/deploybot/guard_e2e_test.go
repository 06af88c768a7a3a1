package main_test

import (
	"fmt"
	"strings"
	"testing"
	"time"
)

// Through the binary: a freeze holds a promote (exit 1, naming the freeze
// and that rollbacks go), a rollback runs, an override runs and is
// recorded, status shows the freeze, unfreeze lifts it.
func TestFreezeFromTheCommandLine(t *testing.T) {
	w := start(t, "100ms", "100ms")
	for _, v := range []string{"v1", "v2", "v3"} {
		w.must("publish", "--site", "www", "--version", v, w.siteDir(v))
	}
	w.must("promote", "v1")
	w.must("promote", "v2")
	w.expect(2, "neither a duration", "freeze", "soon", "because")
	w.expect(2, "freeze takes how long", "freeze", "2h")
	r := w.must("freeze", "--site", "www", "2h", "launch", "week")
	if !strings.Contains(r.stdout, "froze www until") || !strings.Contains(r.stdout, "launch week") {
		t.Fatalf("freeze output %q", r.stdout)
	}
	w.expect(1, "frozen by "+callerARN("e2e")+" until", "promote", "v3")
	if r := w.must("status"); !strings.Contains(r.stdout, "freeze:      frozen by "+callerARN("e2e")+" until") {
		t.Fatalf("status output:\n%s", r.stdout)
	}
	if st := w.status(); st["freeze"] == nil || st["window"] != nil {
		t.Fatalf("status --json: %v", st)
	}
	w.must("rollback", "--reason", "incident")
	w.serves("v1")
	w.must("promote", "--override-freeze", "hotfix approved", "v3")
	w.serves("v3")
	r = w.must("history", "--limit", "1")
	if !strings.Contains(r.stdout, "overriding the freeze: hotfix approved") {
		t.Fatalf("history:\n%s", r.stdout)
	}
	if r := w.must("unfreeze"); !strings.Contains(r.stdout, "unfroze www") {
		t.Fatalf("unfreeze output %q", r.stdout)
	}
	if r := w.must("unfreeze", "--site", "all"); !strings.Contains(r.stdout, "no freeze to lift") {
		t.Fatalf("unfreeze all output %q", r.stdout)
	}
	w.expect(2, `unknown site "all"`, "status", "--site", "all")
}

// A site whose only deploy window is closed: promote is refused naming
// when the next one opens, in the window's zone; status says the same; a
// rollback runs. The window opened two hours ago for an hour, every day,
// so it is closed for 22 hours whatever the time of the run.
func TestDeployWindowFromTheCommandLine(t *testing.T) {
	w := start(t, "100ms", "100ms")
	for _, v := range []string{"v1", "v2", "v3"} {
		w.must("publish", "--site", "www", "--version", v, w.siteDir(v))
	}
	w.must("promote", "v1")
	w.must("promote", "v2")
	tokyo, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	opened := time.Now().In(tokyo).Add(-2 * time.Hour)
	spec := fmt.Sprintf("%d %d * * *", opened.Minute(), opened.Hour())
	w.write("deploybot.yaml", strings.Replace(readFile(t, w.config), "    distribution_id: E2ETEST\n",
		fmt.Sprintf("    distribution_id: E2ETEST\n    windows: [{cron: %q, duration: 1h, timezone: Asia/Tokyo}]\n", spec), 1))
	next := time.Date(opened.Year(), opened.Month(), opened.Day(), opened.Hour(), opened.Minute(), 0, 0, tokyo).AddDate(0, 0, 1)
	want := "outside its deploy windows; the next (" + spec + ") opens " + next.Format("Mon 2006-01-02 15:04") + " JST (Asia/Tokyo)"
	w.expect(1, want, "promote", "v3")
	if r := w.must("status"); !strings.Contains(r.stdout, "window:      closed; the next ("+spec+") opens "+next.Format("Mon 2006-01-02 15:04")) {
		t.Fatalf("status:\n%s", r.stdout)
	}
	w.must("rollback")
	w.serves("v1")
	w.must("promote", "--override-freeze", "launch cannot wait", "v3")
	w.serves("v3")
}
