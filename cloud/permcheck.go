package cloud

import (
	"context"
	"fmt"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/iam"
	iamtypes "github.com/aws/aws-sdk-go-v2/service/iam/types"
)

// Simulator is IAM's policy simulator, with the SDK's signature.
type Simulator interface {
	SimulatePrincipalPolicy(ctx context.Context, in *iam.SimulatePrincipalPolicyInput, optFns ...func(*iam.Options)) (*iam.SimulatePrincipalPolicyOutput, error)
}

var _ Simulator = (*iam.Client)(nil)

// PrincipalARN is the ARN IAM's simulator takes for a caller STS named:
// a session of an assumed role stands for the role
// (arn:aws:sts::A:assumed-role/R/S is arn:aws:iam::A:role/R). A role
// with a path (role/team/R) is named without it in the session ARN, so
// the simulator will not find it: pass the role's own ARN then.
func PrincipalARN(caller string) string {
	parts := strings.SplitN(caller, ":", 6)
	if len(parts) != 6 || parts[2] != "sts" {
		return caller
	}
	rest, ok := strings.CutPrefix(parts[5], "assumed-role/")
	if !ok {
		return caller
	}
	role, _, _ := strings.Cut(rest, "/")
	return "arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + role
}

// CheckPermissions simulates, for principal, every Allow statement of
// doc (the policy `deploybot iam-policy --role R` prints), with the
// condition values deploybot's own requests carry, and reports each
// action the principal may not take. One call per statement.
//
// When the simulator cannot be used (the caller lacks
// iam:SimulatePrincipalPolicy, or IAM does not know the principal), the
// finding is a warning: the read checks before it used the calls
// themselves, and the writes are first tried by a publish or a promote.
func CheckPermissions(ctx context.Context, sim Simulator, principal, role string, doc PolicyDocument) []Finding {
	const check = "permissions"
	fix := fmt.Sprintf("attach the policy `deploybot iam-policy --role %s` prints to %s", role, principal)
	var out []Finding
	simulated := 0
	for _, st := range doc.Statement {
		if st.Effect != "Allow" {
			continue
		}
		in := &iam.SimulatePrincipalPolicyInput{PolicySourceArn: aws.String(principal), ActionNames: st.Action,
			ResourceArns: concrete(st.Resource), ContextEntries: contextOf(st.Condition)}
		denied, undecided, err := simulate(ctx, sim, in)
		if err != nil {
			why := awsProblem("simulating", "iam:SimulatePrincipalPolicy", err).Error()
			if isCode(err, "NoSuchEntity") {
				why = fmt.Sprintf("IAM knows no user or role %s (a role with a path is named without it in its session's ARN: pass the role's ARN with --principal)", principal)
			}
			return append(out, Finding{Check: check, Level: CheckWarn,
				What: "could not simulate the " + role + " role's permissions: " + why + "; the checks above used their read calls, and writes are first tried by a publish or a promote",
				Fix:  "grant iam:SimulatePrincipalPolicy to whoever runs check, or run it as an administrator with --principal"})
		}
		simulated += len(st.Action)
		for _, d := range denied {
			out = append(out, Finding{Check: check, Level: CheckFail, What: fmt.Sprintf("%s may not %s (statement %s)", principal, d, st.Sid), Fix: fix})
		}
		for _, u := range undecided {
			out = append(out, Finding{Check: check, Level: CheckWarn,
				What: fmt.Sprintf("%s: the simulator could not decide %s (statement %s)", principal, u, st.Sid),
				Fix:  "check by hand that the condition holds for deploybot's requests, or that " + fix})
		}
	}
	if len(out) == 0 {
		out = append(out, Finding{Check: check, Level: CheckOK, What: fmt.Sprintf("%s has every permission of the %s policy (%d actions simulated)", principal, role, simulated)})
	}
	return out
}

// concrete makes a policy's resource patterns into resources a request
// names: a pattern's final * becomes a name deploybot could write
// ("deploybot-check"), so the simulator judges a real key of the prefix
// (a narrower grant that still covers every key deploybot writes passes;
// a pattern taken literally would only match the same pattern).
func concrete(resources []string) []string {
	out := make([]string, len(resources))
	for i, r := range resources {
		out[i] = r
		if strings.HasSuffix(r, "*") && !strings.Contains(strings.TrimSuffix(r, "*"), "*") {
			out[i] = strings.TrimSuffix(r, "*") + "deploybot-check"
		}
	}
	return out
}

