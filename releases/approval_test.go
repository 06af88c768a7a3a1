package releases_test

import (
	"context"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

type approvalLog struct {
	mu     sync.Mutex
	states []string
}

func (l *approvalLog) ApprovalChanged(_ context.Context, _ releases.Site, a releases.ApprovalRequest) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.states = append(l.states, string(a.State)+"/"+itoa(len(a.Approvals)))
}

func itoa(n int) string { return string(rune('0' + n)) }

func approvalHarness(t *testing.T, required int) (*harness, *approvalLog) {
	h := newHarness(t)
	h.svc.Sites[0].Approval = releases.Approval{Required: required, Timeout: 30 * time.Minute}
	log := &approvalLog{}
	h.svc.OnApproval = log
	h.publish("v1", "v2", "v3")
	h.svc.Sites[0].Approval.Required = 0
	h.promote(t, "v1")
	h.svc.Sites[0].Approval.Required = required
	return h, log
}

func auditTrail(t *testing.T, h *harness) string {
	t.Helper()
	es, err := h.svc.History(context.Background(), "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	var out []string
	for i := len(es) - 1; i >= 0; i-- {
		out = append(out, es[i].Actor+":"+es[i].Action+":"+es[i].Result)
	}
	// As written, not only as History shows them (which reads records of
	// older versions in today's words): every result is one of the five.
	raw, err := h.db.Audit(context.Background(), "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range raw {
		if !releases.IsResult(e.Result) {
			t.Fatalf("recorded result %q outside the five: %+v", e.Result, e)
		}
	}
	return strings.Join(out, " ")
}

// Records written before the one vocabulary (still in old stores and in
// the bucket's history, which is immutable) read in today's words.
func TestOlderRecordsReadInTheFiveResults(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	at := h.now
	old := []releases.AuditEntry{
		{Time: at.Add(1 * time.Second), Site: "www", Actor: "alice", Action: "promote", Result: "pending", Detail: "v2 (request r1 waits for 1 approval(s))"},
		{Time: at.Add(2 * time.Second), Site: "www", Actor: "deploybot", Action: "approval", Result: "expired", Detail: "r1: promote of v2 by alice"},
		{Time: at.Add(3 * time.Second), Site: "www", Actor: "bob", Action: "prune", Result: "skipped", Detail: "a deploy holds the site"},
		{Time: at.Add(4 * time.Second), Site: "www", Actor: "bob", Action: "lock", Result: "ok", Detail: "launch"},
	}
	if err := h.db.ImportAudit(ctx, old); err != nil {
		t.Fatal(err)
	}
	es, err := h.svc.History(ctx, "www", 0)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for i := len(es) - 1; i >= 0; i-- {
		got = append(got, es[i].Actor+":"+es[i].Action+":"+es[i].Result+":"+es[i].Detail)
	}
	want := "alice:approval-requested:ok:v2 (request r1 waits for 1 approval(s)) deploybot:approval-expired:ok:r1: promote of v2 by alice " +
		"bob:prune:refused:a deploy holds the site bob:lock:ok:launch"
	if strings.Join(got, " ") != want {
		t.Fatalf("history\n%s\nwant\n%s", strings.Join(got, " "), want)
	}
}

// The requester cannot approve; another approver's approval runs the
// deploy under the request's id; a decided request takes no more
// decisions; a second request waits for the first to end; rollbacks do
// not wait at all.
func TestApprovalByAnotherRunsTheDeploy(t *testing.T) {
	h, log := approvalHarness(t, 1)
	ctx := context.Background()
	out, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice", Reason: "ship"}, nil)
	if err != nil || out.Approval == nil || out.Deploy != nil || out.Approval.State != releases.ApprovalPending || out.Approval.From != "v1" {
		t.Fatalf("promote on an approval site: %+v %v", out, err)
	}
	id := out.Approval.ID
	if h.cdn.flips != 1 {
		t.Fatalf("a pending request flipped the CDN")
	}
	if l, _ := h.db.Lock(ctx, "www"); l != nil {
		t.Fatalf("a pending request holds a lock: %+v", l)
	}
	_, err = h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "carol"}, nil)
	var pe *releases.PendingError
	if !errors.As(err, &pe) || pe.Request.ID != id || releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("a second request: %v", err)
	}
	if _, err := h.svc.Approve(ctx, "www", id, "alice", nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED || !strings.Contains(err.Error(), "cannot approve") {
		t.Fatalf("self-approval: %v", err)
	}
	var events []releases.EventType
	done, err := h.svc.Approve(ctx, "www", id, "bob", func(e releases.Event) { events = append(events, e.Type) })
	if err != nil || done.Deploy == nil || done.Deploy.ID != id || done.Deploy.Actor != "alice" || strings.Join(done.Deploy.ApprovedBy, ",") != "bob" {
		t.Fatalf("approval: %+v %v", done, err)
	}
	if len(events) == 0 || events[len(events)-1] != releases.EventDeployFinished {
		t.Fatalf("the approver's progress saw %v", events)
	}
	if live, _, _ := h.db.Live(ctx, "www"); live.Version != "v2" {
		t.Fatalf("live %+v", live)
	}
	if _, err := h.svc.Approve(ctx, "www", id, "carol", nil); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "was approved by bob") {
		t.Fatalf("approving a decided request: %v", err)
	}
	if _, err := h.svc.Approve(ctx, "www", "nope", "carol", nil); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("approving an unknown request: %v", err)
	}
	// Rollbacks never wait.
	if out, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "alice", Reason: "incident"}, nil); err != nil || out.Deploy == nil {
		t.Fatalf("rollback on an approval site: %+v %v", out, err)
	}
	want := "alice:promote:ok alice:approval-requested:ok carol:promote:refused alice:approve:refused alice:promote:ok bob:approve:ok carol:approve:refused carol:approve:refused alice:rollback:ok"
	if got := auditTrail(t, h); got != want {
		t.Fatalf("audit\n%s\nwant\n%s", got, want)
	}
	es, _ := h.svc.History(ctx, "www", 0)
	for _, e := range es {
		if e.Action == "promote" && e.Result == "ok" && strings.Contains(e.Detail, "v2") && !strings.Contains(e.Detail, "approved by bob") {
			t.Fatalf("the deploy's record does not say who approved: %+v", e)
		}
	}
	if got := strings.Join(log.states, " "); got != "pending/0 approved/1" {
		t.Fatalf("notifier heard %s", got)
	}
}

