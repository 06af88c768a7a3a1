package slackbot_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// A freeze from Slack holds promotes, not rollbacks; an approver's
// override goes through and a deployer who is not an approver is refused;
// status shows the freeze; every step is in the audit log.
func TestSlashFreezeHoldsPromotesNotRollbacks(t *testing.T) {
	w := newWorld(t, 50*time.Millisecond)
	w.Service.Sites[0].Approval.Approvers = []string{alice}
	w.publish("v1", "v2", "v3")
	w.promoteInTurn("f", "v1", "v2")
	eph := func(sub string) bool { _, _, e := w.slack.Snapshot(); return hasText(e, sub) }
	posted := func(sub string) bool { p, _, _ := w.slack.Snapshot(); return hasText(p, sub) }

	w.slack.Slash("f-freeze", bob, "freeze 2h launch week")
	w.slack.WaitFor("the freeze notice", func() bool { return posted(":snowflake: <@UBOB> froze *www* until") && posted("launch week") })
	w.slack.Slash("f-promote", bob, "promote v3")
	w.slack.WaitFor("the freeze refusal", func() bool { return eph("site www is frozen by UBOB until") && eph("rollbacks are allowed") })
	w.slack.Slash("f-override-bob", bob, "promote v3 --override-freeze it is urgent")
	w.slack.WaitFor("the approver refusal", func() bool { return eph("only the approvers of www") })
	if w.live() != "v2" {
		t.Fatalf("a refused promote flipped: %s", w.live())
	}
	w.slack.Slash("f-status", mallory, "status")
	w.slack.WaitFor("status with the freeze", func() bool { return posted(":snowflake: *Frozen*: frozen by UBOB until") })

	w.slack.Slash("f-rollback", bob, "rollback www incident")
	w.slack.WaitFor("the rollback", func() bool {
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].Kind == releases.KindRollback && ds[0].Phase == releases.PhaseDone && w.live() == "v1"
	})
	w.slack.Slash("f-override", alice, "promote v3 hotfix --override-freeze CTO approved")
	w.slack.WaitFor("the override", func() bool {
		ds, _ := w.Store.Deploys(context.Background(), "www", 1)
		return len(ds) == 1 && ds[0].To == "v3" && ds[0].Phase == releases.PhaseDone && posted("`v3` is live")
	})
	w.slack.Slash("f-unfreeze", bob, "unfreeze")
	w.slack.WaitFor("the unfreeze notice", func() bool { return posted(":sunny: <@UBOB> unfroze *www*") })

	audit, err := w.Store.Audit(context.Background(), "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(audit) - 1; i >= 0; i-- {
		a := audit[i]
		if a.Door != "slack" {
			t.Fatalf("door %q in %+v", a.Door, a)
		}
		got = append(got, a.Action+":"+a.Result)
		if a.Action == "promote" && a.Result == "ok" && strings.Contains(a.Detail, "v3") && !strings.Contains(a.Detail, "overriding the freeze: CTO approved") {
			t.Fatalf("the override is not recorded: %+v", a)
		}
	}
	want := "promote:ok promote:ok freeze:ok promote:refused promote:refused rollback:ok promote:ok unfreeze:ok"
	if strings.Join(got, " ") != want {
		t.Fatalf("audit\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}
