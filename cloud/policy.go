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

// Statement is one statement of a PolicyDocument. Principal is for
// bucket policies only (WriteOnceStatement).
type Statement struct {
	Sid       string                         `json:"Sid"`
	Effect    string                         `json:"Effect"`
	Principal any                            `json:"Principal,omitempty"`
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
//     failed large upload); for CI, s3:PutObject only as publish writes:
//     release files and manifests only as new objects, latest.json, and
//     nothing of the bot's under .deploybot/ (ciWrites);
//   - cloudfront distribution calls: the origin-path flip, status, the
//     checks before a flip, the setup commands;
//   - cloudfront function calls: the checks before a kvs flip and
//     routing-setup's check (Describe/Get), kvs-setup and routing-setup
//     (Create/Update/Publish);
//   - cloudfront-keyvaluestore: the kvs flip, previews, rolling releases
//     (DeleteKey ends one).
func Policy(role Role, sites []releases.Site, account string) (PolicyDocument, error) {
	if len(sites) == 0 {
		return PolicyDocument{}, fmt.Errorf("no sites")
	}
	if account == "" {
		account = "*"
	}
	partition := partitionOf(sites)
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
		// publish reads manifests and the objects it finds in its way,
		// and aborts a failed large upload; it never deletes. Its writes
		// are ciWrites'.
		objectActions = []string{"s3:GetObject", "s3:AbortMultipartUpload"}
	} else if role != RoleBot {
		return PolicyDocument{}, fmt.Errorf("unknown role %q (bot or ci)", role)
	}
	for i, b := range buckets {
		doc.Statement = append(doc.Statement, bucketStatements(role, i+1, partition, b, byBucket[b], objectActions)...)
	}
	if role == RoleCI {
		return doc, nil
	}
	doc.Statement = append(doc.Statement, cloudFrontStatements(sites, buckets, partition, account)...)
	return doc, nil
}

// bucketARNs are the buckets' own ARNs (check reads their policies).
func bucketARNs(partition string, buckets []string) []string {
	var out []string
	for _, b := range buckets {
		out = append(out, fmt.Sprintf("arn:%s:s3:::%s", partition, b))
	}
	return out
}

// Condition keys of S3 writes
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html):
// s3:if-none-match and s3:if-match are the request's headers (absent
// without them); s3:ObjectCreationOperation is true for the requests that
// create an object (PutObject, CopyObject, CompleteMultipartUpload) and
// false for the parts of a multipart upload (CreateMultipartUpload,
// UploadPart, UploadPartCopy), which take no conditional header.
const (
	KeyIfNoneMatch    = "s3:if-none-match"
	KeyIfMatch        = "s3:if-match"
	KeyObjectCreation = "s3:ObjectCreationOperation"
)

