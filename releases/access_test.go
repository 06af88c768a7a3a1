package releases_test

import (
	"context"
	"errors"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// groups is a Directory: Slack user groups by id.
type groups map[string][]string

func (g groups) InGroup(_ context.Context, group, user string) (bool, error) {
	if group == "SBROKEN" {
		return false, errors.New("slack did not answer")
	}
	for _, u := range g[group] {
		if u == user {
			return true, nil
		}
	}
	return false, nil
}

var (
	slackAlice = releases.Principal{Kind: releases.PrincipalSlack, ID: "UALICE"}
	slackBob   = releases.Principal{Kind: releases.PrincipalSlack, ID: "UBOB"}
	slackCarol = releases.Principal{Kind: releases.PrincipalSlack, ID: "UCAROL"}
	tokAlice   = releases.Principal{Kind: releases.PrincipalToken, ID: "alice-laptop", Label: "alice"}
	tokCI      = releases.Principal{Kind: releases.PrincipalToken, ID: "ci", Label: "ALICE"}
	tokCIFold  = releases.Principal{Kind: releases.PrincipalToken, ID: "CI", Label: "bob"}
	tokReview  = releases.Principal{Kind: releases.PrincipalToken, ID: "review", Label: "Bob"}
	awsAlice   = releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_Deploy_0a1b/alice@example.com"}
	awsRoleA   = releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:sts::111122223333:assumed-role/ci-deploy/run-1"}
	awsRoleB   = releases.Principal{Kind: releases.PrincipalAWS, ID: "arn:aws:sts::111122223333:assumed-role/CI-Deploy/run-2"}
)

func testAccess() *releases.Access {
	return &releases.Access{
		People: []releases.Person{
			{Name: "alice", Slack: []string{"UALICE"}, Tokens: []string{"alice-laptop"}, AWS: []string{"arn:aws:sts::111122223333:assumed-role/AWSReservedSSO_*/alice@example.com"}},
			{Name: "carol", Slack: []string{"UCAROL"}},
		},
		Tokens: map[string][]releases.Grant{
			"ci":           {{Role: releases.RoleDeployer}},
			"review":       {{Role: releases.RoleApprover, Site: "www"}},
			"alice-laptop": {{Role: releases.RoleDeployer}},
		},
		AWSDeploys: true,
		Directory:  groups{"SDEPLOY": {"UBOB"}},
	}
}

func TestSamePerson(t *testing.T) {
	a := testAccess()
	for _, c := range []struct {
		x, y releases.Principal
		same bool
	}{
		{slackAlice, slackAlice, true},
		{slackAlice, slackBob, false},
		// alice's identities are linked across doors by the people list.
		{slackAlice, tokAlice, true},
		{tokAlice, awsAlice, true},
		{slackAlice, awsAlice, true},
		// A token is one identity whatever label its caller types, and
		// token names compare regardless of case.
		{tokCI, tokCIFold, true},
		{tokCI, tokReview, false},
		// Two sessions of one role are one principal: whoever may assume
		// the role names the session.
		{awsRoleA, awsRoleB, true},
		{awsRoleA, awsAlice, false},
		// A token's label never makes it someone: "ALICE" on the ci token
		// is not alice.
		{tokCI, slackAlice, false},
		{slackCarol, slackAlice, false},
	} {
		if got := a.SamePerson(c.x, c.y); got != c.same {
			t.Errorf("SamePerson(%s, %s) = %v, want %v", c.x, c.y, got, c.same)
		}
	}
}

func TestParsePrincipalRoundTrips(t *testing.T) {
	for _, p := range []releases.Principal{slackAlice, {Kind: releases.PrincipalToken, ID: "ci"}, awsRoleA, releases.System, {Kind: releases.PrincipalLocal, ID: "you"}} {
		if got := releases.ParsePrincipal(p.String()); got.Kind != p.Kind || got.ID != p.ID {
			t.Errorf("ParsePrincipal(%q) = %+v, want %+v", p.String(), got, p)
		}
	}
	// What the API recorded before identities were verified is nobody in
	// particular: only the same text.
	if got := releases.ParsePrincipal("api:alice"); got.String() != "api:alice" || got.Kind == releases.PrincipalToken {
		t.Errorf("legacy actor read as %+v", got)
	}
}

// The permission table holds at the service for every door: who may
// promote, override a freeze, approve, lift someone else's freeze.
func TestPermissionsAreDecidedByTheService(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = testAccess()
	h.svc.Sites[0].Deployers = []string{"UALICE", "SDEPLOY", "carol"}
	h.svc.Sites[0].Approval = releases.Approval{Approvers: []string{"carol", "UALICE"}}
	h.publish("v1", "v2", "v3")
	as := func(p releases.Principal) context.Context { return releases.WithPrincipal(context.Background(), p) }
	promote := func(p releases.Principal, v string) error {
		_, err := h.svc.Promote(as(p), releases.PromoteRequest{Site: "www", Version: v, Actor: "typed-name"}, nil)
		return err
	}
	// No identity at all: refused, even with a name.
	if _, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v1", Actor: "UALICE"}, nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("a promote without an identity: %v", err)
	}
	mallory := releases.Principal{Kind: releases.PrincipalSlack, ID: "UMALLORY"}
	if err := promote(mallory, "v1"); releases.ErrorCode(err) != releases.EUNAUTHORIZED || !strings.Contains(err.Error(), "only the deployers of www") {
		t.Fatalf("a non-deployer promotes: %v", err)
	}
	for _, p := range []releases.Principal{slackAlice, slackBob, tokCI, awsRoleA} {
		if err := promote(p, "v1"); err != nil && !strings.Contains(err.Error(), "already live") {
			t.Fatalf("%s (a deployer) may not promote: %v", p, err)
		}
	}
	// The recorded actor is the identity; what was typed is its label.
	audit, _ := h.svc.History(context.Background(), "www", 1)
	if audit[0].Actor != "arn:aws:sts::111122223333:assumed-role/ci-deploy/run-1" || audit[0].Label != "" {
		t.Fatalf("audit %+v", audit[0])
	}
	if _, err := h.svc.Promote(as(tokCI), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "api:alice"}, nil); err != nil {
		t.Fatal(err)
	}
	audit, _ = h.svc.History(context.Background(), "www", 1)
	if audit[0].Actor != "token:ci" || audit[0].Label != "ALICE" {
		t.Fatalf("audit of a token's promote %+v", audit[0])
	}

	// A freeze set by bob (a deployer through his group).
	if _, err := h.svc.Freeze(as(slackBob), releases.FreezeRequest{Site: "www", Until: "2h", Reason: "launch", Actor: "UBOB"}); err != nil {
		t.Fatal(err)
	}
	// The ci token (a deployer, not an approver) can neither override it,
	// nor lift it, nor replace it with a shorter one.
	if _, err := h.svc.Promote(as(tokCI), releases.PromoteRequest{Site: "www", Version: "v3", Override: "hotfix"}, nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("a deployer overrides a freeze: %v", err)
	}
	if _, err := h.svc.Unfreeze(as(tokCI), "www", false, "ci"); releases.ErrorCode(err) != releases.EUNAUTHORIZED || !strings.Contains(err.Error(), "frozen by UBOB") {
		t.Fatalf("a deployer lifts someone else's freeze: %v", err)
	}
	if _, err := h.svc.Freeze(as(tokCI), releases.FreezeRequest{Site: "www", Until: "1m", Reason: "shorter", Actor: "ci"}); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("a deployer replaces someone else's freeze: %v", err)
	}
	if f, _ := h.db.Freeze(context.Background(), "www"); f == nil || f.By != "UBOB" {
		t.Fatalf("the freeze became %+v", f)
	}
	// Its author may lift it; so may an approver (carol, through her person).
	if _, err := h.svc.Freeze(as(slackBob), releases.FreezeRequest{Site: "www", Until: "3h", Reason: "longer", Actor: "UBOB"}); err != nil {
		t.Fatalf("the author replaces their own freeze: %v", err)
	}
	if lifted, err := h.svc.Unfreeze(as(slackCarol), "www", false, "UCAROL"); err != nil || len(lifted) != 1 {
		t.Fatalf("an approver lifts a freeze: %v %v", lifted, err)
	}
	// A token scoped to another site holds nothing here.
	other := testAccess()
	other.Tokens["review"] = []releases.Grant{{Role: releases.RoleApprover, Site: "docs"}}
	h.svc.Access = other
	if err := h.svc.UnpinRelease(as(tokReview), "www", "v1", "review"); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("a token of another site unpins: %v", err)
	}
}

