package localaws

import (
	"bytes"
	"encoding/json"
	"fmt"
	"net/http"
	"regexp"
	"slices"
	"strings"
)

// The stand-in's bucket policies: S3 checks what PutBucketPolicy is given
// (parseBucketPolicy) and evaluates it for the requests the edge makes on
// CloudFront's behalf (decide), in the IAM policy language
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements.html,
// evaluation: https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
// API callers are not evaluated against it; identity-based policies set
// per caller are (identity.go, in the same language), and
// internal/iamcheck holds recorded calls against deploybot's identity
// policies too.

// stringList is a policy value that may be one string or an array of them
// (scalars such as booleans are taken as their text).
type stringList []string

func (l *stringList) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '[' {
		var raw []json.RawMessage
		if err := json.Unmarshal(b, &raw); err != nil {
			return err
		}
		for _, r := range raw {
			s, err := scalarText(r)
			if err != nil {
				return err
			}
			*l = append(*l, s)
		}
		return nil
	}
	s, err := scalarText(b)
	if err != nil {
		return err
	}
	*l = stringList{s}
	return nil
}

func scalarText(b json.RawMessage) (string, error) {
	var v any
	if err := json.Unmarshal(b, &v); err != nil {
		return "", err
	}
	switch v := v.(type) {
	case string:
		return v, nil
	case bool, float64:
		return fmt.Sprint(v), nil
	}
	return "", fmt.Errorf("not a string: %s", b)
}

// policyPrincipal is a Principal (or NotPrincipal): "*", or principals
// by type (AWS, Service, Federated, CanonicalUser).
type policyPrincipal struct {
	Any    bool
	ByType map[string]stringList
}

func (p *policyPrincipal) UnmarshalJSON(b []byte) error {
	var s string
	if json.Unmarshal(b, &s) == nil {
		if s != "*" {
			return fmt.Errorf("principal %q", s)
		}
		p.Any = true
		return nil
	}
	if err := json.Unmarshal(b, &p.ByType); err != nil {
		return err
	}
	// "AWS": "*" is the same as "*"
	// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html#principal-anonymous).
	if slices.Contains(p.ByType["AWS"], "*") {
		p.Any = true
	}
	return nil
}

type policyStatement struct {
	Sid          string
	Effect       string
	Principal    *policyPrincipal
	NotPrincipal *policyPrincipal
	Action       stringList
	NotAction    stringList
	Resource     stringList
	NotResource  stringList
	Condition    map[string]map[string]stringList
}

// statements is a Statement: one statement or an array of them.
type statements []policyStatement

func (s *statements) UnmarshalJSON(b []byte) error {
	b = bytes.TrimSpace(b)
	if len(b) > 0 && b[0] == '{' {
		var one policyStatement
		if err := json.Unmarshal(b, &one); err != nil {
			return err
		}
		*s = statements{one}
		return nil
	}
	return json.Unmarshal(b, (*[]policyStatement)(s))
}

type bucketPolicy struct {
	Version   string
	ID        string `json:"Id"`
	Statement statements
}

// conditionOps are the condition operators the stand-in knows
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html),
// each also with IfExists and the ForAnyValue:/ForAllValues: qualifiers.
var conditionOps = []string{"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
	"StringLike", "StringNotLike", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Bool", "Null",
	"NumericEquals", "NumericNotEquals", "NumericLessThan", "NumericLessThanEquals", "NumericGreaterThan", "NumericGreaterThanEquals",
	"DateEquals", "DateNotEquals", "DateLessThan", "DateLessThanEquals", "DateGreaterThan", "DateGreaterThanEquals",
	"IpAddress", "NotIpAddress", "BinaryEquals"}

func baseOp(op string) (base string, ifExists bool) {
	if _, rest, ok := strings.Cut(op, ":"); ok && (strings.HasPrefix(op, "ForAnyValue:") || strings.HasPrefix(op, "ForAllValues:")) {
		op = rest
	}
	base, ifExists = strings.CutSuffix(op, "IfExists")
	return base, ifExists
}

var awsPrincipal = regexp.MustCompile(`^(\d{12}|arn:aws[a-z-]*:(iam|sts)::[^:]*:.+)$`)

