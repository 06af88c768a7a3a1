package iamcheck

import (
	"testing"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

func TestPolicyAllowsWhatEachRoleDoesAndNoMore(t *testing.T) {
	www := releases.Site{Name: "www", Bucket: "example-site", Prefix: "www/", DistributionID: "E2EXAMPLE"}
	docs := releases.Site{Name: "docs", Bucket: "example-site", Prefix: "docs/", DistributionID: "E3EXAMPLE", Strategy: cloud.StrategyKVS,
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
		{"bot publishes the kvs function", bot, call("cloudfront", "PublishFunction", "Name", "deploybot-docs"), true},
		{"bot publishes the router", bot, call("cloudfront", "PublishFunction", "Name", "deploybot-www-router"), true},
		{"bot publishes someone's function", bot, call("cloudfront", "PublishFunction", "Name", "auth-check"), false},
		{"bot writes the key", bot, call("cloudfront-keyvaluestore", "PutKey", "KvsARN", "arn:aws:cloudfront::123456789012:key-value-store/abc"), true},
		{"bot writes another store", bot, call("cloudfront-keyvaluestore", "PutKey", "KvsARN", "arn:aws:cloudfront::123456789012:key-value-store/xyz"), false},
		{"one site's policy", onlyWWW, call("cloudfront", "UpdateDistribution", "Id", "E3EXAMPLE"), false},
		{"bot mirrors its history", bot, call("s3", "PutObject", "Bucket", "example-site", "Key", "www/.deploybot/history/audit/x.json"), true},
		{"bot reads its history", bot, call("s3", "GetObject", "Bucket", "example-site", "Key", "docs/.deploybot/history/state/pins.json"), true},
		{"bot deletes its history", bot, call("s3", "DeleteObject", "Bucket", "example-site", "Key", "www/.deploybot/history/audit/x.json"), false},
		{"ci uploads", ci, call("s3", "PutObject", "Bucket", "example-site", "Key", "docs/v9/index.html"), true},
		{"ci uploads in parts", ci, call("s3", "UploadPart", "Bucket", "example-site", "Key", "docs/v9/big.bin"), true},
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
