package iamcheck

import (
	"maps"
	"testing"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

func TestPolicyAllowsWhatEachRoleDoesAndNoMore(t *testing.T) {
	www := releases.Site{Name: "www", Install: "prod", Bucket: "example-site", Prefix: "www/", DistributionID: "E2EXAMPLE"}
	docs := releases.Site{Name: "docs", Install: "prod", Bucket: "example-site", Prefix: "docs/", DistributionID: "E3EXAMPLE", Strategy: cloud.StrategyKVS,
		KVSARN: "arn:aws:cloudfront::123456789012:key-value-store/abc"}
	bot, err := cloud.Policy(cloud.RoleBot, []releases.Site{www, docs}, "")
	if err != nil {
		t.Fatal(err)
	}
	ci, err := cloud.Policy(cloud.RoleCI, []releases.Site{www, docs}, "")
	if err != nil {
		t.Fatal(err)
	}
	onlyWWW, err := cloud.Policy(cloud.RoleBot, []releases.Site{www}, "123456789012")
	if err != nil {
		t.Fatal(err)
	}
	call := func(service, op string, params ...string) cloud.Call {
		c := cloud.Call{Service: service, Operation: op, Params: map[string]string{}}
		for i := 0; i+1 < len(params); i += 2 {
			c.Params[params[i]] = params[i+1]
		}
		return c
	}
	tests := []struct {
		name string
		doc  cloud.PolicyDocument
		call cloud.Call
		want bool
	}{
		{"bot lists manifests", bot, call("s3", "ListObjectsV2", "Bucket", "example-site", "Prefix", "www/.deploybot/releases/"), true},
		{"bot lists another prefix", bot, call("s3", "ListObjectsV2", "Bucket", "example-site", "Prefix", "other/"), false},
		{"bot lists without a prefix", bot, call("s3", "ListObjectsV2", "Bucket", "example-site"), false},
		{"bot deletes a release file", bot, call("s3", "DeleteObject", "Bucket", "example-site", "Key", "www/v1/index.html"), true},
		{"bot deletes outside the prefixes", bot, call("s3", "DeleteObject", "Bucket", "example-site", "Key", "secrets/x"), false},
		{"bot copies within a site", bot, call("s3", "CopyObject", "Bucket", "example-site", "Key", "www/v2/a%2Bb.js", "CopySource", "example-site/www/v1/a%2Bb.js"), true},
		{"bot copies from another bucket", bot, call("s3", "CopyObject", "Bucket", "example-site", "Key", "www/v2/a.js", "CopySource", "other/www/v1/a.js"), false},
		{"bot flips", bot, call("cloudfront", "UpdateDistribution", "Id", "E2EXAMPLE"), true},
		{"bot waits for its invalidation", bot, call("cloudfront", "GetInvalidation", "DistributionId", "E2EXAMPLE", "Id", "I2J0I21PCUYOIK"), true},
		{"bot flips another distribution", bot, call("cloudfront", "UpdateDistribution", "Id", "EOTHER"), false},
		{"bot publishes the kvs function", bot, call("cloudfront", "PublishFunction", "Name", "prod-docs"), true},
		{"bot publishes another install's function", bot, call("cloudfront", "PublishFunction", "Name", "staging-docs"), false},
		{"bot publishes a function named before install names", bot, call("cloudfront", "PublishFunction", "Name", "deploybot-docs"), false},
		{"bot publishes the router", bot, call("cloudfront", "PublishFunction", "Name", "prod-www-router"), true},
		{"bot publishes someone's function", bot, call("cloudfront", "PublishFunction", "Name", "auth-check"), false},
		{"bot writes the key", bot, call("cloudfront-keyvaluestore", "PutKey", "KvsARN", "arn:aws:cloudfront::123456789012:key-value-store/abc"), true},
		{"bot writes another store", bot, call("cloudfront-keyvaluestore", "PutKey", "KvsARN", "arn:aws:cloudfront::123456789012:key-value-store/xyz"), false},
		{"one site's policy", onlyWWW, call("cloudfront", "UpdateDistribution", "Id", "E3EXAMPLE"), false},
		{"bot mirrors its history", bot, call("s3", "PutObject", "Bucket", "example-site", "Key", "www/.deploybot/history/audit/x.json"), true},
		{"bot reads its history", bot, call("s3", "GetObject", "Bucket", "example-site", "Key", "docs/.deploybot/history/state/pins.json"), true},
		{"bot deletes its history", bot, call("s3", "DeleteObject", "Bucket", "example-site", "Key", "www/.deploybot/history/audit/x.json"), false},
		// CI creates release files and manifests, never replaces them
		// (s3:if-none-match), updates latest.json, and writes nothing of
		// the bot's.
		{"ci creates a release file", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "docs/v9/index.html", "IfNoneMatch", "*"), true},
		{"ci overwrites a release file", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "docs/v9/index.html"), false},
		{"ci replaces a release file it read", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "docs/v9/index.html", "IfMatch", `"e"`), false},
		{"ci copies into a new key", ci, call("s3", "CopyObject", "Bucket", "example-site", "Key", "www/v2/a.js", "CopySource", "example-site/www/v1/a.js", "IfNoneMatch", "*"), true},
		{"ci copies over a key", ci, call("s3", "CopyObject", "Bucket", "example-site", "Key", "www/v2/a.js", "CopySource", "example-site/www/v1/a.js"), false},
		{"ci starts a large upload", ci, call("s3", "CreateMultipartUpload", "Bucket", "example-site", "Key", "docs/v9/big.bin"), true},
		{"ci uploads in parts", ci, call("s3", "UploadPart", "Bucket", "example-site", "Key", "docs/v9/big.bin"), true},
		{"ci completes a new object", ci, call("s3", "CompleteMultipartUpload", "Bucket", "example-site", "Key", "docs/v9/big.bin", "IfNoneMatch", "*"), true},
		{"ci completes over an object", ci, call("s3", "CompleteMultipartUpload", "Bucket", "example-site", "Key", "docs/v9/big.bin"), false},
		{"ci aborts a large upload", ci, call("s3", "AbortMultipartUpload", "Bucket", "example-site", "Key", "docs/v9/big.bin"), true},
		{"ci creates a manifest", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "www/.deploybot/releases/v9.json", "IfNoneMatch", "*"), true},
		{"ci replaces a manifest", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "www/.deploybot/releases/v9.json"), false},
		{"ci updates latest.json", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "www/.deploybot/latest.json", "IfMatch", `"e"`), true},
		{"ci seeds latest.json", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "docs/.deploybot/latest.json", "IfNoneMatch", "*"), true},
		{"ci writes latest.json bare", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "docs/.deploybot/latest.json"), true},
		{"ci creates a lock", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "www/.deploybot/state/lock.json", "IfNoneMatch", "*"), false},
		{"ci replaces a lock", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "www/.deploybot/state/lock.json", "IfMatch", `"e"`), false},
		{"ci adds history", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "docs/.deploybot/history/audit/x.json", "IfNoneMatch", "*"), false},
		{"ci writes the live 404 page", ci, call("s3", "CopyObject", "Bucket", "example-site", "Key", "docs/.deploybot/live/404.html", "CopySource", "example-site/docs/v9/404.html", "IfNoneMatch", "*"), false},
		{"ci writes another bucket", ci, call("s3", "PutObject", "Bucket", "other", "Key", "docs/v9/index.html", "IfNoneMatch", "*"), false},
		{"bot carries over an earlier carry", bot, call("s3", "CopyObject", "Bucket", "example-site", "Key", "www/v2/a.js", "CopySource", "example-site/www/v1/a.js"), true},
		{"ci deletes", ci, call("s3", "DeleteObject", "Bucket", "example-site", "Key", "docs/v9/index.html"), false},
		{"ci flips", ci, call("cloudfront", "UpdateDistribution", "Id", "E2EXAMPLE"), false},
	}
	for _, tt := range tests {
		needs, err := Needs(tt.call, "123456789012")
		if err != nil {
			t.Fatalf("%s: %v", tt.name, err)
		}
		got := len(needs) > 0
		for _, n := range needs {
			got = got && Allowed(tt.doc, n)
		}
		if got != tt.want {
			t.Errorf("%s: allowed %v, want %v (%v)", tt.name, got, tt.want, needs)
		}
	}
	if _, err := Needs(call("s3", "PutBucketPolicy", "Bucket", "example-site"), "1"); err == nil {
		t.Error("an operation iamcheck does not know passed")
	}
}

