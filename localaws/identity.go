package localaws

import (
	"bytes"
	"encoding/json"
	"encoding/xml"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"sync"
)

// Identity-based policies, per caller, for S3 requests: the smallest model
// of IAM that lets a test be a caller holding exactly a given policy (CI
// with what `deploybot iam-policy --role ci` prints) and meet what such a
// caller meets on a real account.
//
// A caller is the access key id its requests are signed with (see
// sts.go). A key with a policy set (SetIdentityPolicy) gets only what
// the policy allows; a key without one is an administrator, as every
// caller was before. Only S3 requests are evaluated; CloudFront, its
// KeyValueStore and STS are not (internal/iamcheck holds the calls
// deploybot records against its policies for those).
//
// Evaluation, as IAM does it for one identity-based policy
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html):
// an explicit Deny wins, else an Allow is needed, else the request is
// implicitly denied; either way 403 AccessDenied. The policy language and
// the matching of a statement (Action, NotAction, Resource, NotResource,
// Condition) are bucketpolicy.go's, which evaluates bucket policies for
// the edge. The action and resource of each operation, and the condition
// keys it brings, are the service authorization reference's
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html):
// s3:prefix on ListObjectsV2 (when the request has a prefix), the
// conditional-write keys s3:if-none-match, s3:if-match and
// s3:ObjectCreationOperation
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html),
// and aws:PrincipalArn.
//
// And what makes it worth modelling: a GET or HEAD of a key that is not
// there answers 404 only to a caller allowed s3:ListBucket on the bucket;
// "If you don't have the s3:ListBucket permission, Amazon S3 returns an
// HTTP status code 403 Forbidden error"
// (https://docs.aws.amazon.com/AmazonS3/latest/API/API_HeadObject.html,
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_GetObject.html).
// That s3:ListBucket is evaluated for the bucket with the request's own
// keys: a GET or HEAD has no prefix parameter, so s3:prefix is absent and
// a ListBucket allowed only under an s3:prefix condition does not count.
//
// What the model refuses to take, rather than evaluate wrongly
// (SetIdentityPolicy fails): a Principal (which an identity-based policy
// may not name: IAM answers MalformedPolicyDocument), and any condition
// operator but the String, Arn, Bool and Null ones (with IfExists; no
// ForAnyValue/ForAllValues). And one simplification, stricter than S3:
// DeleteObjects, which S3 answers key by key (AccessDenied in the
// result's Errors for a key the caller may not delete), is refused whole
// when any of its keys is denied. An S3 operation the model does not map
// to its action is refused to a caller with a policy, naming it, rather
// than let through unchecked.

// identityPolicies are the policies set per access key id.
type identityPolicies struct {
	mu  sync.RWMutex
	doc map[string]*bucketPolicy
	// seen are the access keys that have signed a request: the users the
	// stand-in's account has (it creates one at its first request).
	seen map[string]bool
}

// remember records that key signed a request.
func (p *identityPolicies) remember(key string) {
	p.mu.RLock()
	known := p.seen[key]
	p.mu.RUnlock()
	if known || key == "" {
		return
	}
	p.mu.Lock()
	if p.seen == nil {
		p.seen = map[string]bool{}
	}
	p.seen[key] = true
	p.mu.Unlock()
}

// exists reports whether the user named key exists: it has signed a
// request, or been given a policy.
func (p *identityPolicies) exists(key string) bool {
	p.mu.RLock()
	defer p.mu.RUnlock()
	return p.seen[key] || p.doc[key] != nil
}

// identityOps are the condition operators the model evaluates in an
// identity-based policy: those conditionHolds (bucketpolicy.go) decides
// exactly, with IfExists; not the Numeric, Date, IpAddress and Binary
// ones, which it compares as strings, nor the ForAnyValue:/ForAllValues:
// qualifiers, which it reads as the plain operator.
var identityOps = []string{"StringEquals", "StringNotEquals", "StringEqualsIgnoreCase", "StringNotEqualsIgnoreCase",
	"StringLike", "StringNotLike", "ArnEquals", "ArnLike", "ArnNotEquals", "ArnNotLike", "Bool", "Null"}

