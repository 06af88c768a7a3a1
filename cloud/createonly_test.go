package cloud_test

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"io"
	"strings"
	"sync/atomic"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/smithy-go"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// A release's files are created, never replaced: writing the same file
// again (an interrupted publish run again) is kept, anything else at the
// key is left as it is and the write fails naming it.
func TestReleaseFilesAreCreatedOnly(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	b := &cloud.S3Bucket{Client: e.S3, MultipartThreshold: 6 << 20, PartSize: 5 << 20}
	file := func(path, body string) releases.File {
		return releases.File{Path: path, Body: strings.NewReader(body), Size: int64(len(body)), SHA256: sha256hex(body),
			ContentType: "text/html; charset=utf-8", CacheControl: "no-cache"}
	}
	big := bytes.Repeat([]byte("0123456789abcdef"), (13<<20)/16+7) // three parts
	bigFile := func(b []byte) releases.File {
		return releases.File{Path: "big.bin", Body: bytes.NewReader(b), Size: int64(len(b)), ContentType: "application/octet-stream", CacheControl: "no-cache"}
	}
	if err := b.PutFile(ctx, e.Site, "v1", file("index.html", "<h1>v1</h1>")); err != nil {
		t.Fatal(err)
	}
	if err := b.PutFile(ctx, e.Site, "v1", bigFile(big)); err != nil {
		t.Fatal(err)
	}
	if err := b.CopyFile(ctx, e.Site, "v1", "index.html", "v2", file("index.html", "<h1>v1</h1>")); err != nil {
		t.Fatal(err)
	}
	before := e.AWS.Calls()
	tests := []struct {
		name string
		key  string
		run  func() error
		ok   bool
	}{
		{"the same file again", "", func() error { return b.PutFile(ctx, e.Site, "v1", file("index.html", "<h1>v1</h1>")) }, true},
		{"the same copy again", "", func() error {
			return b.CopyFile(ctx, e.Site, "v1", "index.html", "v2", file("index.html", "<h1>v1</h1>"))
		}, true},
		{"the same large file again", "", func() error { return b.PutFile(ctx, e.Site, "v1", bigFile(big)) }, true},
		{"other bytes, same size", "www/v1/index.html", func() error { return b.PutFile(ctx, e.Site, "v1", file("index.html", "<h1>v9</h1>")) }, false},
		{"other size", "www/v1/index.html", func() error { return b.PutFile(ctx, e.Site, "v1", file("index.html", "<h1>v10</h1>")) }, false},
		{"other headers", "www/v1/index.html", func() error {
			f := file("index.html", "<h1>v1</h1>")
			f.CacheControl = "public, max-age=60"
			return b.PutFile(ctx, e.Site, "v1", f)
		}, false},
		{"a copy of other bytes", "www/v2/index.html", func() error {
			if err := b.PutFile(ctx, e.Site, "v0", file("index.html", "<h1>v0</h1>")); err != nil {
				return err
			}
			return b.CopyFile(ctx, e.Site, "v0", "index.html", "v2", file("index.html", "<h1>v0</h1>"))
		}, false},
		{"another large file", "www/v1/big.bin", func() error {
			other := bytes.Clone(big)
			other[len(other)-1] ^= 1
			return b.PutFile(ctx, e.Site, "v1", bigFile(other))
		}, false},
	}
	for _, tt := range tests {
		err := tt.run()
		switch {
		case tt.ok && err != nil:
			t.Errorf("%s: %v", tt.name, err)
		case !tt.ok && (releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "s3://"+e.Site.Bucket+"/"+tt.key+" ") ||
			!strings.Contains(err.Error(), "new version")):
			t.Errorf("%s: %v; want a conflict naming %s and saying to publish a new version", tt.name, err, tt.key)
		}
	}
	for key, want := range map[string]string{"www/v1/index.html": "<h1>v1</h1>", "www/v2/index.html": "<h1>v1</h1>", "www/v1/big.bin": string(big)} {
		out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(key)})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(got) != want {
			t.Errorf("%s changed: %d bytes", key, len(got))
		}
	}
	// The large file already there was decided before its parts went up.
	after := e.AWS.Calls()
	if n := after["s3 UploadPart"] - before["s3 UploadPart"]; n != 0 {
		t.Errorf("%d parts sent for a large file that was there", n)
	}
}

