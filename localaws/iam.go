package localaws

import (
	"encoding/xml"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"sort"
	"strconv"
	"strings"
)

// The stand-in's IAM answers the one call deploybot makes,
// SimulatePrincipalPolicy
// (https://docs.aws.amazon.com/IAM/latest/APIReference/API_SimulatePrincipalPolicy.html),
// in the query protocol (form-encoded POST, XML answer), by evaluating
// the identity-based policy SetIdentityPolicy gave the principal, with
// the same evaluator the S3 requests meet (identity.go). What IAM does
// and the stand-in models:
//   - one EvaluationResult per action; its EvalDecision is the most
//     restrictive over the resources asked, and ResourceSpecificResults
//     hold each resource's (API_EvaluationResult.html);
//   - decisions are allowed, explicitDeny or implicitDeny;
//   - a principal IAM does not know is NoSuchEntity (404), a malformed
//     request InvalidInput (400); the caller needs
//     iam:SimulatePrincipalPolicy (AccessDenied, 403, without it);
//   - ActionNames is required; ResourceArns defaults to "*";
//   - a condition key a statement tests and the request does not give
//     is listed in MissingContextValues, per resource and for the
//     action, and the statement does not apply;
//   - a principal with no policy here is an administrator (real IAM
//     would answer implicitDeny: the stand-in's callers without a policy
//     are administrators everywhere).
//
// Principals are users and roles of the stand-in's account: the ARN of a
// caller (user/<access key>, or what Options.Identities says, an
// assumed-role session standing for its role). A principal with no
// policy is an administrator, as everywhere in the stand-in.

func isIAM(r *http.Request) bool {
	return strings.Contains(r.Header.Get("Authorization"), "/iam/aws4_request")
}

type iamEvalResult struct {
	Action   string        `xml:"EvalActionName"`
	Resource string        `xml:"EvalResourceName,omitempty"`
	Decision string        `xml:"EvalDecision"`
	Missing  []string      `xml:"MissingContextValues>member,omitempty"`
	PerRes   []iamResource `xml:"ResourceSpecificResults>member,omitempty"`
}

type iamResource struct {
	Resource string   `xml:"EvalResourceName"`
	Decision string   `xml:"EvalResourceDecision"`
	Missing  []string `xml:"MissingContextValues>member,omitempty"`
}

type iamSimulateResponse struct {
	XMLName   xml.Name        `xml:"SimulatePrincipalPolicyResponse"`
	XMLNS     string          `xml:"xmlns,attr"`
	Results   []iamEvalResult `xml:"SimulatePrincipalPolicyResult>EvaluationResults>member"`
	Truncated bool            `xml:"SimulatePrincipalPolicyResult>IsTruncated"`
	Request   string          `xml:"ResponseMetadata>RequestId"`
}

// iamFaultWriter answers an injected fault as IAM does, in the query
// protocol's error document (STS's).
func iamFaultWriter(w http.ResponseWriter, r *http.Request, throttle bool) {
	stsFaultWriter(w, r, throttle)
}

func (s *Server) serveIAM(w http.ResponseWriter, r *http.Request) {
	fail := func(status int, code, msg string) { writeSTSError(w, status, "Sender", code, msg) }
	if r.Method != http.MethodPost {
		fail(http.StatusBadRequest, "InvalidAction", "IAM takes POST")
		return
	}
	if err := r.ParseForm(); err != nil {
		fail(http.StatusBadRequest, "MalformedInput", err.Error())
		return
	}
	if a := r.PostForm.Get("Action"); a != "SimulatePrincipalPolicy" {
		fail(http.StatusBadRequest, "InvalidAction", "the stand-in's IAM answers SimulatePrincipalPolicy only, not "+a)
		return
	}
	caller := callerKey(r)
	if caller == "" {
		fail(http.StatusForbidden, "MissingAuthenticationToken", "Request is missing Authentication Token")
		return
	}
	s.iam.mu.RLock()
	callerPolicy := s.iam.doc[caller]
	s.iam.mu.RUnlock()
	callerARN := s.identityARN(caller)
	if callerPolicy != nil {
		n := need{action: "iam:SimulatePrincipalPolicy", resource: "*", keys: map[string]string{"aws:principalarn": callerARN}}
		if ok, _ := allowsIdentity(callerPolicy, callerARN, n); !ok {
			fail(http.StatusForbidden, "AccessDenied", fmt.Sprintf("User: %s is not authorized to perform: iam:SimulatePrincipalPolicy", callerARN))
			return
		}
	}
	form := r.PostForm
	source := form.Get("PolicySourceArn")
	actions := members(form, "ActionNames")
	resources := members(form, "ResourceArns")
	if source == "" || len(actions) == 0 {
		fail(http.StatusBadRequest, "InvalidInput", "PolicySourceArn and ActionNames are required")
		return
	}
	if len(resources) == 0 {
		resources = []string{"*"}
	}
	keys, err := contextEntries(form)
	if err != nil {
		fail(http.StatusBadRequest, "InvalidInput", err.Error())
		return
	}
	principal, found := s.principalKey(source)
	if !found {
		writeSTSError(w, http.StatusNotFound, "Sender", "NoSuchEntity", "The user or role with ARN "+source+" cannot be found.")
		return
	}
	s.iam.mu.RLock()
	p := s.iam.doc[principal]
	s.iam.mu.RUnlock()
	out := iamSimulateResponse{XMLNS: "https://iam.amazonaws.com/doc/2010-05-08/", Request: newRequestID()}
	for _, a := range actions {
		out.Results = append(out.Results, simulate(p, source, a, resources, keys))
	}
	w.Header().Set("Content-Type", "text/xml")
	_ = xml.NewEncoder(w).Encode(out)
}