// Condition blocks hold as IAM evaluates them.
func TestConditions(t *testing.T) {
	put := func(keys map[string]string) Need {
		return Need{Action: "s3:PutObject", Resource: "arn:aws:s3:::b/k", Keys: keys}
	}
	list := Need{Action: "s3:ListBucket", Resource: "arn:aws:s3:::b", Prefix: "www/x", HasPrefix: true}
	type cond = map[string]map[string][]string
	tests := []struct {
		name string
		cond cond
		need Need
		want bool
	}{
		{"no condition", nil, put(nil), true},
		{"Null false: the header is there", cond{"Null": {"s3:if-none-match": {"false"}}}, put(map[string]string{"s3:if-none-match": "*"}), true},
		{"Null false: the header is not", cond{"Null": {"s3:if-none-match": {"false"}}}, put(nil), false},
		{"Null true: the header is not", cond{"Null": {"s3:if-none-match": {"true"}}}, put(nil), true},
		{"Null true: the header is there", cond{"Null": {"s3:if-none-match": {"true"}}}, put(map[string]string{"s3:if-none-match": "*"}), false},
		{"Null of two keys: both must hold", cond{"Null": {"s3:if-none-match": {"true"}, "s3:if-match": {"true"}}}, put(map[string]string{"s3:if-match": `"e"`}), false},
		{"Null with a value that is not a boolean", cond{"Null": {"s3:if-none-match": {"yes"}}}, put(nil), false},
		{"key names are case-blind", cond{"Bool": {"S3:objectcreationoperation": {"false"}}}, put(map[string]string{"s3:objectcreationoperation": "false"}), true},
		{"Bool values are case-blind", cond{"Bool": {"s3:ObjectCreationOperation": {"FALSE"}}}, put(map[string]string{"s3:objectcreationoperation": "false"}), true},
		{"Bool of another value", cond{"Bool": {"s3:ObjectCreationOperation": {"false"}}}, put(map[string]string{"s3:objectcreationoperation": "true"}), false},
		{"Bool of a key the request lacks", cond{"Bool": {"s3:ObjectCreationOperation": {"false"}}}, put(nil), false},
		{"two operators: both must hold", cond{"Null": {"s3:if-none-match": {"true"}}, "Bool": {"s3:ObjectCreationOperation": {"true"}}},
			put(map[string]string{"s3:objectcreationoperation": "false"}), false},
		{"StringLike on s3:prefix", cond{"StringLike": {"s3:prefix": {"www/*"}}}, list, true},
		{"StringLike, any of the values", cond{"StringLike": {"s3:prefix": {"docs/*", "www/*"}}}, list, true},
		{"StringEquals", cond{"StringEquals": {"s3:if-none-match": {"*"}}}, put(map[string]string{"s3:if-none-match": "*"}), true},
		{"ArnNotEquals of another principal", cond{"ArnNotEquals": {"aws:PrincipalArn": {"arn:aws:iam::1:role/bot"}}}, put(map[string]string{"aws:principalarn": "arn:aws:iam::1:role/ci"}), true},
		{"ArnNotEquals of that principal", cond{"ArnNotEquals": {"aws:PrincipalArn": {"arn:aws:iam::1:role/bot"}}}, put(map[string]string{"aws:principalarn": "arn:aws:iam::1:role/bot"}), false},
		{"an operator iamcheck does not know", cond{"IpAddress": {"aws:SourceIp": {"10.0.0.0/8"}}}, put(nil), false},
	}
	for _, tt := range tests {
		if got := conditionHolds(tt.cond, tt.need); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
	// An unknown condition on a Deny refuses nothing: say so in the
	// package doc, and keep it that way.
	doc := cloud.PolicyDocument{Statement: []cloud.Statement{
		{Effect: "Allow", Action: []string{"s3:PutObject"}, Resource: []string{"*"}},
		{Effect: "Deny", Action: []string{"s3:PutObject"}, Resource: []string{"*"}, Condition: cond{"Null": {"s3:if-none-match": {"true"}}}},
	}}
	if Allowed(doc, put(nil)) || !Allowed(doc, put(map[string]string{"s3:if-none-match": "*"})) {
		t.Error("a conditional Deny does not refuse what it names, or refuses more")
	}
}

// The bucket policy statement docs/aws.md suggests denies every principal
// but the bot's role an object creation without a condition header under
// the sites' prefixes, and nothing publish or the bot does.
func TestWriteOnceBucketStatement(t *testing.T) {
	const bot, ci = "arn:aws:iam::123456789012:role/deploybot", "arn:aws:iam::123456789012:role/ci"
	www := releases.Site{Name: "www", Install: "prod", Bucket: "example-site", Prefix: "www/", DistributionID: "E2EXAMPLE"}
	doc := cloud.PolicyDocument{Statement: []cloud.Statement{
		// What the identity policies allow, here all of it: the bucket
		// policy's Deny is what is checked.
		{Effect: "Allow", Action: []string{"s3:*"}, Resource: []string{"*"}},
		cloud.WriteOnceStatement("example-site", []releases.Site{www}, bot),
	}}
	as := func(principal, op, key string, params ...string) Need {
		c := cloud.Call{Service: "s3", Operation: op, Params: map[string]string{"Bucket": "example-site", "Key": key}}
		for i := 0; i+1 < len(params); i += 2 {
			c.Params[params[i]] = params[i+1]
		}
		needs, err := Needs(c, "123456789012")
		if err != nil {
			t.Fatal(err)
		}
		n := needs[len(needs)-1] // a copy's write
		n.Keys = maps.Clone(n.Keys)
		n.Keys["aws:principalarn"] = principal
		return n
	}
	tests := []struct {
		name string
		need Need
		want bool
	}{
		{"ci overwrites a release file", as(ci, "PutObject", "www/v1/index.html"), false},
		{"ci creates a release file", as(ci, "PutObject", "www/v1/index.html", "IfNoneMatch", "*"), true},
		{"ci copies over a release file", as(ci, "CopyObject", "www/v1/a.js", "CopySource", "example-site/www/v0/a.js"), false},
		{"ci completes over a release file", as(ci, "CompleteMultipartUpload", "www/v1/big.bin"), false},
		{"ci uploads a part", as(ci, "UploadPart", "www/v1/big.bin"), true},
		{"ci updates latest.json", as(ci, "PutObject", "www/.deploybot/latest.json", "IfMatch", `"e"`), true},
		{"ci writes outside the site", as(ci, "PutObject", "other/x"), true},
		{"the bot carries over an earlier carry", as(bot, "CopyObject", "www/v1/a.js", "CopySource", "example-site/www/v2/a.js"), true},
		{"the bot writes its live page", as(bot, "PutObject", "www/.deploybot/live/404.html"), true},
	}
	for _, tt := range tests {
		if got := Allowed(doc, tt.need); got != tt.want {
			t.Errorf("%s: allowed %v, want %v (%v)", tt.name, got, tt.want, tt.need)
		}
	}
}