// parseIdentityPolicy reads a policy document as IAM would take it (in
// the policy language bucketpolicy.go reads), and refuses what the model
// does not evaluate.
func parseIdentityPolicy(raw []byte) (*bucketPolicy, error) {
	var doc bucketPolicy
	if err := json.Unmarshal(raw, &doc); err != nil {
		return nil, fmt.Errorf("MalformedPolicyDocument: %w", err)
	}
	if len(doc.Statement) == 0 {
		return nil, fmt.Errorf("MalformedPolicyDocument: no statements")
	}
	for i, st := range doc.Statement {
		switch {
		case st.Principal != nil || st.NotPrincipal != nil:
			return nil, fmt.Errorf("MalformedPolicyDocument: statement %d: an identity-based policy names no Principal", i)
		case st.Effect != "Allow" && st.Effect != "Deny":
			return nil, fmt.Errorf("MalformedPolicyDocument: statement %d: Effect is Allow or Deny, not %q", i, st.Effect)
		case len(st.Action) == 0 && len(st.NotAction) == 0, len(st.Resource) == 0 && len(st.NotResource) == 0:
			return nil, fmt.Errorf("MalformedPolicyDocument: statement %d needs an Action and a Resource", i)
		}
		for op := range st.Condition {
			base, _ := baseOp(op)
			if !slices.Contains(identityOps, base) || strings.Contains(op, ":") {
				return nil, fmt.Errorf("statement %d: the stand-in does not evaluate the condition operator %s in an identity-based policy", i, op)
			}
		}
	}
	return &doc, nil
}

// SetIdentityPolicy makes doc, an IAM identity-based policy document
// (JSON), the only policy of the caller signing with accessKey; an empty
// doc takes it off (the caller is an administrator again). It fails for a
// document IAM would refuse or the stand-in cannot evaluate (see above).
func (s *Server) SetIdentityPolicy(accessKey string, doc []byte) error {
	s.iam.mu.Lock()
	defer s.iam.mu.Unlock()
	if len(bytes.TrimSpace(doc)) == 0 {
		delete(s.iam.doc, accessKey)
		return nil
	}
	p, err := parseIdentityPolicy(doc)
	if err != nil {
		return err
	}
	if s.iam.doc == nil {
		s.iam.doc = map[string]*bucketPolicy{}
	}
	s.iam.doc[accessKey] = p
	return nil
}

// callerKey is the access key id a request is signed with, "" for an
// unsigned one.
func callerKey(r *http.Request) string {
	m := credentialKey.FindStringSubmatch(r.Header.Get("Authorization"))
	if m == nil {
		return ""
	}
	return m[1]
}

// identityARN is the ARN of the caller signing with key (see sts.go).
func (s *Server) identityARN(key string) string {
	if arn := s.opts.Identities[key]; arn != "" {
		return arn
	}
	return "arn:aws:iam::" + StandInAccount + ":user/" + key
}

// need is one action on one resource that a request needs, with the
// request's condition keys (lower case) and their values; a key not in
// keys is absent from the request.
type need struct {
	action, resource string
	keys             map[string]string
}

// objectCreation is s3:ObjectCreationOperation of each S3 write: true for
// the requests that create an object, false for the parts of a multipart
// upload (conditional-writes-enforce.html).
var objectCreation = map[string]string{"PutObject": "true", "CopyObject": "true", "CompleteMultipartUpload": "true",
	"CreateMultipartUpload": "false", "UploadPart": "false", "UploadPartCopy": "false"}

// s3ObjectActions are the actions S3 operations need on their object.
var s3ObjectActions = map[string]string{"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
	"CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
	"AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject"}

