package localaws_test

import (
	"encoding/base64"
	"hash/crc32"
	"strings"
	"testing"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"
)

// A multipart upload's part checksums are checked as S3 checks them
// (partchecksum.go): the algorithm CreateMultipartUpload declared is the
// parts', each part's checksum matches its bytes, and Complete lists each
// part's checksum; and an upload that declared none fails to complete
// when the SDK's default CRC32 went with its parts and Complete lists the
// ETags alone, as real S3 does (aws-sdk-go-v2#3005).
func TestMultipartPartChecksums(t *testing.T) {
	f := newFixture(t, t.TempDir())
	if _, err := f.s3.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String("bkt")}); err != nil {
		t.Fatal(err)
	}
	const body = "one part"
	sum := crc32.ChecksumIEEE([]byte(body))
	crc := base64.StdEncoding.EncodeToString([]byte{byte(sum >> 24), byte(sum >> 16), byte(sum >> 8), byte(sum)})
	create := func(algo s3types.ChecksumAlgorithm) *string {
		t.Helper()
		up, err := f.s3.CreateMultipartUpload(ctx, &s3.CreateMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("k"), ChecksumAlgorithm: algo})
		if err != nil {
			t.Fatal(err)
		}
		return up.UploadId
	}
	// whenRequired: the SDK adds no checksum of its own.
	whenRequired := func(o *s3.Options) { o.RequestChecksumCalculation = aws.RequestChecksumCalculationWhenRequired }
	upload := func(id *string, in s3.UploadPartInput, opts ...func(*s3.Options)) (*s3.UploadPartOutput, error) {
		in.Bucket, in.Key, in.UploadId, in.PartNumber, in.Body = aws.String("bkt"), aws.String("k"), id, aws.Int32(1), strings.NewReader(body)
		return f.s3.UploadPart(ctx, &in, opts...)
	}
	complete := func(id *string, p s3types.CompletedPart) error {
		p.PartNumber = aws.Int32(1)
		_, err := f.s3.CompleteMultipartUpload(ctx, &s3.CompleteMultipartUploadInput{Bucket: aws.String("bkt"), Key: aws.String("k"), UploadId: id,
			MultipartUpload: &s3types.CompletedMultipartUpload{Parts: []s3types.CompletedPart{p}}})
		return err
	}

	// No algorithm declared; the SDK sends its CRC32 with the part anyway.
	id := create("")
	part, err := upload(id, s3.UploadPartInput{})
	if err != nil {
		t.Fatal(err)
	}
	if aws.ToString(part.ChecksumCRC32) != crc {
		t.Fatalf("the part's CRC32 %q, want %q (the SDK's default, answered back)", aws.ToString(part.ChecksumCRC32), crc)
	}
	if err := complete(id, s3types.CompletedPart{ETag: part.ETag}); code(err) != "InvalidPart" {
		t.Fatalf("complete by ETag alone of a part sent with a checksum: %v, want InvalidPart", err)
	}
	// ... and, with no checksum at all, completes.
	id = create("")
	if part, err = upload(id, s3.UploadPartInput{}, whenRequired); err != nil {
		t.Fatal(err)
	}
	if err := complete(id, s3types.CompletedPart{ETag: part.ETag}); err != nil {
		t.Fatalf("an upload without checksums: %v", err)
	}

	// CRC32 declared: parts without it, or with another algorithm, are refused.
	id = create(s3types.ChecksumAlgorithmCrc32)
	if _, err := upload(id, s3.UploadPartInput{}, whenRequired); code(err) != "InvalidRequest" {
		t.Fatalf("a part without the declared checksum: %v, want InvalidRequest", err)
	}
	if _, err := upload(id, s3.UploadPartInput{ChecksumAlgorithm: s3types.ChecksumAlgorithmSha256}); code(err) != "InvalidRequest" {
		t.Fatalf("a part with another algorithm: %v, want InvalidRequest", err)
	}
	// A checksum that is not the part's bytes'.
	if _, err := upload(id, s3.UploadPartInput{ChecksumCRC32: aws.String("AAAAAA==")}); code(err) != "BadDigest" {
		t.Fatalf("a part whose checksum does not match: %v, want BadDigest", err)
	}
	if part, err = upload(id, s3.UploadPartInput{ChecksumCRC32: aws.String(crc)}); err != nil {
		t.Fatal(err)
	}
	if err := complete(id, s3types.CompletedPart{ETag: part.ETag}); code(err) != "InvalidRequest" {
		t.Fatalf("complete without the part's checksum: %v, want InvalidRequest", err)
	}
	if err := complete(id, s3types.CompletedPart{ETag: part.ETag, ChecksumCRC32: aws.String("AAAAAA==")}); code(err) != "InvalidPart" {
		t.Fatalf("complete with another checksum: %v, want InvalidPart", err)
	}
	if err := complete(id, s3types.CompletedPart{ETag: part.ETag, ChecksumCRC32: aws.String(crc)}); err != nil {
		t.Fatalf("complete with the part's checksum: %v", err)
	}
}
