package cloud_test

// S3Bucket's uploads against the stand-in: headers, checksums both ways,
// multipart for large files.

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"hash/crc32"
	"io"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
)

func TestS3KeepsHeaders(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	e.put(t, "v1", "a/b c.html", "hello")
	out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v1/a/b c.html")})
	if err != nil {
		t.Fatal(err)
	}
	body, _ := io.ReadAll(out.Body)
	out.Body.Close()
	if string(body) != "hello" || aws.ToString(out.ContentType) != "text/html; charset=utf-8" || aws.ToString(out.CacheControl) != "no-cache" {
		t.Fatalf("got %q %q %q", body, aws.ToString(out.ContentType), aws.ToString(out.CacheControl))
	}
	// CopyObject keeps metadata; If-Match on a stale ETag is refused.
	if _, err := e.S3.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v2/x.html"),
		CopySource: aws.String("site-bucket/www/v1/a/b%20c.html")}); err != nil {
		t.Fatal(err)
	}
	head, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v2/x.html")})
	if err != nil || aws.ToString(head.CacheControl) != "no-cache" || aws.ToInt64(head.ContentLength) != 5 {
		t.Fatalf("copy: %+v %v", head, err)
	}
	_, err = e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v2/x.html"),
		Body: bytes.NewReader([]byte("new")), IfMatch: aws.String(`"0123"`)})
	if err == nil {
		t.Fatal("stale If-Match accepted")
	}
}

// onlyReader hides Seek, so the SDK streams the body (aws-chunked with a
// trailing checksum) instead of hashing it up front.
type onlyReader struct{ io.Reader }

func TestS3ChecksumsBothWays(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	body := strings.Repeat("0123456789", 10000)
	// The SDK streams with a trailing checksum only over TLS.
	tlsAPI := httptest.NewTLSServer(e.AWS.Handler())
	t.Cleanup(tlsAPI.Close)
	cfg, err := config.LoadDefaultConfig(ctx, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(cloud.StaticCredentials("AKIDLOCAL", "secret")))
	if err != nil {
		t.Fatal(err)
	}
	tlsS3 := s3.NewFromConfig(cfg, func(o *s3.Options) {
		o.BaseEndpoint, o.UsePathStyle, o.HTTPClient = aws.String(tlsAPI.URL), true, tlsAPI.Client()
	})
	for _, tc := range []struct {
		name string
		in   *s3.PutObjectInput
	}{
		{"seekable", &s3.PutObjectInput{Body: strings.NewReader(body)}},
		{"streamed", &s3.PutObjectInput{Body: onlyReader{strings.NewReader(body)}, ContentLength: aws.Int64(int64(len(body)))}},
		{"sha256", &s3.PutObjectInput{Body: strings.NewReader(body), ChecksumAlgorithm: "SHA256"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.in.Bucket, tc.in.Key = aws.String("site-bucket"), aws.String("ck/"+tc.name)
			if _, err := tlsS3.PutObject(ctx, tc.in); err != nil {
				t.Fatal(err)
			}
			out, err := e.S3.GetObject(ctx, &s3.GetObjectInput{Bucket: tc.in.Bucket, Key: tc.in.Key, ChecksumMode: "ENABLED"})
			if err != nil {
				t.Fatal(err)
			}
			got, err := io.ReadAll(out.Body)
			out.Body.Close()
			if err != nil || string(got) != body {
				t.Fatalf("read back %d bytes, err %v", len(got), err)
			}
			if aws.ToString(out.ChecksumCRC32) == "" && aws.ToString(out.ChecksumSHA256) == "" && aws.ToString(out.ChecksumCRC64NVME) == "" {
				t.Fatalf("no checksum returned")
			}
		})
	}
	// A wrong checksum is refused and nothing is stored.
	_, err = e.S3.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("ck/bad"),
		Body: strings.NewReader(body), ChecksumSHA256: aws.String("q2FkOgzUe5hwP6PaVZMw+G7QY3dvbdyIf5PeqEQIHhI=")})
	var ae interface{ ErrorCode() string }
	if !errors.As(err, &ae) || ae.ErrorCode() != "BadDigest" {
		t.Fatalf("bad checksum: %v", err)
	}
	if _, err := e.S3.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("ck/bad")}); err == nil {
		t.Fatal("object with a bad checksum was stored")
	}
}