// conflicting answers 409 ConditionalRequestConflict to the first n
// conditional writes, as S3 does while another conditional write to the
// key is in flight.
type conflicting struct {
	*s3.Client
	left atomic.Int32
}

func (c *conflicting) conflict() error {
	if c.left.Add(-1) >= 0 {
		return &smithy.GenericAPIError{Code: "ConditionalRequestConflict", Message: "A conflicting conditional operation is currently in progress against this resource."}
	}
	return nil
}

func (c *conflicting) PutObject(ctx context.Context, in *s3.PutObjectInput, opts ...func(*s3.Options)) (*s3.PutObjectOutput, error) {
	if err := c.conflict(); err != nil {
		return nil, err
	}
	return c.Client.PutObject(ctx, in, opts...)
}

func (c *conflicting) CopyObject(ctx context.Context, in *s3.CopyObjectInput, opts ...func(*s3.Options)) (*s3.CopyObjectOutput, error) {
	if err := c.conflict(); err != nil {
		return nil, err
	}
	return c.Client.CopyObject(ctx, in, opts...)
}

// 409 means "retry", not "it exists": the write is sent again, and the
// body from its start.
func TestConditionalConflictIsRetried(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	c := &conflicting{Client: e.S3}
	b := &cloud.S3Bucket{Client: c}
	c.left.Store(2)
	body := "<h1>v1</h1>"
	if err := b.PutFile(ctx, e.Site, "v1", releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body)), SHA256: sha256hex(body)}); err != nil {
		t.Fatal(err)
	}
	c.left.Store(2)
	if err := b.CopyFile(ctx, e.Site, "v1", "index.html", "v2", releases.File{Path: "index.html", Size: int64(len(body)), SHA256: sha256hex(body)}); err != nil {
		t.Fatal(err)
	}
	for _, v := range []string{"v1", "v2"} {
		out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ReleasePath(v) + "index.html")})
		if err != nil {
			t.Fatal(err)
		}
		got, _ := io.ReadAll(out.Body)
		out.Body.Close()
		if string(got) != body {
			t.Fatalf("%s: %q", v, got)
		}
	}
}

// A bucket whose policy enforces conditional writes refuses every copy
// (conditional-writes-enforce.html's note): CopyFile says so with
// ErrCopyRefused, and the bytes can still be written.
func TestCopyRefusedByAnEnforcingBucket(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	body := "<h1>v1</h1>"
	f := releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body)), SHA256: sha256hex(body)}
	if err := e.Bucket.PutFile(ctx, e.Site, "v1", f); err != nil {
		t.Fatal(err)
	}
	e.AWS.EnforceConditionalWrites(e.Site.Bucket, true)
	err := e.Bucket.CopyFile(ctx, e.Site, "v1", "index.html", "v2", releases.File{Path: "index.html", Size: int64(len(body)), SHA256: sha256hex(body)})
	if !errors.Is(err, releases.ErrCopyRefused) {
		t.Fatalf("copy into an enforcing bucket: %v, want ErrCopyRefused", err)
	}
	f.Body = strings.NewReader(body)
	if err := e.Bucket.PutFile(ctx, e.Site, "v2", f); err != nil {
		t.Fatalf("the bytes instead: %v", err)
	}
	// The bot's carry replaces, unconditionally: the enforcing policy
	// (which exempts the bot's role on AWS) refuses it here with 403.
	err = e.Bucket.CopyFile(ctx, e.Site, "v1", "index.html", "v3", releases.File{Path: "index.html", Replace: true})
	if errors.Is(err, releases.ErrCopyRefused) || err == nil {
		t.Fatalf("an unconditional copy: %v, want the AccessDenied itself", err)
	}
}

func sha256hex(body string) string {
	sum := sha256.Sum256([]byte(body))
	return hex.EncodeToString(sum[:])
}
