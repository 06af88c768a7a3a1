package server_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// A freeze through the API holds promotes (409, naming it) and shows in
// status; unfreeze lifts it; both are audited as the API's.
func TestAPIFreezeAndUnfreeze(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	ctx := context.Background()
	c := e.client()
	fs, err := c.Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "3d", Reason: "year end", Actor: "ops"})
	if err != nil || len(fs) != 1 || fs[0].By != "token:api" || !fs[0].Until.Equal(fs[0].From.Add(72*time.Hour)) {
		t.Fatalf("freeze: %+v %v", fs, err)
	}
	st, err := c.Status(ctx, "www")
	if err != nil || st.Freeze == nil || st.Freeze.Reason != "year end" {
		t.Fatalf("status: %+v %v", st, err)
	}
	_, err = c.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "ops"}, nil)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(releases.ErrorMessage(err), "frozen by token:api until") {
		t.Fatalf("promote in a freeze: %v", err)
	}
	// The way past the freeze is a hint each door words; the message
	// names no door's flag.
	if releases.ErrorHint(err) != releases.HintOverrideFreeze || strings.Contains(releases.ErrorMessage(err), "--") {
		t.Fatalf("promote in a freeze: hint %q, message %q", releases.ErrorHint(err), releases.ErrorMessage(err))
	}
	if _, err := c.Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "someday", Reason: "x"}); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("a bad until: %v", err)
	}
	lifted, err := c.Unfreeze(ctx, "www", false, "ops")
	if err != nil || len(lifted) != 1 {
		t.Fatalf("unfreeze: %+v %v", lifted, err)
	}
	if lifted, err := c.Unfreeze(ctx, "", true, "ops"); err != nil || len(lifted) != 0 {
		t.Fatalf("unfreeze all with none held: %+v %v", lifted, err)
	}
	h, _ := e.Service.History(ctx, "www", 0)
	var got []string
	for _, a := range h {
		got = append(got, a.Door+":"+a.Action+":"+a.Result)
	}
	// The second unfreeze found nothing to lift: it changed nothing, and
	// is not recorded.
	if !strings.HasPrefix(strings.Join(got, " "), "api:unfreeze:ok api:freeze:refused api:promote:refused api:freeze:ok") {
		t.Fatalf("audit %v", got)
	}
}

// Four eyes through the API: the promote's result carries the waiting
// request, the requester cannot approve (whatever name it types), another
// token's approval streams the deploy, a reject ends a request, and the
// list shows them all. Callers are their tokens' names.
func TestAPIApprovals(t *testing.T) {
	e := newEnv(t)
	e.Service.Sites[0].Approval = releases.Approval{Required: 1, Timeout: time.Hour}
	e.publish("v1", "v2")
	e.start()
	e.flow()
	ctx := context.Background()
	cs := e.named(map[string][]releases.Role{"alice": {releases.RoleDeployer, releases.RoleApprover}, "bob": {releases.RoleApprover}, "ci": {releases.RoleDeployer}})
	c := cs["alice"]
	out, err := c.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil || out.Deploy != nil || out.Approval.Actor != "token:alice" {
		t.Fatalf("promote: %+v %v", out, err)
	}
	id := out.Approval.ID
	for _, name := range []string{"alice", "ALICE", "bob", "Bob"} {
		if _, err := c.Approve(ctx, "www", id, name, nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
			t.Fatalf("self-approval typed as %q: %v", name, err)
		}
	}
	// A deployer's token is no approver, whatever it types.
	if _, err := cs["ci"].Approve(ctx, "www", id, "bob", nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("approval by a deployer's token: %v", err)
	}
	var phases []releases.Phase
	done, err := cs["bob"].Approve(ctx, "www", id, "robert", func(e releases.Event) {
		if e.Type == releases.EventPhaseStarted {
			phases = append(phases, e.Phase)
		}
	})
	if err != nil || done.Deploy == nil || done.Deploy.ID != id || len(phases) == 0 {
		t.Fatalf("approve: %+v %v (phases %v)", done, err, phases)
	}
	got, err := c.Approval(ctx, "www", id)
	if err != nil || got.State != releases.ApprovalApproved || got.DecidedBy != "token:bob" {
		t.Fatalf("the approved request: %+v %v", got, err)
	}
	out, err = c.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatalf("second promote: %+v %v", out, err)
	}
	if _, err := cs["ci"].Reject(ctx, "www", out.Approval.ID, "bob", "not now"); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("a reject by a deployer's token: %v", err)
	}
	rej, err := cs["bob"].Reject(ctx, "www", out.Approval.ID, "bob", "not now")
	if err != nil || rej.State != releases.ApprovalRejected || rej.Why != "not now" {
		t.Fatalf("reject: %+v %v", rej, err)
	}
	if _, err := c.Approval(ctx, "www", "nope"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("an unknown request: %v", err)
	}
}