// sectionFile is what publish hands PutFile: a seekable file that can be
// read at offsets, so parts stream from disk.
func TestLargeFilesGoUpInParts(t *testing.T) {
	for _, server := range []string{"localaws", "versitygw"} {
		t.Run(server, func(t *testing.T) {
			ctx := context.Background()
			var s3c *s3.Client
			site := releases.Site{Name: "www", Bucket: "site-bucket", Prefix: "www/"}
			if server == "localaws" {
				s3c = newEnv(t, 0, 0).S3
			} else {
				endpoint := testaws.StartVersityGW(t)
				var err error
				s3c, _, err = cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: endpoint, Credentials: cloud.StaticCredentials(testaws.AccessKey, testaws.SecretKey)})
				if err != nil {
					t.Fatal(err)
				}
				if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("site-bucket")}); err != nil {
					t.Fatal(err)
				}
			}
			b := &cloud.S3Bucket{Client: s3c, MultipartThreshold: 6 << 20, PartSize: 5 << 20}
			body := bytes.Repeat([]byte("0123456789abcdef"), (13<<20)/16+7) // 13 MiB + 112 B: three parts
			if err := b.PutFile(ctx, site, "v1", releases.File{Path: "big.bin", Body: bytes.NewReader(body), Size: int64(len(body)),
				ContentType: "application/octet-stream", CacheControl: "public, max-age=60"}); err != nil {
				t.Fatal(err)
			}
			out, err := s3c.GetObject(ctx, &s3.GetObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v1/big.bin")})
			if err != nil {
				t.Fatal(err)
			}
			got, _ := io.ReadAll(out.Body)
			out.Body.Close()
			if !bytes.Equal(got, body) || aws.ToString(out.CacheControl) != "public, max-age=60" {
				t.Fatalf("read back %d bytes (want %d), cache %q", len(got), len(body), aws.ToString(out.CacheControl))
			}
			if !strings.HasSuffix(strings.Trim(aws.ToString(out.ETag), `"`), "-3") {
				t.Fatalf("ETag %s is not a 3-part multipart ETag", aws.ToString(out.ETag))
			}
			// The upload declared CRC32 and listed each part's on
			// Complete (partChecksum): the object keeps the composite
			// checksum of the parts' CRC32s.
			head, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v1/big.bin"), ChecksumMode: "ENABLED"})
			if err != nil {
				t.Fatal(err)
			}
			var sums []byte
			for off := 0; off < len(body); off += 5 << 20 {
				sums = binary.BigEndian.AppendUint32(sums, crc32.ChecksumIEEE(body[off:min(off+5<<20, len(body))]))
			}
			want := base64.StdEncoding.EncodeToString(binary.BigEndian.AppendUint32(nil, crc32.ChecksumIEEE(sums))) + "-3"
			if got := aws.ToString(head.ChecksumCRC32); got != want || head.ChecksumType != "COMPOSITE" {
				t.Fatalf("the object's checksum: CRC32 %q (%s), want %q COMPOSITE", got, head.ChecksumType, want)
			}
			// And through publish: a release with a large file.
			dir := t.TempDir()
			if err := os.WriteFile(filepath.Join(dir, "big.bin"), body, 0o644); err != nil {
				t.Fatal(err)
			}
			if err := os.WriteFile(filepath.Join(dir, "index.html"), []byte("<h1>big</h1>"), 0o644); err != nil {
				t.Fatal(err)
			}
			res, err := (&publish.Publisher{Bucket: b}).Publish(ctx, publish.Request{Site: site, Version: "v2", Dir: dir})
			if err != nil || res.Uploaded != 2 {
				t.Fatalf("publishing a release with a large file: %+v %v", res, err)
			}
			head, err = s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String("site-bucket"), Key: aws.String("www/v2/big.bin"), ChecksumMode: "ENABLED"})
			if err != nil || aws.ToString(head.ChecksumCRC32) != want {
				t.Fatalf("the published large file: %v, CRC32 %q", err, aws.ToString(head.ChecksumCRC32))
			}
		})
	}
}

// checkPutFileSHA256 shows that the SHA-256 publish computed reaches S3 as
// the object's checksum, and that a body that does not match it is
// refused by S3 itself, with nothing stored.
func checkPutFileSHA256(t *testing.T, s3c *s3.Client, site releases.Site) {
	t.Helper()
	ctx := context.Background()
	b := &cloud.S3Bucket{Client: s3c}
	sum := sha256.Sum256([]byte("the real body"))
	hexSum := hex.EncodeToString(sum[:])
	body := "the real body"
	if err := b.PutFile(ctx, site, "ck", releases.File{Path: "ok.html", Body: strings.NewReader(body), Size: int64(len(body)), SHA256: hexSum}); err != nil {
		t.Fatal(err)
	}
	out, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(site.ReleasePath("ck") + "ok.html"), ChecksumMode: "ENABLED"})
	if err != nil {
		t.Fatal(err)
	}
	if got := aws.ToString(out.ChecksumSHA256); got != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Fatalf("stored checksum %q, want the manifest's SHA-256", got)
	}
	bad := "a corrupted body"
	err = b.PutFile(ctx, site, "ck", releases.File{Path: "bad.html", Body: strings.NewReader(bad), Size: int64(len(bad)), SHA256: hexSum})
	if err == nil {
		t.Fatal("a body not matching its SHA-256 was accepted")
	}
	if _, err := s3c.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(site.ReleasePath("ck") + "bad.html")}); err == nil {
		t.Fatal("the corrupted body was stored")
	}
}

func TestPutFileChecksSHA256(t *testing.T) {
	e := newEnv(t, 0, 0)
	checkPutFileSHA256(t, e.S3, e.Site)
}