// parseBucketPolicy checks a policy as PutBucketPolicy does, with S3's
// MalformedPolicy for what it refuses
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_PutBucketPolicy.html,
// https://docs.aws.amazon.com/AmazonS3/latest/API/ErrorResponses.html#ErrorCodeList):
// a JSON object with a Statement; each statement with Effect Allow or
// Deny, a Principal, S3 actions and resources of this bucket. Version
// may be left out (it then defaults to 2008-10-17:
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_version.html)
// but is otherwise one of the two the language has.
func parseBucketPolicy(raw []byte, bucket string) (*bucketPolicy, *s3Error) {
	bad := func(msg string) (*bucketPolicy, *s3Error) {
		return nil, &s3Error{Status: http.StatusBadRequest, Code: "MalformedPolicy", Message: msg}
	}
	trimmed := bytes.TrimSpace(raw)
	var doc bucketPolicy
	if len(trimmed) == 0 || trimmed[0] != '{' || json.Unmarshal(trimmed, &doc) != nil {
		return bad("Policies must be valid JSON and the first byte must be '{'")
	}
	if doc.Version != "" && doc.Version != "2012-10-17" && doc.Version != "2008-10-17" {
		return bad("Invalid policy version: " + doc.Version)
	}
	if len(doc.Statement) == 0 {
		return bad("Missing required field Statement")
	}
	bucketARN := "arn:aws:s3:::" + bucket
	for _, st := range doc.Statement {
		switch {
		case st.Effect != "Allow" && st.Effect != "Deny":
			return bad("Invalid effect: " + st.Effect)
		case st.Principal == nil && st.NotPrincipal == nil:
			return bad("Missing required field Principal")
		case len(st.Action) == 0 && len(st.NotAction) == 0:
			return bad("Missing required field Action")
		case len(st.Resource) == 0 && len(st.NotResource) == 0:
			return bad("Missing required field Resource")
		}
		for _, p := range []*policyPrincipal{st.Principal, st.NotPrincipal} {
			if p == nil || p.Any {
				continue
			}
			for typ, vals := range p.ByType {
				for _, v := range vals {
					ok := typ == "AWS" && awsPrincipal.MatchString(v) || typ == "Service" && v != "" || typ == "Federated" || typ == "CanonicalUser"
					if !ok {
						return bad("Invalid principal in policy")
					}
				}
			}
		}
		for _, a := range append(append(stringList{}, st.Action...), st.NotAction...) {
			if a != "*" && !strings.HasPrefix(strings.ToLower(a), "s3:") {
				return bad("Policy has invalid action")
			}
		}
		for _, res := range append(append(stringList{}, st.Resource...), st.NotResource...) {
			if res != bucketARN && !strings.HasPrefix(res, bucketARN+"/") {
				return bad("Policy has invalid resource")
			}
		}
		for op := range st.Condition {
			if base, _ := baseOp(op); !slices.Contains(conditionOps, base) {
				return bad("Invalid Condition type : " + op)
			}
		}
	}
	return &doc, nil
}

// accessRequest is what a policy is evaluated for: who asks (an anonymous
// caller, or a service principal such as cloudfront.amazonaws.com, or an
// AWS principal ARN), the action, the resource ARN and the request
// context's keys (lower case).
type accessRequest struct {
	principalType string // "" anonymous, "Service", "AWS"
	principal     string
	action        string
	resource      string
	context       map[string]string
}

// decide evaluates the policy for req: an explicit Deny wins, else an
// Allow allows, else the request is implicitly denied
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
func (p *bucketPolicy) decide(req accessRequest) (allowed bool) {
	if p == nil {
		return false
	}
	for _, st := range p.Statement {
		if !st.applies(req) {
			continue
		}
		if st.Effect == "Deny" {
			return false
		}
		allowed = true
	}
	return allowed
}

func (st policyStatement) applies(req accessRequest) bool {
	switch {
	case st.Principal != nil && !st.Principal.matches(req):
		return false
	case st.NotPrincipal != nil && st.NotPrincipal.matches(req):
		return false
	case len(st.Action) > 0 && !anyGlob(st.Action, req.action, true):
		return false
	case len(st.NotAction) > 0 && anyGlob(st.NotAction, req.action, true):
		return false
	case len(st.Resource) > 0 && !anyGlob(st.Resource, req.resource, false):
		return false
	case len(st.NotResource) > 0 && anyGlob(st.NotResource, req.resource, false):
		return false
	}
	for op, keys := range st.Condition {
		for key, vals := range keys {
			if !conditionHolds(op, req.context, strings.ToLower(key), vals) {
				return false
			}
		}
	}
	return true
}

