// Package iamcheck decides whether an IAM policy allows the AWS calls
// deploybot recorded (cloud.Call): which action and resource each call
// needs, with the condition keys it brings (s3:prefix; s3:if-none-match,
// s3:if-match and s3:ObjectCreationOperation of S3 writes), per the
// service authorization references, and a small evaluator of Allow and
// Deny statements (wildcards in Action and Resource; the condition
// operators StringLike, StringEquals, Null, Bool and the Arn ones; a
// statement's Principal is not read: the caller picks the statements
// that name its principal, or "*"). It is for tests: it
// knows exactly the operations deploybot makes, and fails on any other,
// so a new call cannot go unchecked.
package iamcheck

import (
	"fmt"
	"maps"
	"net/url"
	"path"
	"slices"
	"strings"

	"github.com/deploybot/deploybot/cloud"
)

// Need is one action on one resource that a call needs.
type Need struct {
	Action   string
	Resource string
	// Prefix is the s3:prefix condition key's value; HasPrefix false when
	// the request has none.
	Prefix    string
	HasPrefix bool
	// Keys are the request's other condition keys (lower case) and
	// their values; a key not in it is absent from the request.
	Keys map[string]string
}

func (n Need) String() string {
	var conds []string
	if n.HasPrefix {
		conds = append(conds, fmt.Sprintf("s3:prefix %q", n.Prefix))
	}
	for _, k := range slices.Sorted(maps.Keys(n.Keys)) {
		conds = append(conds, fmt.Sprintf("%s %q", k, n.Keys[k]))
	}
	if len(conds) > 0 {
		return fmt.Sprintf("%s on %s (%s)", n.Action, n.Resource, strings.Join(conds, ", "))
	}
	return fmt.Sprintf("%s on %s", n.Action, n.Resource)
}

// key is the request's value of a condition key (matched case-blind, as
// IAM matches key names), and whether the request has it.
func (n Need) key(name string) (string, bool) {
	name = strings.ToLower(name)
	if name == "s3:prefix" {
		return n.Prefix, n.HasPrefix
	}
	v, ok := n.Keys[name]
	return v, ok
}

// objectCreation is s3:ObjectCreationOperation of each S3 write: true for
// the requests that create an object, false for the parts of a multipart
// upload, which take no conditional header
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
var objectCreation = map[string]string{"PutObject": "true", "CopyObject": "true", "CompleteMultipartUpload": "true",
	"CreateMultipartUpload": "false", "UploadPart": "false", "UploadPartCopy": "false"}

// writeKeys are the condition keys an S3 write of op brings: its
// If-None-Match and If-Match (s3:if-none-match, s3:if-match, present only
// when sent) and s3:ObjectCreationOperation.
func writeKeys(op string, p map[string]string) map[string]string {
	keys := map[string]string{strings.ToLower(cloud.KeyObjectCreation): objectCreation[op]}
	if v, ok := p["IfNoneMatch"]; ok {
		keys[cloud.KeyIfNoneMatch] = v
	}
	if v, ok := p["IfMatch"]; ok {
		keys[cloud.KeyIfMatch] = v
	}
	return keys
}

// s3Actions maps S3 operations to the action each needs on its object
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html);
// CopyObject, ListObjectsV2 and DeleteObjects are handled apart.
var s3Actions = map[string]string{
	"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
	"CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
	"AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject",
}

// s3BucketActions are the bucket-wide reads check makes (HeadBucket
// only when listing the site's folder failed, to say why).
var s3BucketActions = map[string]string{"GetBucketPolicy": "s3:GetBucketPolicy", "HeadBucket": "s3:ListBucket"}

// cloudFrontDistribution and cloudFrontFunction are the CloudFront
// operations deploybot makes, by the resource they act on; the IAM action
// is the operation's name
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudfront.html).
var (
	cloudFrontDistribution = map[string]bool{"GetDistribution": true, "GetDistributionConfig": true, "UpdateDistribution": true,
		"CreateInvalidation": true, "GetInvalidation": true, "ListInvalidations": true}
	cloudFrontFunction = map[string]bool{"DescribeFunction": true, "GetFunction": true, "CreateFunction": true,
		"UpdateFunction": true, "PublishFunction": true}
	keyValueStore = map[string]bool{"DescribeKeyValueStore": true, "GetKey": true, "PutKey": true, "DeleteKey": true}
)

