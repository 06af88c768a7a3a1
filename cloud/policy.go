package cloud

import (
	"fmt"
	"sort"
	"strings"

	"github.com/deploybot/deploybot/releases"
)

// Role is who runs deploybot: the bot (serve and every command but
// publish) or CI (publish).
type Role string

const (
	RoleBot Role = "bot"
	RoleCI  Role = "ci"
)

// PolicyDocument is an IAM identity-based policy.
type PolicyDocument struct {
	Version   string      `json:"Version"`
	Statement []Statement `json:"Statement"`
}

// Statement is one Allow statement of a PolicyDocument.
type Statement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Action    []string                       `json:"Action"`
	Resource  []string                       `json:"Resource"`
	Condition map[string]map[string][]string `json:"Condition,omitempty"`
}

// Policy is the least-privilege policy of role for sites: the actions
// deploybot's calls need (see Call), on the resources the configuration
// names. account is the AWS account of the CloudFront resources; empty:
// "*" (a distribution id names one distribution across all accounts).
// The partition is the one the sites' key value stores name, else aws.
//
// What each action is for:
//   - s3:ListBucket (ListObjectsV2) under the sites' prefixes: manifests,
//     release folders, prune;
//   - s3:GetObject (GetObject, HeadObject, CopyObject's source),
//     s3:PutObject (PutObject, multipart uploads, CopyObject's
//     destination), s3:DeleteObject (prune), s3:AbortMultipartUpload (a
//     failed large upload);
//   - cloudfront distribution calls: the origin-path flip, status, the
//     checks before a flip, the setup commands;
//   - cloudfront function calls: the checks before a kvs flip and
//     routing-setup's check (Describe/Get), kvs-setup and routing-setup
//     (Create/Update/Publish);
//   - cloudfront-keyvaluestore: the kvs flip, previews.
func Policy(role Role, sites []releases.Site, account string) (PolicyDocument, error) {
	if len(sites) == 0 {
		return PolicyDocument{}, fmt.Errorf("no sites")
	}
	if account == "" {
		account = "*"
	}
	partition := "aws"
	for _, s := range sites {
		if p, _, ok := strings.Cut(strings.TrimPrefix(s.KVSARN, "arn:"), ":"); ok && s.KVSARN != "" {
			partition = p
		}
	}
	doc := PolicyDocument{Version: "2012-10-17"}
	// Sites grouped by bucket, buckets in order, so the output is stable.
	byBucket := map[string][]releases.Site{}
	var buckets []string
	for _, s := range sites {
		if _, ok := byBucket[s.Bucket]; !ok {
			buckets = append(buckets, s.Bucket)
		}
		byBucket[s.Bucket] = append(byBucket[s.Bucket], s)
	}
	sort.Strings(buckets)
	objectActions := []string{"s3:GetObject", "s3:PutObject", "s3:DeleteObject", "s3:AbortMultipartUpload"}
	if role == RoleCI {
		// publish uploads, copies unchanged files, reads manifests; it
		// never deletes.
		objectActions = []string{"s3:GetObject", "s3:PutObject", "s3:AbortMultipartUpload"}
	} else if role != RoleBot {
		return PolicyDocument{}, fmt.Errorf("unknown role %q (bot or ci)", role)
	}
	for i, b := range buckets {
		list := Statement{Sid: fmt.Sprintf("ListReleases%d", i+1), Effect: "Allow", Action: []string{"s3:ListBucket"},
			Resource: []string{fmt.Sprintf("arn:%s:s3:::%s", partition, b)}}
		var prefixes, objects []string
		whole := false
		for _, s := range byBucket[b] {
			if s.Prefix == "" {
				whole = true
			}
			prefixes = append(prefixes, s.Prefix+"*")
			objects = append(objects, fmt.Sprintf("arn:%s:s3:::%s/%s*", partition, b, s.Prefix))
		}
		// A site with the empty prefix lists the whole bucket, with no
		// prefix parameter, which a s3:prefix condition would refuse.
		if !whole {
			list.Condition = map[string]map[string][]string{"StringLike": {"s3:prefix": prefixes}}
		}
		doc.Statement = append(doc.Statement, list, Statement{Sid: fmt.Sprintf("ReleaseObjects%d", i+1), Effect: "Allow",
			Action: objectActions, Resource: objects})
		if role == RoleCI {
			// CI writes releases and manifests; the shared state (locks,
			// freezes) and the history the bot rebuilds from are the bot's
			// alone, so a CI job cannot forge a lock, lift a freeze or
			// rewrite who did what.
			var botOnly []string
			for _, s := range byBucket[b] {
				botOnly = append(botOnly, fmt.Sprintf("arn:%s:s3:::%s/%s", partition, b, s.StatePrefix()+"*"),
					fmt.Sprintf("arn:%s:s3:::%s/%s", partition, b, s.HistoryPrefix()+"*"))
			}
			doc.Statement = append(doc.Statement, Statement{Sid: fmt.Sprintf("BotStateOnly%d", i+1), Effect: "Deny",
				Action: []string{"s3:PutObject", "s3:DeleteObject"}, Resource: botOnly})
		}
		if role == RoleBot {
			// The mirrored history is the store's durable copy: nothing
			// deploybot does deletes it, and the policy says so.
			var history []string
			for _, s := range byBucket[b] {
				history = append(history, fmt.Sprintf("arn:%s:s3:::%s/%s", partition, b, s.HistoryPrefix()+"*"))
			}
			doc.Statement = append(doc.Statement, Statement{Sid: fmt.Sprintf("KeepHistory%d", i+1), Effect: "Deny",
				Action: []string{"s3:DeleteObject"}, Resource: history})
		}
	}
	if role == RoleCI {
		return doc, nil
	}
	var dists, functions, stores []string
	for _, s := range sites {
		dists = append(dists, fmt.Sprintf("arn:%s:cloudfront::%s:distribution/%s", partition, account, s.DistributionID))
		for _, name := range []string{FunctionName(s), RouterName(s), ReleaseHeaderName(s)} {
			functions = append(functions, fmt.Sprintf("arn:%s:cloudfront::%s:function/%s", partition, account, name))
		}
		if s.KVSARN != "" {
			stores = append(stores, s.KVSARN)
		}
	}
	doc.Statement = append(doc.Statement,
		Statement{Sid: "FlipDistributions", Effect: "Allow", Resource: uniq(dists), Action: []string{
			"cloudfront:GetDistribution", "cloudfront:GetDistributionConfig", "cloudfront:UpdateDistribution",
			"cloudfront:CreateInvalidation", "cloudfront:GetInvalidation", "cloudfront:ListInvalidations"}},
		Statement{Sid: "ReadFunctions", Effect: "Allow", Resource: uniq(functions), Action: []string{
			"cloudfront:DescribeFunction", "cloudfront:GetFunction"}},
		// Only kvs-setup and routing-setup write functions; drop this
		// statement when an administrator runs them.
		Statement{Sid: "SetupCommands", Effect: "Allow", Resource: uniq(functions), Action: []string{
			"cloudfront:CreateFunction", "cloudfront:UpdateFunction", "cloudfront:PublishFunction"}})
	if len(stores) > 0 {
		doc.Statement = append(doc.Statement, Statement{Sid: "FlipByKey", Effect: "Allow", Resource: uniq(stores), Action: []string{
			"cloudfront-keyvaluestore:DescribeKeyValueStore", "cloudfront-keyvaluestore:GetKey", "cloudfront-keyvaluestore:PutKey"}})
	}
	return doc, nil
}

func uniq(list []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, v := range list {
		if !seen[v] {
			seen[v] = true
			out = append(out, v)
		}
	}
	return out
}