// simulate is one action's result over resources.
func simulate(p *bucketPolicy, arn, action string, resources []string, keys map[string]string) iamEvalResult {
	res := iamEvalResult{Action: action}
	rank := map[string]int{"allowed": 0, "implicitDeny": 1, "explicitDeny": 2}
	worst := "allowed"
	missing := map[string]bool{}
	for _, resource := range resources {
		decision := "allowed"
		var resMissing []string
		if p != nil {
			ctx := map[string]string{"aws:principalarn": arn}
			for k, v := range keys {
				ctx[k] = v
			}
			allowed, explicit := allowsIdentity(p, arn, need{action: action, resource: resource, keys: ctx})
			switch {
			case explicit:
				decision = "explicitDeny"
			case !allowed:
				decision = "implicitDeny"
				for _, k := range p.conditionKeys(action, resource) {
					if _, given := ctx[k]; !given && !slices.Contains(resMissing, k) {
						missing[k] = true
						resMissing = append(resMissing, k)
					}
				}
				sort.Strings(resMissing)
			}
		}
		if rank[decision] > rank[worst] {
			worst = decision
		}
		res.PerRes = append(res.PerRes, iamResource{Resource: resource, Decision: decision, Missing: resMissing})
	}
	res.Decision = worst
	if len(resources) == 1 {
		res.Resource = resources[0]
	}
	for k := range missing {
		res.Missing = append(res.Missing, k)
	}
	sort.Strings(res.Missing)
	return res
}

// members reads a query-protocol list: name.member.1, name.member.2, ...
func members(form url.Values, name string) []string {
	var out []string
	for i := 1; ; i++ {
		v, ok := form[name+".member."+strconv.Itoa(i)]
		if !ok || len(v) == 0 {
			return out
		}
		out = append(out, v[0])
	}
}

// contextEntries reads ContextEntries.member.N.{ContextKeyName,
// ContextKeyValues.member.M, ContextKeyType}; keys are matched case-blind
// (lower-cased), one value each, as the evaluator takes them.
func contextEntries(form url.Values) (map[string]string, error) {
	keys := map[string]string{}
	for i := 1; ; i++ {
		p := "ContextEntries.member." + strconv.Itoa(i) + "."
		name := form.Get(p + "ContextKeyName")
		if name == "" {
			return keys, nil
		}
		vals := members(form, p+"ContextKeyValues")
		if len(vals) != 1 {
			return nil, fmt.Errorf("context key %s: the stand-in evaluates one value per key, got %d", name, len(vals))
		}
		switch t := form.Get(p + "ContextKeyType"); t {
		case "string", "boolean", "numeric", "date", "ip", "binary":
		default:
			return nil, fmt.Errorf("context key %s: ContextKeyType %q", name, t)
		}
		keys[strings.ToLower(name)] = vals[0]
	}
}

// principalKey finds the access key whose identity arn names: the user
// named after a key, or the key Options.Identities maps to arn or to a
// session of the role arn names.
func (s *Server) principalKey(arn string) (string, bool) {
	prefix := "arn:aws:iam::" + StandInAccount + ":user/"
	for key, id := range s.opts.Identities {
		if id == arn || roleOf(id) == arn {
			return key, true
		}
	}
	// A user IAM does not know is NoSuchEntity, as for real IAM
	// (API_SimulatePrincipalPolicy.html, Errors): the stand-in's users
	// are those that signed a request or were given a policy.
	if name, ok := strings.CutPrefix(arn, prefix); ok && name != "" && !strings.Contains(name, "/") && s.iam.exists(name) {
		return name, true
	}
	return "", false
}

// roleOf is the role ARN an assumed-role session ARN stands for
// (arn:aws:sts::A:assumed-role/R/S is arn:aws:iam::A:role/R), "" for
// another ARN.
func roleOf(arn string) string {
	parts := strings.SplitN(arn, ":", 6)
	if len(parts) != 6 || parts[2] != "sts" {
		return ""
	}
	rest, ok := strings.CutPrefix(parts[5], "assumed-role/")
	if !ok {
		return ""
	}
	role, _, _ := strings.Cut(rest, "/")
	return "arn:" + parts[1] + ":iam::" + parts[4] + ":role/" + role
}

// conditionKeys are the condition keys (lower case) of p's Allow
// statements that name action on resource: what a simulation lacking
// them reports missing.
func (p *bucketPolicy) conditionKeys(action, resource string) []string {
	var out []string
	for _, st := range p.Statement {
		bare := st
		bare.Condition = nil
		if st.Effect != "Allow" || !bare.applies(accessRequest{principalType: "AWS", action: action, resource: resource}) {
			continue
		}
		for _, keys := range st.Condition {
			for k := range keys {
				out = append(out, strings.ToLower(k))
			}
		}
	}
	return out
}