func TestApprovalNeedsEveryRequiredApprover(t *testing.T) {
	h, _ := approvalHarness(t, 2)
	ctx := context.Background()
	out, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	id := out.Approval.ID
	half, err := h.svc.Approve(ctx, "www", id, "bob", nil)
	if err != nil || half.Deploy != nil || half.Approval == nil || len(half.Approval.Approvals) != 1 || half.Approval.State != releases.ApprovalPending {
		t.Fatalf("first of two approvals: %+v %v", half, err)
	}
	if _, err := h.svc.Approve(ctx, "www", id, "bob", nil); releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("bob twice: %v", err)
	}
	full, err := h.svc.Approve(ctx, "www", id, "carol", nil)
	if err != nil || full.Deploy == nil || strings.Join(full.Deploy.ApprovedBy, ",") != "bob,carol" {
		t.Fatalf("second approval: %+v %v", full, err)
	}
}

// A rejection and a timeout end a request, recorded with who and why; a
// new request may then be made.
func TestRejectAndTimeoutAreRecorded(t *testing.T) {
	h, log := approvalHarness(t, 1)
	ctx := context.Background()
	out, _ := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
	a, err := h.svc.Reject(ctx, "www", out.Approval.ID, "bob", "not during the sale")
	if err != nil || a.State != releases.ApprovalRejected || a.DecidedBy != "bob" || a.Why != "not during the sale" {
		t.Fatalf("reject: %+v %v", a, err)
	}
	if _, err := h.svc.Approve(ctx, "www", a.ID, "carol", nil); !strings.Contains(releases.ErrorMessage(err), "was rejected by bob") {
		t.Fatalf("approve after reject: %v", err)
	}

	out, err = h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatalf("a new request after the rejection: %+v %v", out, err)
	}
	h.now = h.now.Add(31 * time.Minute)
	if got, _ := h.svc.Approval(ctx, "www", out.Approval.ID); got.State != releases.ApprovalExpired {
		t.Fatalf("a request past its time reads %s", got.State)
	}
	expired, err := h.svc.ExpireApprovals(ctx, "www")
	if err != nil || len(expired) != 1 || expired[0].DecidedBy != releases.AutoActor {
		t.Fatalf("expire: %+v %v", expired, err)
	}
	if again, _ := h.svc.ExpireApprovals(ctx, "www"); len(again) != 0 {
		t.Fatalf("expired twice: %+v", again)
	}
	if _, err := h.svc.Approve(ctx, "www", out.Approval.ID, "bob", nil); !strings.Contains(releases.ErrorMessage(err), "was expired by deploybot") {
		t.Fatalf("approve after expiry: %v", err)
	}
	if out, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "alice"}, nil); err != nil || out.Approval == nil {
		t.Fatalf("a new request after the expiry: %+v %v", out, err)
	}
	want := "alice:promote:ok alice:approval-requested:ok bob:reject:ok carol:approve:refused alice:approval-requested:ok deploybot:approval-expired:ok bob:approve:refused alice:approval-requested:ok"
	if got := auditTrail(t, h); got != want {
		t.Fatalf("audit\n%s\nwant\n%s", got, want)
	}
	if got := strings.Join(log.states, " "); got != "pending/0 rejected/0 pending/0 expired/0 pending/0" {
		t.Fatalf("notifier heard %s", got)
	}
	if as, _ := h.svc.Approvals(ctx, "www", 0); len(as) != 3 || as[0].State != releases.ApprovalPending {
		t.Fatalf("approvals %+v", as)
	}
}

// A freeze that came after the request holds its approval, and the request
// keeps waiting; once the freeze is lifted the approval runs the deploy.
func TestApprovalInAFreezeWaits(t *testing.T) {
	h, _ := approvalHarness(t, 1)
	ctx := context.Background()
	out, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatalf("promote: %+v %v", out, err)
	}
	if _, err := h.svc.Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "1h", Reason: "incident", Actor: "ops"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Approve(ctx, "www", out.Approval.ID, "bob", nil)
	var ge *releases.GuardError
	if !errors.As(err, &ge) {
		t.Fatalf("an approval in a freeze: %v", err)
	}
	if a, _ := h.svc.Approval(ctx, "www", out.Approval.ID); a.State != releases.ApprovalPending || len(a.Approvals) != 0 {
		t.Fatalf("the request after a held approval: %+v", a)
	}
	if _, err := h.svc.Unfreeze(ctx, "www", false, "ops"); err != nil {
		t.Fatal(err)
	}
	if done, err := h.svc.Approve(ctx, "www", out.Approval.ID, "bob", nil); err != nil || done.Deploy == nil {
		t.Fatalf("the approval after the freeze: %+v %v", done, err)
	}
}
