package cloud

import "testing"

func TestBucketOfOrigin(t *testing.T) {
	for _, tc := range []struct{ domain, want string }{
		{"site.s3.amazonaws.com", "site"},
		{"site.s3.us-east-1.amazonaws.com", "site"},
		{"Site.S3.EU-West-1.amazonaws.com.", "site"},
		{"my.dotted.bucket.s3.eu-west-1.amazonaws.com", "my.dotted.bucket"},
		{"legacy.s3-eu-west-1.amazonaws.com", "legacy"},
		{"cn-site.s3.cn-north-1.amazonaws.com.cn", "cn-site"},
		{"site.s3-website-us-east-1.amazonaws.com", ""},
		{"site.s3-website.eu-west-1.amazonaws.com", ""},
		{"s3.amazonaws.com", ""},
		{"example.com", ""},
		{"site.s3.us-east-1.amazonaws.com.evil.example", ""},
		{"site.s3.a.b.amazonaws.com", ""},
		{"", ""},
	} {
		if got := BucketOfOrigin(tc.domain); got != tc.want {
			t.Errorf("BucketOfOrigin(%q) = %q, want %q", tc.domain, got, tc.want)
		}
	}
}
