package localaws_test

import (
	"net/http"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/cloud"
)

// caller is an S3 client signing with access key ak.
func (f *fixture) caller(t *testing.T, ak string) *s3.Client {
	t.Helper()
	c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: f.api.URL,
		Credentials: cloud.StaticCredentials(ak, "secret"), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	return c
}

// A caller holding an identity-based policy gets what it allows, and a
// GET or HEAD of a missing key answers 404 only with s3:ListBucket on the
// bucket: a ListBucket allowed under an s3:prefix condition does not
// count, as a HEAD has no prefix (API_HeadObject.html).
func TestIdentityPolicyAndMissingKeys(t *testing.T) {
	f := newFixture(t, t.TempDir())
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	if _, err := f.s3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("www/there"), Body: strings.NewReader("x")}); err != nil {
		t.Fatal(err)
	}
	getOnly := `{"Version":"2012-10-17","Statement":{"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/www/*"}}`
	prefixList := `{"Version":"2012-10-17","Statement":[
	 {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/www/*"},
	 {"Effect":"Allow","Action":["s3:ListBucket"],"Resource":"arn:aws:s3:::bkt","Condition":{"StringLike":{"s3:prefix":["www/*"]}}}]}`
	wholeList := `{"Version":"2012-10-17","Statement":[
	 {"Effect":"Allow","Action":"s3:GetObject","Resource":"arn:aws:s3:::bkt/www/*"},
	 {"Effect":"Allow","Action":"s3:ListBucket","Resource":"arn:aws:s3:::bkt"}]}`
	for _, tc := range []struct {
		name, policy string
		missing      int // status of a HEAD of a missing key
		list         bool
	}{
		{"no policy (administrator)", "", http.StatusNotFound, true},
		{"GetObject only", getOnly, http.StatusForbidden, false},
		{"ListBucket under a prefix condition", prefixList, http.StatusForbidden, true},
		{"ListBucket on the bucket", wholeList, http.StatusNotFound, true},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := f.srv.SetIdentityPolicy("AKIDCALLER", []byte(tc.policy)); err != nil {
				t.Fatal(err)
			}
			c := f.caller(t, "AKIDCALLER")
			if _, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("www/there")}); err != nil {
				t.Fatalf("HEAD of a key that is there: %v", err)
			}
			_, err := c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("bkt"), Key: aws.String("www/missing")})
			if got := status(err); got != tc.missing {
				t.Fatalf("HEAD of a missing key: %d (%v), want %d", got, err, tc.missing)
			}
			_, err = c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("bkt"), Key: aws.String("www/missing")})
			if got := status(err); got != tc.missing {
				t.Fatalf("GET of a missing key: %d (%v), want %d", got, err, tc.missing)
			}
			if tc.missing == http.StatusForbidden && code(err) != "AccessDenied" {
				t.Fatalf("GET of a missing key: %v, want AccessDenied", err)
			}
			out, err := c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("bkt"), Prefix: aws.String("www/missing")})
			if tc.list && (err != nil || len(out.Contents) != 0) {
				t.Fatalf("listing the missing key: %v", err)
			}
			if !tc.list && code(err) != "AccessDenied" {
				t.Fatalf("listing without s3:ListBucket: %v", err)
			}
		})
	}
	// Outside the policy's resources, or past an explicit deny: 403.
	deny := `{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*"},
	 {"Effect":"Deny","Action":"s3:PutObject","Resource":"arn:aws:s3:::bkt/www/*","Condition":{"Null":{"s3:if-none-match":"true"}}}]}`
	if err := f.srv.SetIdentityPolicy("AKIDCALLER", []byte(deny)); err != nil {
		t.Fatal(err)
	}
	c := f.caller(t, "AKIDCALLER")
	_, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("www/new"), Body: strings.NewReader("x")})
	if code(err) != "AccessDenied" {
		t.Fatalf("a write the policy denies: %v", err)
	}
	if _, err := c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("bkt"), Key: aws.String("www/new"), Body: strings.NewReader("x"), IfNoneMatch: aws.String("*")}); err != nil {
		t.Fatalf("a write the policy allows: %v", err)
	}
	if _, err := c.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String("bkt"), Delete: &s3types.Delete{Objects: []s3types.ObjectIdentifier{{Key: aws.String("www/new")}}}}); err != nil {
		t.Fatalf("a delete the policy allows: %v", err)
	}
}

// What IAM would refuse, or the model cannot evaluate, is refused when
// set, not evaluated wrongly.
func TestIdentityPolicyRefused(t *testing.T) {
	f := newFixture(t, t.TempDir())
	for _, doc := range []string{
		`{`,
		`{"Statement":[]}`,
		`{"Statement":[{"Effect":"Allow","Principal":"*","Action":"s3:*","Resource":"*"}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"NumericLessThan":{"s3:max-keys":"10"}}}]}`,
		`{"Statement":[{"Effect":"Allow","Action":"s3:*","Resource":"*","Condition":{"ForAnyValue:StringLike":{"s3:prefix":"a"}}}]}`,
		`{"Statement":[{"Effect":"Maybe","Action":"s3:*","Resource":"*"}]}`,
	} {
		if err := f.srv.SetIdentityPolicy("AKIDX", []byte(doc)); err == nil {
			t.Errorf("%s was taken", doc)
		}
	}
}
