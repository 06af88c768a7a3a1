package cloud_test

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

func TestPrincipalARN(t *testing.T) {
	for _, tc := range []struct{ in, want string }{
		{"arn:aws:sts::123456789012:assumed-role/deploybot-bot/i-0abc", "arn:aws:iam::123456789012:role/deploybot-bot"},
		{"arn:aws-cn:sts::123456789012:assumed-role/bot/session", "arn:aws-cn:iam::123456789012:role/bot"},
		{"arn:aws:iam::123456789012:user/alice", "arn:aws:iam::123456789012:user/alice"},
		{"arn:aws:iam::123456789012:role/team/bot", "arn:aws:iam::123456789012:role/team/bot"},
		{"arn:aws:sts::123456789012:federated-user/bob", "arn:aws:sts::123456789012:federated-user/bob"},
		{"not an arn", "not an arn"},
	} {
		if got := cloud.PrincipalARN(tc.in); got != tc.want {
			t.Errorf("PrincipalARN(%q) = %q, want %q", tc.in, got, tc.want)
		}
	}
}

// permRig is the stand-in's IAM with a bot role whose policy give sets,
// an admin that may simulate it, and the bot's whole policy for one site.
type permRig struct {
	srv      *localaws.Server
	settings func(key string) cloud.Settings
	admin    cloud.Simulator
	full     cloud.PolicyDocument
}

const permRole = "arn:aws:iam::" + localaws.StandInAccount + ":role/deploybot-bot"

func newPermRig(t *testing.T) *permRig {
	t.Helper()
	srv, err := localaws.New(localaws.Options{DataDir: t.TempDir(), Identities: map[string]string{
		"AKIDBOT": "arn:aws:sts::" + localaws.StandInAccount + ":assumed-role/deploybot-bot/serve-1"}})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	r := &permRig{srv: srv, settings: func(key string) cloud.Settings {
		return cloud.Settings{Region: "us-east-1", Endpoint: api.URL, Credentials: cloud.StaticCredentials(key, "secret"), MaxAttempts: 1}
	}}
	admin, err := cloud.NewIAMClient(context.Background(), r.settings("AKIDADMIN"))
	if err != nil {
		t.Fatal(err)
	}
	r.admin = admin
	site := releases.Site{Name: "www", Install: "test", Bucket: "perm-site", Prefix: "www/", DistributionID: "E1PERM"}
	if r.full, err = cloud.Policy(cloud.RoleBot, []releases.Site{site}, localaws.StandInAccount); err != nil {
		t.Fatal(err)
	}
	return r
}

// give makes doc the bot role's policy.
func (r *permRig) give(t *testing.T, doc cloud.PolicyDocument) {
	t.Helper()
	raw, _ := json.Marshal(doc)
	if err := r.srv.SetIdentityPolicy("AKIDBOT", raw); err != nil {
		t.Fatal(err)
	}
}

// run checks principal's permissions against the whole policy, asking sim.
func (r *permRig) run(sim cloud.Simulator, principal string) []cloud.Finding {
	return cloud.CheckPermissions(context.Background(), sim, principal, "bot", r.full)
}

// withStatements is the whole policy with its statements copied, for a
// test to change.
func (r *permRig) withStatements() cloud.PolicyDocument {
	doc := r.full
	doc.Statement = append([]cloud.Statement(nil), r.full.Statement...)
	return doc
}