// ciWrites are the CI role's writes in bucket (its i-th) for sites:
//   - release files and manifests only as new objects: s3:PutObject
//     anywhere under the sites' prefixes only with If-None-Match
//     (s3:if-none-match present), so a published release is never
//     overwritten, not even by a job that skips deploybot; the parts of
//     a multipart upload take no condition header and are exempt as the
//     enforce page says (s3:ObjectCreationOperation false), its complete
//     is not;
//   - latest.json, the index of the newest releases, which publish
//     updates in place (If-Match on the ETag it read), unconditionally;
//   - nothing of the bot's under .deploybot/: the shared state (locks,
//     freezes), the history the bot rebuilds from, and the live 404 page
//     of a kvs site are denied outright, create or replace (botOnly), so
//     a CI job cannot forge a lock, lift a freeze, rewrite who did what
//     or change the page visitors see. An IAM resource cannot say "every
//     key but these", so the deny names each of the bot's folders, and
//     TestCIPolicyCoversEveryDeploybotFolder fails when deploybot writes
//     under a .deploybot/ folder no one has sorted into one list or the
//     other.
func ciWrites(i int, partition, bucket string, sites []releases.Site) []Statement {
	arn := func(key string) string { return fmt.Sprintf("arn:%s:s3:::%s/%s", partition, bucket, key) }
	var objects, latest, botOnly []string
	for _, s := range sites {
		objects = append(objects, arn(s.Prefix+"*"))
		latest = append(latest, arn(latestKey(s)))
		for _, p := range botOnlyPrefixes(s) {
			botOnly = append(botOnly, arn(p+"*"))
		}
	}
	return []Statement{
		{Sid: fmt.Sprintf("CreateReleaseObjects%d", i), Effect: "Allow", Action: []string{"s3:PutObject"}, Resource: objects,
			Condition: map[string]map[string][]string{"Null": {KeyIfNoneMatch: {"false"}}}},
		{Sid: fmt.Sprintf("UploadParts%d", i), Effect: "Allow", Action: []string{"s3:PutObject"}, Resource: objects,
			Condition: map[string]map[string][]string{"Bool": {KeyObjectCreation: {"false"}}}},
		{Sid: fmt.Sprintf("UpdateLatest%d", i), Effect: "Allow", Action: []string{"s3:PutObject"}, Resource: latest},
		{Sid: fmt.Sprintf("BotStateOnly%d", i), Effect: "Deny", Action: []string{"s3:PutObject", "s3:DeleteObject"}, Resource: botOnly},
	}
}

// CIWritableDeploybotKeys are the keys under a site's .deploybot/ folder
// that CI writes (relative to it, a trailing "/" for a folder): the
// manifests, created only, and the index of the newest releases.
var CIWritableDeploybotKeys = []string{"releases/", "latest.json"}

// botOnlyPrefixes are the site's .deploybot/ folders that only the bot
// writes.
func botOnlyPrefixes(s releases.Site) []string {
	return []string{s.StatePrefix(), s.HistoryPrefix(), s.Prefix + LivePagePrefix}
}

// BotOnlyDeploybotFolders are botOnlyPrefixes relative to .deploybot/.
func BotOnlyDeploybotFolders() []string {
	var out []string
	for _, p := range botOnlyPrefixes(releases.Site{}) {
		out = append(out, strings.TrimPrefix(p, ".deploybot/"))
	}
	return out
}

// partitionOf is the partition the sites' key value stores name, else
// aws.
func partitionOf(sites []releases.Site) string {
	partition := "aws"
	for _, s := range sites {
		if p, _, ok := strings.Cut(strings.TrimPrefix(s.KVSARN, "arn:"), ":"); ok && s.KVSARN != "" {
			partition = p
		}
	}
	return partition
}