// Needs is what a call needs, with CloudFront resources in account.
func Needs(c cloud.Call, account string) ([]Need, error) {
	p := c.Params
	switch c.Service {
	case "s3":
		bucket := p["Bucket"]
		obj := func(key string) string { return "arn:aws:s3:::" + bucket + "/" + key }
		switch c.Operation {
		case "ListObjectsV2":
			prefix, has := p["Prefix"]
			return []Need{{Action: "s3:ListBucket", Resource: "arn:aws:s3:::" + bucket, Prefix: prefix, HasPrefix: has}}, nil
		case "CopyObject":
			src, err := url.PathUnescape(p["CopySource"])
			if err != nil {
				return nil, fmt.Errorf("CopyObject: copy source %q: %w", p["CopySource"], err)
			}
			src, _, _ = strings.Cut(src, "?versionId=")
			return []Need{{Action: "s3:GetObject", Resource: "arn:aws:s3:::" + src},
				{Action: "s3:PutObject", Resource: obj(p["Key"]), Keys: writeKeys(c.Operation, p)}}, nil
		case "DeleteObjects":
			var out []Need
			for _, k := range c.Keys {
				out = append(out, Need{Action: "s3:DeleteObject", Resource: obj(k)})
			}
			return out, nil
		}
		if a, ok := s3BucketActions[c.Operation]; ok {
			return []Need{{Action: a, Resource: "arn:aws:s3:::" + bucket}}, nil
		}
		if a, ok := s3Actions[c.Operation]; ok {
			n := Need{Action: a, Resource: obj(p["Key"])}
			if _, write := objectCreation[c.Operation]; write {
				n.Keys = writeKeys(c.Operation, p)
			}
			return []Need{n}, nil
		}
	case "cloudfront":
		switch {
		case cloudFrontDistribution[c.Operation]:
			// GetInvalidation names the distribution DistributionId
			// and the invalidation Id.
			id := p["DistributionId"]
			if id == "" {
				id = p["Id"]
			}
			return []Need{{Action: "cloudfront:" + c.Operation, Resource: fmt.Sprintf("arn:aws:cloudfront::%s:distribution/%s", account, id)}}, nil
		case c.Operation == "GetOriginAccessControl":
			return []Need{{Action: "cloudfront:GetOriginAccessControl", Resource: fmt.Sprintf("arn:aws:cloudfront::%s:origin-access-control/%s", account, p["Id"])}}, nil
		case cloudFrontFunction[c.Operation]:
			return []Need{{Action: "cloudfront:" + c.Operation, Resource: fmt.Sprintf("arn:aws:cloudfront::%s:function/%s", account, p["Name"])}}, nil
		}
	case "cloudfront-keyvaluestore":
		if keyValueStore[c.Operation] {
			return []Need{{Action: "cloudfront-keyvaluestore:" + c.Operation, Resource: p["KvsARN"]}}, nil
		}
	case "sts":
		// "No permissions are required to perform this operation"
		// (https://docs.aws.amazon.com/STS/latest/APIReference/API_GetCallerIdentity.html):
		// an explicit deny cannot refuse it either.
		if c.Operation == "GetCallerIdentity" {
			return nil, nil
		}
	}
	return nil, fmt.Errorf("deploybot made %s:%s, which iamcheck does not know: add the action it needs", c.Service, c.Operation)
}

// Allowed reports whether an Allow statement of doc grants n and no Deny
// statement refuses it (an explicit deny wins, as in IAM's evaluation:
// https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_evaluation-logic.html).
// A condition operator it does not know never holds, so an Allow that
// needs one grants nothing and a Deny that needs one refuses nothing:
// extend conditionHolds rather than trust either.
func Allowed(doc cloud.PolicyDocument, n Need) bool {
	for _, st := range doc.Statement {
		if st.Effect == "Deny" && anyMatch(st.Action, n.Action, true) && anyMatch(st.Resource, n.Resource, false) && conditionHolds(st.Condition, n) {
			return false
		}
	}
	for _, st := range doc.Statement {
		if st.Effect != "Allow" || !anyMatch(st.Action, n.Action, true) || !anyMatch(st.Resource, n.Resource, false) {
			continue
		}
		if conditionHolds(st.Condition, n) {
			return true
		}
	}
	return false
}

// conditionHolds evaluates a Condition block as IAM does
// (https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-logic-multiple-context-keys-or-values.html):
// every operator and every key in it must hold, a key holds when any of
// its values matches, and a key the request lacks fails every operator
// but Null ("true": the key is absent; "false": it is there).
func conditionHolds(cond map[string]map[string][]string, n Need) bool {
	for op, keys := range cond {
		for key, vals := range keys {
			v, present := n.key(key)
			var ok bool
			switch op {
			case "Null":
				ok = len(vals) == 1 && (vals[0] == "true") == !present && (vals[0] == "true" || vals[0] == "false")
			case "StringLike":
				ok = present && anyMatch(vals, v, false)
			case "StringEquals":
				ok = present && slices.Contains(vals, v)
			case "Bool":
				ok = present && slices.ContainsFunc(vals, func(b string) bool { return strings.EqualFold(b, v) })
			case "ArnEquals", "ArnLike":
				ok = present && anyMatch(vals, v, false)
			case "ArnNotEquals", "ArnNotLike":
				// A negated operator holds for a key the request lacks.
				ok = !present || !anyMatch(vals, v, false)
			}
			if !ok {
				return false
			}
		}
	}
	return true
}

// anyMatch matches v against IAM patterns: "*" any run of characters, "?"
// one; actions are case-insensitive.
func anyMatch(patterns []string, v string, fold bool) bool {
	for _, p := range patterns {
		if fold {
			p, v = strings.ToLower(p), strings.ToLower(v)
		}
		if globMatch(p, v) {
			return true
		}
	}
	return false
}

// globMatch is path.Match's "*" and "?" across slashes: the pattern's
// "/" separated parts are not special in IAM.
func globMatch(pattern, v string) bool {
	const sep = "\x00"
	ok, err := path.Match(strings.ReplaceAll(strings.ReplaceAll(pattern, "[", "\\["), "/", sep), strings.ReplaceAll(v, "/", sep))
	return err == nil && ok
}