// s3BucketActions are the actions S3 operations need on their bucket
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/using-with-s3-policy-actions.html;
// a setting's Delete needs its Put action, as each Delete page's
// Permissions say).
var s3BucketActions = map[string]string{
	"CreateBucket":                  "s3:CreateBucket",
	"HeadBucket":                    "s3:ListBucket",
	"DeleteBucket":                  "s3:DeleteBucket",
	"GetBucketLocation":             "s3:GetBucketLocation",
	"PutPublicAccessBlock":          "s3:PutBucketPublicAccessBlock",
	"GetPublicAccessBlock":          "s3:GetBucketPublicAccessBlock",
	"DeletePublicAccessBlock":       "s3:PutBucketPublicAccessBlock",
	"PutBucketOwnershipControls":    "s3:PutBucketOwnershipControls",
	"GetBucketOwnershipControls":    "s3:GetBucketOwnershipControls",
	"DeleteBucketOwnershipControls": "s3:PutBucketOwnershipControls",
	"PutBucketEncryption":           "s3:PutEncryptionConfiguration",
	"GetBucketEncryption":           "s3:GetEncryptionConfiguration",
	"DeleteBucketEncryption":        "s3:PutEncryptionConfiguration",
	"PutBucketPolicy":               "s3:PutBucketPolicy",
	"GetBucketPolicy":               "s3:GetBucketPolicy",
	"DeleteBucketPolicy":            "s3:DeleteBucketPolicy",
	"GetBucketPolicyStatus":         "s3:GetBucketPolicyStatus",
}

// s3Needs is what an S3 request of op needs; base holds the keys every
// request brings (aws:PrincipalArn). A request it cannot read needs
// nothing here: S3 answers it. known is false for an operation the model
// does not know, which refusedByIdentity refuses rather than let through.
func s3Needs(r *http.Request, op, bucket, key string, base map[string]string) (needs []need, known bool) {
	needs = s3NeedsOf(r, op, bucket, key, base)
	_, object := s3ObjectActions[op]
	_, bucketOp := s3BucketActions[op]
	switch op {
	case "ListBuckets", "ListObjectsV2", "DeleteObjects", "CopyObject":
		return needs, true
	}
	return needs, object || bucketOp
}

func s3NeedsOf(r *http.Request, op, bucket, key string, base map[string]string) []need {
	bucketARN := "arn:aws:s3:::" + bucket
	keys := func(extra map[string]string) map[string]string {
		out := map[string]string{}
		for k, v := range base {
			out[k] = v
		}
		for k, v := range extra {
			out[k] = v
		}
		return out
	}
	write := func() map[string]string {
		k := map[string]string{"s3:objectcreationoperation": objectCreation[op]}
		if v := r.Header.Get("If-None-Match"); v != "" {
			k["s3:if-none-match"] = v
		}
		if v := r.Header.Get("If-Match"); v != "" {
			k["s3:if-match"] = v
		}
		return keys(k)
	}
	switch op {
	case "ListBuckets":
		return []need{{action: "s3:ListAllMyBuckets", resource: "*", keys: keys(nil)}}
	case "ListObjectsV2":
		extra := map[string]string{}
		if q := r.URL.Query(); q.Has("prefix") {
			extra["s3:prefix"] = q.Get("prefix")
		}
		return []need{{action: "s3:ListBucket", resource: bucketARN, keys: keys(extra)}}
	case "DeleteObjects":
		raw, err := io.ReadAll(io.LimitReader(r.Body, 8<<20))
		if err != nil {
			return nil
		}
		r.Body = io.NopCloser(bytes.NewReader(raw))
		probe := r.Clone(r.Context())
		probe.Body = io.NopCloser(bytes.NewReader(raw))
		var req struct {
			Objects []struct{ Key string } `xml:"Object"`
		}
		if xml.NewDecoder(readBody(probe)).Decode(&req) != nil {
			return nil
		}
		var out []need
		for _, o := range req.Objects {
			out = append(out, need{action: "s3:DeleteObject", resource: bucketARN + "/" + o.Key, keys: keys(nil)})
		}
		return out
	case "CopyObject":
		src, err := url.PathUnescape(r.Header.Get("x-amz-copy-source"))
		if err != nil {
			return nil
		}
		src, _, _ = strings.Cut(strings.TrimPrefix(src, "/"), "?versionId=")
		return []need{{action: "s3:GetObject", resource: "arn:aws:s3:::" + src, keys: keys(nil)},
			{action: "s3:PutObject", resource: bucketARN + "/" + key, keys: write()}}
	}
	if a, ok := s3BucketActions[op]; ok {
		return []need{{action: a, resource: bucketARN, keys: keys(nil)}}
	}
	if a, ok := s3ObjectActions[op]; ok {
		n := need{action: a, resource: bucketARN + "/" + key, keys: keys(nil)}
		if _, w := objectCreation[op]; w {
			n.keys = write()
		}
		return []need{n}
	}
	return nil
}