// WriteOnceStatement is the bucket policy statement docs/aws.md suggests
// beside CloudFront's: under the sites' prefixes in bucket, it denies
// every principal but the bot's role (botRoleARN) the creation of an
// object without If-None-Match or If-Match, as
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html
// shows it (the parts of a multipart upload, s3:ObjectCreationOperation
// false, take no such header and are not denied). If-Match is let
// through for CI's update of latest.json, which the CI role's own policy
// allows alone. The bot is exempt: its flip-time carry replaces, and
// the page's note says such a policy refuses every CopyObject.
func WriteOnceStatement(bucket string, sites []releases.Site, botRoleARN string) Statement {
	partition := partitionOf(sites)
	var objects []string
	for _, s := range sites {
		if s.Bucket == bucket {
			objects = append(objects, fmt.Sprintf("arn:%s:s3:::%s/%s*", partition, bucket, s.Prefix))
		}
	}
	return Statement{Sid: "ReleasesAreWrittenOnce", Effect: "Deny", Principal: "*", Action: []string{"s3:PutObject"}, Resource: objects,
		Condition: map[string]map[string][]string{
			"Null":         {KeyIfNoneMatch: {"true"}, KeyIfMatch: {"true"}},
			"Bool":         {KeyObjectCreation: {"true"}},
			"ArnNotEquals": {"aws:PrincipalArn": {botRoleARN}},
		}}
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

// bucketStatements are the statements of the n-th bucket, b, for sites
// in it: list its releases, read (and for the bot write and delete) their
// objects; the CI role's writes; the bot's deny on deleting the history.
func bucketStatements(role Role, n int, partition, b string, sites []releases.Site, objectActions []string) []Statement {
	var out []Statement
	list := Statement{Sid: fmt.Sprintf("ListReleases%d", n), Effect: "Allow", Action: []string{"s3:ListBucket"},
		Resource: []string{fmt.Sprintf("arn:%s:s3:::%s", partition, b)}}
	var prefixes, objects []string
	whole := false
	for _, s := range sites {
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
	out = append(out, list, Statement{Sid: fmt.Sprintf("ReleaseObjects%d", n), Effect: "Allow",
		Action: objectActions, Resource: objects})
	if role == RoleCI {
		out = append(out, ciWrites(n, partition, b, sites)...)
	}
	if role == RoleBot {
		// The mirrored history is the store's durable copy: nothing
		// deploybot does deletes it, and the policy says so.
		var history []string
		for _, s := range sites {
			history = append(history, fmt.Sprintf("arn:%s:s3:::%s/%s", partition, b, s.HistoryPrefix()+"*"))
		}
		out = append(out, Statement{Sid: fmt.Sprintf("KeepHistory%d", n), Effect: "Deny",
			Action: []string{"s3:DeleteObject"}, Resource: history})
	}
	return out
}

// cloudFrontStatements are the bot's: flip the sites' distributions,
// read (and, for the setup commands, write) their functions, check's reads
// of the buckets' policies and the origin access controls, and flip by key
// in the sites' key value stores.
func cloudFrontStatements(sites []releases.Site, buckets []string, partition, account string) []Statement {
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
	out := []Statement{
		{Sid: "FlipDistributions", Effect: "Allow", Resource: uniq(dists), Action: []string{
			"cloudfront:GetDistribution", "cloudfront:GetDistributionConfig", "cloudfront:UpdateDistribution",
			"cloudfront:CreateInvalidation", "cloudfront:GetInvalidation", "cloudfront:ListInvalidations"}},
		{Sid: "ReadFunctions", Effect: "Allow", Resource: uniq(functions), Action: []string{
			"cloudfront:DescribeFunction", "cloudfront:GetFunction"}},
		// deploybot check's reads (serve runs it at start): the bucket
		// policy, and the origin access control of each distribution
		// (CloudFront names it by id, which the distribution tells). One
		// statement per kind of resource: IAM's simulator, like a
		// reviewer, pairs every action of a statement with every
		// resource.
		{Sid: "CheckBucketPolicies", Effect: "Allow", Resource: uniq(bucketARNs(partition, buckets)), Action: []string{"s3:GetBucketPolicy"}},
		{Sid: "CheckAccessControls", Effect: "Allow", Resource: []string{fmt.Sprintf("arn:%s:cloudfront::%s:origin-access-control/*", partition, account)},
			Action: []string{"cloudfront:GetOriginAccessControl"}},
		// Only kvs-setup and routing-setup write functions; drop this
		// statement when an administrator runs them.
		{Sid: "SetupCommands", Effect: "Allow", Resource: uniq(functions), Action: []string{
			"cloudfront:CreateFunction", "cloudfront:UpdateFunction", "cloudfront:PublishFunction"}},
	}
	if len(stores) > 0 {
		out = append(out, Statement{Sid: "FlipByKey", Effect: "Allow", Resource: uniq(stores), Action: []string{
			"cloudfront-keyvaluestore:DescribeKeyValueStore", "cloudfront-keyvaluestore:GetKey", "cloudfront-keyvaluestore:PutKey",
			"cloudfront-keyvaluestore:DeleteKey"}})
	}
	return out
}
