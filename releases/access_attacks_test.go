package releases_test

// Each test here is a way around a rule of who may do what that an
// attacker's review of the permission work found; each failed before its
// fix. The comments say how the attack went.

import (
	"context"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/releases"
)

func asP(p releases.Principal) context.Context {
	return releases.WithPrincipal(context.Background(), p)
}

// R1. Naming one session of a role in people makes the other sessions of
// the same role *another person*: alice asks under any other session name
// (a deployer through AWSDeploys) and approves her own promote as herself.
// Without the people entry the two sessions are one principal (refused).
func TestHoleAWSSessionEscapesFourEyes(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = &releases.Access{
		People: []releases.Person{
			{Name: "alice", AWS: []string{"arn:aws:sts::111122223333:assumed-role/Deploy/alice"}},
			{Name: "bob", AWS: []string{"arn:aws:sts::111122223333:assumed-role/Deploy/bob"}},
		},
		AWSDeploys: true,
	}
	h.svc.Sites[0].Approval = releases.Approval{Required: 1, Approvers: []string{"alice", "bob"}}
	h.publish("v1")
	asker := releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:sts::111122223333:assumed-role/Deploy/whatever"}
	alice := releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:sts::111122223333:assumed-role/Deploy/alice"}
	if !h.svc.Access.SamePerson(asker, releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:sts::111122223333:assumed-role/Deploy/other"}) {
		t.Fatal("precondition: two unlinked sessions of one role are one principal")
	}
	out, err := h.svc.Promote(asP(asker), releases.PromoteRequest{Site: "www", Version: "v1"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatalf("request: %+v %v", out, err)
	}
	done, err := h.svc.Approve(asP(alice), "www", out.Approval.ID, "", nil)
	if err == nil && done.Deploy != nil {
		t.Fatalf("alice (role Deploy, session 'alice') approved the request she made as role Deploy, session 'whatever': %s is live", done.Deploy.To)
	}
}

// R1b. A person identified by a session name of an ordinary role is
// whoever names their session so: alice assumes Deploy as "bob" and is bob.
func TestHoleAWSSessionNameImpersonates(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = &releases.Access{
		People: []releases.Person{
			{Name: "alice", Slack: []string{"UALICE"}},
			{Name: "bob", AWS: []string{"arn:aws:sts::111122223333:assumed-role/Deploy/bob"}},
		},
		AWSDeploys: true,
	}
	h.svc.Sites[0].Deployers = []string{"alice"}
	h.svc.Sites[0].Approval = releases.Approval{Required: 1, Approvers: []string{"alice", "bob"}}
	h.publish("v1")
	out, err := h.svc.Promote(asP(releases.Principal{Kind: releases.PrincipalSlack, ID: "UALICE"}), releases.PromoteRequest{Site: "www", Version: "v1"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatalf("request: %+v %v", out, err)
	}
	// alice's own credentials, with RoleSessionName=bob.
	aliceAsBob := releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:sts::111122223333:assumed-role/Deploy/bob"}
	done, err := h.svc.Approve(asP(aliceAsBob), "www", out.Approval.ID, "", nil)
	if err == nil && done.Deploy != nil {
		t.Fatalf("a session name chosen by the caller approved as bob (config accepted a session-name pattern of a plain role)")
	}
}

// R2. A token's roles are no ceiling: linking a read-only token to a person
// (to catch self-approval) makes it a deployer and approver wherever the
// person is one.
func TestHoleLinkedReaderTokenApproves(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = &releases.Access{
		People: []releases.Person{{Name: "alice", Slack: []string{"UALICE"}, Tokens: []string{"alice-dashboard"}}},
		Tokens: map[string][]releases.Grant{"alice-dashboard": {{Role: releases.RoleReader}}},
	}
	h.svc.Sites[0].Deployers = []string{"alice"}
	h.publish("v1")
	tok := releases.Principal{Kind: releases.PrincipalToken, ID: "alice-dashboard"}
	if _, err := h.svc.Promote(asP(tok), releases.PromoteRequest{Site: "www", Version: "v1"}, nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("a token whose roles are [reader] promoted: err=%v live=%v", err, h.cdn)
	}
}

// R3. The typed actor (the API body's "actor", $DEPLOYBOT_ACTOR) is
// recorded as the audit entry's Actor, with no trace of the verified
// identity, when the request is refused before authorize: a bad "until",
// an overlong reason, an unknown request id.
func TestHoleTypedActorForgesAudit(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = &releases.Access{Tokens: map[string][]releases.Grant{"dash": {{Role: releases.RoleReader, Site: "docs"}}}}
	mallory := releases.Principal{Kind: releases.PrincipalToken, ID: "dash", Label: "UBOSS"}
	h.svc.Freeze(asP(mallory), releases.FreezeRequest{Site: "www", Until: "whenever", Reason: "x", Actor: "UBOSS"})
	h.svc.Reject(asP(mallory), "www", "no-such-request", "UBOSS", "nope")
	hist, _ := h.svc.History(context.Background(), "www", 0)
	for _, e := range hist {
		if e.Actor == "UBOSS" {
			t.Errorf("audit entry %q/%s records the typed name as its actor (label %q); the token %s is nowhere", e.Action, e.Result, e.Label, mallory)
		}
	}
}

// R4. An approval that completes while the site is locked (or verify
// fails, or the promote now goes back) is recorded as approved, and
// nothing is deployed: the request can neither be approved again nor is
// it failed.
func TestHoleApprovedButNeverDeployed(t *testing.T) {
	h := newHarness(t)
	h.svc.Sites[0].Approval = releases.Approval{Required: 1}
	h.publish("v1", "v2")
	ctx := context.Background()
	out, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatal(out, err)
	}
	if _, err := h.svc.LockSite(ctx, "www", "carol", "investigating"); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Approve(ctx, "www", out.Approval.ID, "bob", nil)
	t.Logf("approve: %v", err)
	a, _ := h.svc.Approval(ctx, "www", out.Approval.ID)
	cur, _ := h.cdn.Current(ctx, h.svc.Sites[0])
	if a.State == releases.ApprovalApproved && cur.Version != "v1" {
		t.Fatalf("request %s reads %s (by %s) but %q is live: nothing was deployed and the approval is spent", a.ID, a.State, a.DecidedBy, cur.Version)
	}
}

// vanishing deletes a version's manifest right after Approve's check read
// its ETag (a prune or a hand in between), so the deploy finds no manifest.
type vanishing struct {
	*fakeBucket
	once    sync.Once
	version string
}

func (v *vanishing) ManifestETag(ctx context.Context, s releases.Site, ver string) (string, error) {
	etag, err := v.fakeBucket.ManifestETag(ctx, s, ver)
	if ver == v.version && err == nil {
		v.once.Do(func() {
			v.fakeBucket.mu.Lock()
			delete(v.fakeBucket.manifests, ver)
			v.fakeBucket.mu.Unlock()
		})
	}
	return etag, err
}

// R5. Approve's "pruned between the check and the deploy: fails, never
// approved" never fires: promote's ENOTFOUND does not wrap ErrNoManifest.
func TestHoleGoneAfterCheckStaysApproved(t *testing.T) {
	h := newHarness(t)
	h.svc.Sites[0].Approval = releases.Approval{Required: 1}
	h.publish("v1")
	ctx := context.Background()
	out, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatal(out, err)
	}
	h.svc.Bucket = &vanishing{fakeBucket: h.bucket, version: "v1"}
	_, err = h.svc.Approve(ctx, "www", out.Approval.ID, "bob", nil)
	t.Logf("approve: %v", err)
	a, _ := h.svc.Approval(ctx, "www", out.Approval.ID)
	if a.State != releases.ApprovalFailed {
		t.Fatalf("the release vanished before the deploy; the request reads %s, want failed", a.State)
	}
}