// Four eyes are two people: an approval is compared by identity, across
// doors and regardless of the name typed, never by that name.
func TestFourEyesAreTwoPeople(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = testAccess()
	h.svc.Access.Tokens["bob-token"] = []releases.Grant{{Role: releases.RoleApprover}}
	h.svc.Sites[0].Deployers = []string{"UALICE", "SDEPLOY"}
	h.svc.Sites[0].Approval = releases.Approval{Required: 2, Approvers: []string{"alice", "carol", "SDEPLOY"}}
	h.publish("v1")
	as := func(p releases.Principal) context.Context { return releases.WithPrincipal(context.Background(), p) }
	// alice asks through the API with her own token.
	out, err := h.svc.Promote(as(tokAlice), releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatalf("the request: %+v %v", out, err)
	}
	id := out.Approval.ID
	if out.Approval.Actor != "token:alice-laptop" {
		t.Fatalf("the request is recorded as asked by %q", out.Approval.Actor)
	}
	// alice in Slack is alice: no self-approval across doors; nor through
	// her SSO session on the command line.
	for _, p := range []releases.Principal{slackAlice, awsAlice} {
		if _, err := h.svc.Approve(as(p), "www", id, p.ID, nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED || !strings.Contains(err.Error(), "cannot approve") {
			t.Fatalf("alice approves her own request as %s: %v", p, err)
		}
	}
	// A name typed into the API approves nothing: the ci token is no
	// approver, whatever it calls itself.
	if _, err := h.svc.Approve(as(tokCI), "www", id, "carol", nil); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("a token approves by typing an approver's name: %v", err)
	}
	bobTok := releases.Principal{Kind: releases.PrincipalToken, ID: "bob-token", Label: "bob"}
	if a, err := h.svc.Approve(as(bobTok), "www", id, "bob", nil); err != nil || a.Approval == nil || len(a.Approval.Approvals) != 1 {
		t.Fatalf("bob's approval: %+v %v", a, err)
	}
	// The same token under another label is still bob.
	bobFold := releases.Principal{Kind: releases.PrincipalToken, ID: "bob-token", Label: "Bob"}
	if _, err := h.svc.Approve(as(bobFold), "www", id, "Bob", nil); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "approved") {
		t.Fatalf("a second approval by bob counted: %v", err)
	}
	// carol in Slack is a second person: the promote runs, as alice's.
	done, err := h.svc.Approve(as(slackCarol), "www", id, "UCAROL", nil)
	if err != nil || done.Deploy == nil {
		t.Fatalf("carol's approval: %+v %v", done, err)
	}
	if d := done.Deploy; d.Actor != "token:alice-laptop" || strings.Join(d.ApprovedBy, ",") != "token:bob-token,UCAROL" {
		t.Fatalf("deploy %+v", d)
	}
}