func (p *policyPrincipal) matches(req accessRequest) bool {
	if p.Any {
		return true
	}
	switch req.principalType {
	case "Service":
		return slices.Contains(p.ByType["Service"], req.principal)
	case "AWS":
		for _, v := range p.ByType["AWS"] {
			if v == req.principal {
				return true
			}
		}
	}
	return false
}

func anyGlob(patterns []string, s string, fold bool) bool {
	for _, p := range patterns {
		if globMatch(p, s, fold) {
			return true
		}
	}
	return false
}

// globMatch matches IAM's wildcards: * any run of characters, ? one.
func globMatch(pattern, s string, fold bool) bool {
	if fold {
		pattern, s = strings.ToLower(pattern), strings.ToLower(s)
	}
	var re strings.Builder
	re.WriteString("^")
	for _, c := range pattern {
		switch c {
		case '*':
			re.WriteString(".*")
		case '?':
			re.WriteString(".")
		default:
			re.WriteString(regexp.QuoteMeta(string(c)))
		}
	}
	re.WriteString("$")
	ok, _ := regexp.MatchString(re.String(), s)
	return ok
}

// conditionHolds evaluates one condition key: the request's value
// against the policy's values, any of which may match. A key the request
// lacks matches no positive operator, every negated one, and anything
// with IfExists
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html).
func conditionHolds(op string, ctx map[string]string, key string, vals []string) bool {
	base, ifExists := baseOp(op)
	v, present := ctx[key]
	if base == "Null" {
		return slices.Contains(vals, fmt.Sprint(!present))
	}
	negated := strings.Contains(base, "Not")
	if !present {
		return ifExists || negated
	}
	match := false
	for _, want := range vals {
		switch strings.TrimSuffix(strings.Replace(base, "Not", "", 1), "IgnoreCase") {
		case "StringEquals", "ArnEquals":
			match = want == v || strings.HasSuffix(base, "IgnoreCase") && strings.EqualFold(want, v)
		case "StringLike", "ArnLike":
			match = globMatch(want, v, false)
		case "Bool":
			match = strings.EqualFold(want, v)
		default:
			match = want == v
		}
		if match {
			break
		}
	}
	return match != negated
}

// publicKeys are the condition keys whose fixed values make a statement
// that grants to everyone non-public
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/access-control-block-public-access.html#access-control-block-public-access-policy-status).
var publicKeys = []string{"aws:sourcearn", "aws:sourcevpc", "aws:sourcevpce", "aws:sourceowner", "aws:sourceaccount",
	"s3:x-amz-server-side-encryption-aws-kms-key-id", "aws:userid", "aws:sourceip", "aws:principalorgid", "aws:principalaccount",
	"s3:dataaccesspointarn", "s3:dataaccesspointaccount"}

// public reports whether S3 considers the policy public: an Allow
// statement for everyone ("*", a wildcard principal, or NotPrincipal)
// not limited to fixed values of the keys the page lists (an aws:userid
// in the AROLEID:* pattern, or an aws:SourceIp of /0, limits nothing).
func (p *bucketPolicy) public() bool {
	for _, st := range p.Statement {
		if st.Effect != "Allow" {
			continue
		}
		everyone := st.NotPrincipal != nil || st.Principal != nil && st.Principal.Any
		if st.Principal != nil {
			for _, vals := range st.Principal.ByType {
				for _, v := range vals {
					everyone = everyone || strings.ContainsAny(v, "*?")
				}
			}
		}
		if everyone && !fixedCondition(st.Condition) {
			return true
		}
	}
	return false
}

func fixedCondition(cond map[string]map[string]stringList) bool {
	for op, keys := range cond {
		base, ifExists := baseOp(op)
		if ifExists || strings.Contains(base, "Not") {
			continue
		}
		for key, vals := range keys {
			k := strings.ToLower(key)
			if !slices.Contains(publicKeys, k) || len(vals) == 0 {
				continue
			}
			fixed := true
			for _, v := range vals {
				if strings.ContainsAny(v, "*?") || strings.Contains(v, "${") || k == "aws:sourceip" && strings.HasSuffix(v, "/0") {
					fixed = false
				}
			}
			if fixed {
				return true
			}
		}
	}
	return false
}
