// Package iamcheck decides whether an IAM policy allows the AWS calls
// deploybot recorded (cloud.Call): which action and resource each call
// needs, per the service authorization references, and a small evaluator
// of Allow statements (wildcards in Action and Resource, StringLike on
// s3:prefix). It is for tests: it knows exactly the operations deploybot
// makes, and fails on any other, so a new call cannot go unchecked.
package iamcheck

import (
	"fmt"
	"net/url"
	"path"
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
}

func (n Need) String() string {
	if n.HasPrefix {
		return fmt.Sprintf("%s on %s (s3:prefix %q)", n.Action, n.Resource, n.Prefix)
	}
	return fmt.Sprintf("%s on %s", n.Action, n.Resource)
}

// s3Actions maps S3 operations to the action each needs on its object
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazons3.html);
// CopyObject, ListObjectsV2 and DeleteObjects are handled apart.
var s3Actions = map[string]string{
	"GetObject": "s3:GetObject", "HeadObject": "s3:GetObject", "PutObject": "s3:PutObject",
	"CreateMultipartUpload": "s3:PutObject", "UploadPart": "s3:PutObject", "CompleteMultipartUpload": "s3:PutObject",
	"AbortMultipartUpload": "s3:AbortMultipartUpload", "DeleteObject": "s3:DeleteObject",
}

// cloudFrontDistribution and cloudFrontFunction are the CloudFront
// operations deploybot makes, by the resource they act on; the IAM action
// is the operation's name
// (https://docs.aws.amazon.com/service-authorization/latest/reference/list_amazoncloudfront.html).
var (
	cloudFrontDistribution = map[string]bool{"GetDistribution": true, "GetDistributionConfig": true, "UpdateDistribution": true,
		"CreateInvalidation": true, "GetInvalidation": true, "ListInvalidations": true}
	cloudFrontFunction = map[string]bool{"DescribeFunction": true, "GetFunction": true, "CreateFunction": true,
		"UpdateFunction": true, "PublishFunction": true}
	keyValueStore = map[string]bool{"DescribeKeyValueStore": true, "GetKey": true, "PutKey": true}
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
			return []Need{{Action: "s3:GetObject", Resource: "arn:aws:s3:::" + src}, {Action: "s3:PutObject", Resource: obj(p["Key"])}}, nil
		case "DeleteObjects":
			var out []Need
			for _, k := range c.Keys {
				out = append(out, Need{Action: "s3:DeleteObject", Resource: obj(k)})
			}
			return out, nil
		}
		if a, ok := s3Actions[c.Operation]; ok {
			return []Need{{Action: a, Resource: obj(p["Key"])}}, nil
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
// Conditions other than StringLike on s3:prefix are not understood and
// never match.
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

func conditionHolds(cond map[string]map[string][]string, n Need) bool {
	for op, keys := range cond {
		for key, vals := range keys {
			if op != "StringLike" || key != "s3:prefix" || !n.HasPrefix || !anyMatch(vals, n.Prefix, false) {
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