// A request whose release is pruned, or published again with other
// content, ends as failed, never approved; prune keeps a release that a
// request waits for.
func TestApprovalOfAGoneRelease(t *testing.T) {
	h := newHarness(t)
	h.svc.Sites[0].Approval = releases.Approval{Required: 1}
	h.svc.Sites[0].Retention = releases.Policy{Keep: 1}
	h.publish("v1", "v2", "v3")
	ctx := context.Background()
	out, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v1", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatal(out, err)
	}
	rep, err := h.svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "cron"})
	if err != nil {
		t.Fatal(err)
	}
	kept := map[string]string{}
	for _, k := range rep.Kept {
		kept[k.Version] = k.Reason
	}
	if kept["v1"] != releases.KeepApproval {
		t.Fatalf("prune did not keep the release waiting for approval: kept %v, deleted %+v", kept, rep.Deleted)
	}
	// Deleted anyway (by hand, or by another deploybot): the approval fails.
	delete(h.bucket.manifests, "v1")
	if _, err := h.svc.Approve(ctx, "www", out.Approval.ID, "bob", nil); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "gone") {
		t.Fatalf("approving a gone release: %v", err)
	}
	a, _ := h.svc.Approval(ctx, "www", out.Approval.ID)
	if a.State != releases.ApprovalFailed {
		t.Fatalf("the request ended as %s", a.State)
	}
	// Published again with other content while waiting: fails too.
	out, err = h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
	if err != nil || out.Approval == nil {
		t.Fatal(out, err)
	}
	m := *h.bucket.manifests["v2"]
	m.Commit = "other build"
	h.bucket.manifests["v2"] = &m
	if _, err := h.svc.Approve(ctx, "www", out.Approval.ID, "bob", nil); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "published again") {
		t.Fatalf("approving a re-published release: %v", err)
	}
	if cur, _ := h.cdn.Current(ctx, h.svc.Sites[0]); cur.Version == "v2" {
		t.Fatal("the re-published build went live")
	}
}