// R6. Reads are in the permission table but nothing checks them: a token
// that holds a role on docs alone diffs and verifies www (each loads whole
// manifests into memory).
func TestHoleScopedTokenReadsOtherSite(t *testing.T) {
	h := newHarness(t)
	h.svc.Sites = append(h.svc.Sites, releases.Site{Name: "docs", Bucket: "b", Prefix: "docs/", DistributionID: "E2", Strategy: "fake"})
	h.svc.Access = &releases.Access{Tokens: map[string][]releases.Grant{"docs-ci": {{Role: releases.RoleDeployer, Site: "docs"}}}}
	tok := releases.Principal{Kind: releases.PrincipalToken, ID: "docs-ci"}
	if ok, _ := h.svc.Access.Holds(context.Background(), h.svc.Sites[0], tok, releases.RoleReader); ok {
		t.Fatal("precondition: Holds says docs-ci is no reader of www")
	}
	h.publish("v1", "v2")
	if _, err := h.svc.Diff(asP(tok), "www", "v1", "v2"); err == nil {
		t.Errorf("docs-ci (no role on www) diffed www")
	}
	if _, err := h.svc.Verify(asP(tok), "www", "v1"); err == nil {
		t.Errorf("docs-ci (no role on www) verified www")
	}
}

// R7. The refusal to lift someone else's freeze names the site twice.
func TestHoleLiftFreezeMessage(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = &releases.Access{Tokens: map[string][]releases.Grant{
		"a": {{Role: releases.RoleDeployer}}, "b": {{Role: releases.RoleDeployer}}}}
	if _, err := h.svc.Freeze(asP(releases.Principal{Kind: releases.PrincipalToken, ID: "a"}), releases.FreezeRequest{Site: "www", Until: "2h", Reason: "launch"}); err != nil {
		t.Fatal(err)
	}
	_, err := h.svc.Unfreeze(asP(releases.Principal{Kind: releases.PrincipalToken, ID: "b"}), "www", false, "")
	if strings.Contains(releases.ErrorMessage(err), "www of www") {
		t.Errorf("message: %v", err)
	}
}