// refusedByIdentity answers 403 AccessDenied, and reports true, when the
// caller has an identity-based policy that does not allow the S3 request
// op, or asks for a key that is not there without s3:ListBucket on the
// bucket.
func (s *Server) refusedByIdentity(w http.ResponseWriter, r *http.Request, op string) bool {
	ak := callerKey(r)
	if ak == "" {
		return false
	}
	s.iam.mu.RLock()
	p := s.iam.doc[ak]
	s.iam.mu.RUnlock()
	if p == nil {
		return false
	}
	arn := s.identityARN(ak)
	base := map[string]string{"aws:principalarn": arn}
	bucket, key := splitPath(r.URL.Path)
	deny := func(n need, explicit bool) bool {
		why := "because no identity-based policy allows the " + n.action + " action"
		if explicit {
			why = "with an explicit deny in an identity-based policy"
		}
		writeS3Error(w, r, s3Error{Status: http.StatusForbidden, Code: "AccessDenied",
			Message: fmt.Sprintf("User: %s is not authorized to perform: %s on resource: \"%s\" %s", arn, n.action, n.resource, why)})
		return true
	}
	needs, known := s3Needs(r, op, bucket, key, base)
	if !known {
		writeS3Error(w, r, s3Error{Status: http.StatusForbidden, Code: "AccessDenied",
			Message: fmt.Sprintf("the stand-in does not know which IAM action %s needs, so a caller with an identity-based policy is refused it: add it to s3Needs (localaws/identity.go)", op)})
		return true
	}
	for _, n := range needs {
		if allowed, explicit := allowsIdentity(p, arn, n); !allowed {
			return deny(n, explicit)
		}
	}
	if op != "GetObject" && op != "HeadObject" {
		return false
	}
	// A key that is not there: 404 only with s3:ListBucket on the bucket,
	// evaluated with this request's keys (no s3:prefix).
	list := need{action: "s3:ListBucket", resource: "arn:aws:s3:::" + bucket, keys: base}
	if allowed, _ := allowsIdentity(p, arn, list); allowed || s.s3.hasKey(bucket, key) {
		return false
	}
	writeS3Error(w, r, s3Error{Status: http.StatusForbidden, Code: "AccessDenied", Message: "Access Denied"})
	return true
}

// hasKey reports whether bucket holds key; a bucket that does not exist
// answers true, so that S3's own NoSuchBucket follows.
func (s *s3Service) hasKey(bucket, key string) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	b := s.buckets[bucket]
	if b == nil {
		return true
	}
	_, ok := b.objects[key]
	return ok
}

// allowsIdentity evaluates an identity-based policy for n, asked by the
// caller arn: allowed, and whether a refusal is an explicit Deny.
func allowsIdentity(p *bucketPolicy, arn string, n need) (allowed, explicitDeny bool) {
	req := accessRequest{principalType: "AWS", principal: arn, action: n.action, resource: n.resource, context: n.keys}
	for _, st := range p.Statement {
		if !st.applies(req) {
			continue
		}
		if st.Effect == "Deny" {
			return false, true
		}
		allowed = true
	}
	return allowed, false
}