// simulate runs one simulation and lists, as "action on resource:
// decision", what it did not allow: denied, or undecided when the
// principal's policy tests condition keys deploybot's requests do not
// give the simulator (aws:SourceVpce, aws:SecureTransport, ...), which
// a real request may well meet.
func simulate(ctx context.Context, sim Simulator, in *iam.SimulatePrincipalPolicyInput) (denied, undecided []string, err error) {
	p := iam.NewSimulatePrincipalPolicyPaginator(sim, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, nil, err
		}
		for _, r := range page.EvaluationResults {
			d, u := deniedOf(r)
			denied, undecided = append(denied, d...), append(undecided, u...)
		}
	}
	sort.Strings(denied)
	sort.Strings(undecided)
	return denied, undecided, nil
}

// deniedOf reads one action's result per resource
// (ResourceSpecificResults; the top-level decision is the most
// restrictive of them, per
// https://docs.aws.amazon.com/IAM/latest/APIReference/API_EvaluationResult.html).
// An implicit deny with missing context values is undecided.
func deniedOf(r iamtypes.EvaluationResult) (denied, undecided []string) {
	action := aws.ToString(r.EvalActionName)
	one := func(resource string, decision iamtypes.PolicyEvaluationDecisionType, missing []string) {
		switch {
		case decision == iamtypes.PolicyEvaluationDecisionTypeAllowed:
		case decision == iamtypes.PolicyEvaluationDecisionTypeImplicitDeny && len(missing) > 0:
			undecided = append(undecided, fmt.Sprintf("%s on %s: its condition needs %s", action, resource, strings.Join(missing, ", ")))
		default:
			denied = append(denied, fmt.Sprintf("%s on %s: %s", action, resource, decision))
		}
	}
	if len(r.ResourceSpecificResults) == 0 {
		one(aws.ToString(r.EvalResourceName), r.EvalDecision, r.MissingContextValues)
		return denied, undecided
	}
	for _, rr := range r.ResourceSpecificResults {
		missing := rr.MissingContextValues
		if len(missing) == 0 {
			missing = r.MissingContextValues
		}
		one(aws.ToString(rr.EvalResourceName), rr.EvalResourceDecision, missing)
	}
	return denied, undecided
}

// contextOf is the condition values deploybot's requests carry for a
// statement's conditions: the value it names (a StringLike pattern's
// literal part, which the request's own value starts with).
func contextOf(cond map[string]map[string][]string) []iamtypes.ContextEntry {
	var out []iamtypes.ContextEntry
	for op, keys := range cond {
		if strings.HasPrefix(op, "Null") {
			// Null tests whether a key is there, not its value: "true"
			// means deploybot's request lacks it, so it is not sent;
			// "false" that it carries one, which for the only such key
			// of deploybot's policies, s3:if-none-match, is "*".
			for key, vals := range keys {
				if len(vals) > 0 && vals[0] == "false" {
					out = append(out, iamtypes.ContextEntry{ContextKeyName: aws.String(key), ContextKeyType: iamtypes.ContextKeyTypeEnumString, ContextKeyValues: []string{"*"}})
				}
			}
			continue
		}
		kind := iamtypes.ContextKeyTypeEnumString
		if strings.HasPrefix(op, "Bool") {
			kind = iamtypes.ContextKeyTypeEnumBoolean
		}
		for key, vals := range keys {
			if len(vals) == 0 {
				continue
			}
			v := vals[0]
			if op == "StringLike" {
				v = strings.TrimSuffix(v, "*")
			}
			out = append(out, iamtypes.ContextEntry{ContextKeyName: aws.String(key), ContextKeyType: kind, ContextKeyValues: []string{v}})
		}
	}
	sort.Slice(out, func(i, j int) bool { return aws.ToString(out[i].ContextKeyName) < aws.ToString(out[j].ContextKeyName) })
	return out
}