// R8. A Rollback button names the live release it was made under by name
// only: once that name is pruned, published again and promoted, the old
// button is no longer stale and acts (v1 goes live without anyone being
// asked what is live now).
func TestHoleStaleButtonAfterNameReuse(t *testing.T) {
	h := newHarness(t)
	h.svc.Sites[0].Retention = releases.Policy{Keep: 1, KeepDeployed: 1, MinAge: time.Nanosecond}
	ctx := context.Background()
	h.publish("v1", "main", "main2", "main3")
	var underMain string // the deploy that made the first main live
	for _, v := range []string{"v1", "main", "main2", "main3"} {
		if out := h.promote(t, v); v == "main" {
			underMain = out.Deploy.ID
		}
	}
	// The reply of "main is live" carried the button www/v1/main.
	if _, err := h.svc.PinRelease(ctx, "www", "v1", "alice", "keep"); err != nil {
		t.Fatal(err)
	}
	h.clockMu.Lock()
	h.now = h.now.Add(time.Hour)
	h.clockMu.Unlock()
	rep, err := h.svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "alice"})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("deleted %+v kept %+v skipped %q", rep.Deleted, rep.Kept, rep.Skipped)
	if _, ok := h.bucket.manifests["main"]; ok {
		t.Fatal("main was not pruned")
	}
	// "main" published again with new content, and promoted.
	h.bucket.manifests["main"] = &releases.Manifest{Version: "main", PublishedAt: h.now.Add(time.Hour),
		Files: []releases.ManifestFile{{Path: "index.html", Size: 11}}}
	delete(h.bucket.gone, "main")
	h.promote(t, "main")
	_, err = h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Version: "v1", Actor: "bob", FromDeploy: underMain}, nil)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "since") {
		t.Fatalf("the button made under the old main acted under the new main: %s is live", "v1")
	}
}