// check --principal simulates the bot's policy for the bot's role with
// IAM's simulator (the stand-in's evaluates the identity-based policy the
// role has): a statement left out is named with the action and the fix;
// the whole policy passes; a caller that may not simulate, or a principal
// IAM does not know, is a warning, not a pass or a failure.
func TestCheckSimulatesTheBotsPermissions(t *testing.T) {
	r := newPermRig(t)
	partial := r.full
	partial.Statement = nil
	for _, st := range r.full.Statement {
		if st.Sid != "FlipDistributions" {
			partial.Statement = append(partial.Statement, st)
		}
	}
	r.give(t, partial)
	fs := r.run(r.admin, permRole)
	got := failed(fs)
	if !cloud.Failed(fs) || !strings.Contains(got, "may not cloudfront:UpdateDistribution on arn:aws:cloudfront::"+localaws.StandInAccount+":distribution/E1PERM: implicitDeny") ||
		!strings.Contains(got, "deploybot iam-policy --role bot") || strings.Contains(got, "s3:PutObject") {
		t.Fatalf("a role without the flip's statement:\n%s", got)
	}

	r.give(t, r.full)
	if fs := r.run(r.admin, permRole); cloud.Failed(fs) || len(fs) != 1 || fs[0].Level != cloud.CheckOK {
		t.Fatalf("a role with the whole policy: %+v", fs)
	}

	self, err := cloud.NewIAMClient(context.Background(), r.settings("AKIDBOT"))
	if err != nil {
		t.Fatal(err)
	}
	for name, fs := range map[string][]cloud.Finding{
		"a caller without iam:SimulatePrincipalPolicy": r.run(self, permRole),
		"an unknown role": r.run(r.admin, "arn:aws:iam::"+localaws.StandInAccount+":role/team/deploybot-bot"),
		// A mistyped user is not an administrator with every permission.
		"an unknown user": r.run(r.admin, "arn:aws:iam::"+localaws.StandInAccount+":user/AKIDTYPO"),
	} {
		if len(fs) != 1 || fs[0].Level != cloud.CheckWarn || !strings.Contains(fs[0].What, "could not simulate") {
			t.Errorf("%s: %+v", name, fs)
		}
	}
}

// The ListBucket statement holds only with the prefix deploybot lists:
// the simulation passes the value its requests carry.
func TestCheckSimulatesTheListPrefix(t *testing.T) {
	r := newPermRig(t)
	wrong := r.withStatements()
	wrong.Statement[0].Condition = map[string]map[string][]string{"StringLike": {"s3:prefix": {"elsewhere/*"}}}
	r.give(t, wrong)
	if got := failed(r.run(r.admin, permRole)); !strings.Contains(got, "s3:ListBucket on arn:aws:s3:::perm-site") {
		t.Fatalf("a role listing another prefix:\n%s", got)
	}
}

// A policy written by hand, one statement per action and resource, with
// object grants narrower than the prefix but covering every key deploybot
// writes, passes: the simulator is asked about keys, not about our
// patterns.
func TestCheckPassesAPolicyWrittenByHand(t *testing.T) {
	r := newPermRig(t)
	var byHand cloud.PolicyDocument
	byHand.Version = r.full.Version
	for _, st := range r.full.Statement {
		for _, a := range st.Action {
			for _, res := range st.Resource {
				byHand.Statement = append(byHand.Statement, cloud.Statement{Sid: "H", Effect: st.Effect, Action: []string{a},
					Resource: []string{strings.Replace(res, "/www/*", "/www/d*", 1)}, Condition: st.Condition})
			}
		}
	}
	r.give(t, byHand)
	if fs := r.run(r.admin, permRole); cloud.Failed(fs) {
		t.Fatalf("a policy written by hand, as narrow as the keys: %s", failed(fs))
	}
}

// A condition on a key the simulation is not given (the bot's requests
// come through a VPC endpoint) cannot be decided: a warning, not a
// failure.
func TestCheckCannotDecideAnUnknownConditionKey(t *testing.T) {
	r := newPermRig(t)
	vpc := r.withStatements()
	for i := range vpc.Statement {
		if vpc.Statement[i].Sid == "FlipDistributions" {
			vpc.Statement[i].Condition = map[string]map[string][]string{"StringEquals": {"aws:SourceVpce": {"vpce-1a2b3c"}}}
		}
	}
	r.give(t, vpc)
	fs := r.run(r.admin, permRole)
	if cloud.Failed(fs) || !strings.Contains(fmt.Sprint(fs), "could not decide cloudfront:UpdateDistribution") || !strings.Contains(fmt.Sprint(fs), "aws:sourcevpce") {
		t.Fatalf("a condition on a key deploybot does not send: %+v", fs)
	}
}
