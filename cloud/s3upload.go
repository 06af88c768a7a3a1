// S3Bucket's uploads: PutFile (one PutObject, or a multipart upload for
// a large file), CopyFile between releases, the stamp every object
// carries.

package cloud

import (
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/deploybot/deploybot/releases"
	"golang.org/x/sync/errgroup"
)

// PutFile uploads one release file, stamped with its release (stamp),
// with the SHA-256 publish computed as its checksum (below); a large file
// goes in parts.
func (b *S3Bucket) PutFile(ctx context.Context, site releases.Site, version string, f releases.File) error {
	key := site.ReleasePath(version) + f.Path
	threshold := b.MultipartThreshold
	if threshold <= 0 {
		threshold = 64 << 20
	}
	if ra, ok := f.Body.(io.ReaderAt); ok && f.Size >= threshold {
		if mp, ok := b.Client.(S3Multipart); ok {
			return b.putMultipart(ctx, mp, site, key, version, f, ra)
		}
	}
	in := &s3.PutObjectInput{
		Bucket: aws.String(site.Bucket), Key: aws.String(key),
		Body: f.Body, ContentLength: aws.Int64(f.Size), Metadata: stamp(version),
	}
	in.ContentType, in.CacheControl, in.ContentEncoding = optional(f.ContentType), optional(f.CacheControl), optional(f.ContentEncoding)
	if sum, err := hex.DecodeString(f.SHA256); err == nil && len(sum) == sha256.Size {
		// The hash publish already computed (the one the manifest records)
		// goes as x-amz-checksum-sha256: S3 refuses a body that does not
		// match it, end to end, and the SDK neither re-reads the file for a
		// checksum of its own nor wraps the body in aws-chunked framing.
		in.ChecksumSHA256 = aws.String(base64.StdEncoding.EncodeToString(sum))
	}
	if !f.Replace {
		// Create only (see createonly.go).
		in.IfNoneMatch = aws.String("*")
	}
	// Where the body starts, to send it again from there after a 409.
	var start int64
	if f.Body != nil {
		var err error
		if start, err = f.Body.Seek(0, io.SeekCurrent); err != nil {
			return err
		}
	}
	err := retryConditional(ctx, conditionalRetry, func() error {
		if f.Body != nil {
			if _, err := f.Body.Seek(start, io.SeekStart); err != nil {
				return err
			}
		}
		var err error
		if b.Uploads != nil {
			_, err = b.Uploads.PutObject(ctx, in)
		} else {
			_, err = b.Client.PutObject(ctx, in, unsignedPayload)
		}
		if isPreconditionFailed(err) && !f.Replace {
			var body io.ReadSeeker
			if start == 0 {
				body = f.Body
			}
			return b.keepExisting(ctx, site, key, version, f, body, "")
		}
		return err
	})
	if releases.ErrorCode(err) == releases.ECONFLICT {
		return err
	}
	if err != nil {
		return fmt.Errorf("uploading s3://%s/%s: %w", site.Bucket, key, err)
	}
	return nil
}

// stamp is the user metadata every object of a release carries, naming
// it: CloudFront hands it to visitors as releases.MetadataHeader, or as
// releases.ReleaseHeader through the site's viewer-response function
// (ReleaseHeaderCode); the visible phase reads either. A copy replaces
// it, so a file carried or copied from an earlier release names the
// release it is now part of.
func stamp(version string) map[string]string {
	return map[string]string{releases.ReleaseMetadata: version}
}

// S3Copier is what server-side copies add to S3API.
type S3Copier interface {
	CopyObject(ctx context.Context, in *s3.CopyObjectInput, optFns ...func(*s3.Options)) (*s3.CopyObjectOutput, error)
}

var _ S3Copier = (*s3.Client)(nil)

// CopyFile copies an object of one release into another without sending
// its bytes (CopyObject, up to 5 GB), replacing its headers with f's so
// that current cache rules apply. Unless f.Replace it only creates
// (If-None-Match: *, see createonly.go), and a bucket that refuses such a
// copy gets an error wrapping releases.ErrCopyRefused.
func (b *S3Bucket) CopyFile(ctx context.Context, site releases.Site, from, fromPath, to string, f releases.File) error {
	cp, ok := b.Client.(S3Copier)
	if !ok {
		return fmt.Errorf("the S3 client cannot copy objects")
	}
	src := site.ReleasePath(from) + fromPath
	key := site.ReleasePath(to) + f.Path
	in := &s3.CopyObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(key),
		CopySource:        aws.String(site.Bucket + "/" + escapeKey(src)),
		MetadataDirective: types.MetadataDirectiveReplace, Metadata: stamp(to)}
	in.ContentType, in.CacheControl, in.ContentEncoding = optional(f.ContentType), optional(f.CacheControl), optional(f.ContentEncoding)
	conditional := !f.Replace
	if conditional {
		// "Copies the object only if the object key name at the
		// destination does not already exist" (CopyObject's
		// If-None-Match; 412 otherwise, 409 for a concurrent conditional
		// write, to retry).
		in.IfNoneMatch = aws.String("*")
	}
	err := retryConditional(ctx, conditionalRetry, func() error {
		_, err := cp.CopyObject(ctx, in)
		if conditional && isPreconditionFailed(err) {
			return b.keepExisting(ctx, site, key, to, f, f.Body, src)
		}
		return err
	})
	switch {
	case err == nil:
		return nil
	case releases.ErrorCode(err) == releases.ECONFLICT:
		return err
	case isNotFound(err):
		return releases.Errorf(releases.ENOTFOUND, "copy source s3://%s/%s is missing: %w", site.Bucket, src, err)
	case conditional && copyRefused(err):
		return fmt.Errorf("copying s3://%s/%s to %s: %w: %w", site.Bucket, src, key, releases.ErrCopyRefused, err)
	}
	return fmt.Errorf("copying s3://%s/%s to %s: %w", site.Bucket, src, key, err)
}

// escapeKey encodes a key for x-amz-copy-source: every byte but the
// unreserved ones (RFC 3986: letters, digits, "-", "_", ".", "~") and "/"
// as %XX. S3 decodes the header as a form value, so url.PathEscape, which
// leaves "+" (and "&", "=", ";", ...) as they are, would name another key
// for "a+b.js" ("a b.js").
func escapeKey(k string) string {
	const hexDigits = "0123456789ABCDEF"
	var b strings.Builder
	for i := 0; i < len(k); i++ {
		c := k[i]
		if 'a' <= c && c <= 'z' || 'A' <= c && c <= 'Z' || '0' <= c && c <= '9' || c == '-' || c == '_' || c == '.' || c == '~' || c == '/' {
			b.WriteByte(c)
			continue
		}
		b.WriteByte('%')
		b.WriteByte(hexDigits[c>>4])
		b.WriteByte(hexDigits[c&15])
	}
	return b.String()
}

// putMultipart uploads a large file in parts read straight from disk
// (io.SectionReader: no part is held in memory beyond the SDK's buffer).
// On failure the upload is aborted, so no stray parts are billed.
func (b *S3Bucket) putMultipart(ctx context.Context, mp S3Multipart, site releases.Site, key, version string, f releases.File, ra io.ReaderAt) error {
	partSize := b.partSize()
	// A large file already there (an interrupted publish of the same
	// version) is decided before its parts are sent again; the complete
	// still carries If-None-Match for a writer that comes meanwhile.
	// The key is normally not there: it is listed rather than HEADed, so
	// that a caller without s3:ListBucket on it (CI) is not answered 403
	// (see exists.go), and read only when it is.
	if !f.Replace {
		there, err := b.listKey(ctx, site.Bucket, key)
		if err != nil {
			return err
		}
		if there != nil {
			body := io.NewSectionReader(ra, 0, f.Size)
			if err := b.keepExisting(ctx, site, key, version, f, body, ""); err == nil || !errors.Is(err, errGone) {
				return err
			}
		}
	}
	// The upload declares its parts' checksum algorithm (CRC32, the
	// SDK's default): see partChecksum.
	in := &s3.CreateMultipartUploadInput{Bucket: aws.String(site.Bucket), Key: aws.String(key), Metadata: stamp(version),
		ChecksumAlgorithm: types.ChecksumAlgorithmCrc32}
	in.ContentType, in.CacheControl, in.ContentEncoding = optional(f.ContentType), optional(f.CacheControl), optional(f.ContentEncoding)
	created, err := mp.CreateMultipartUpload(ctx, in)
	if err != nil {
		return fmt.Errorf("starting the upload of s3://%s/%s: %w", site.Bucket, key, err)
	}
	id := created.UploadId
	parts, err := uploadParts(ctx, mp, site.Bucket, key, id, ra, f.Size, partSize)
	completed := false
	if err == nil {
		in := &s3.CompleteMultipartUploadInput{Bucket: aws.String(site.Bucket), Key: aws.String(key),
			UploadId: id, MultipartUpload: &types.CompletedMultipartUpload{Parts: parts}}
		if !f.Replace {
			// CompleteMultipartUpload takes If-None-Match as PutObject
			// does (conditional-writes.html); the parts took none.
			in.IfNoneMatch = aws.String("*")
		}
		err = retryConditional(ctx, conditionalRetry, func() error {
			_, err := mp.CompleteMultipartUpload(ctx, in)
			if err == nil {
				completed = true
			}
			if isPreconditionFailed(err) && !f.Replace {
				return b.keepExisting(ctx, site, key, version, f, io.NewSectionReader(ra, 0, f.Size), "")
			}
			return err
		})
		if err != nil && releases.ErrorCode(err) != releases.ECONFLICT {
			err = fmt.Errorf("completing the upload of s3://%s/%s: %w", site.Bucket, key, err)
		}
	}
	if !completed {
		// Failed, or another writer's object was kept: the parts go.
		if _, aerr := mp.AbortMultipartUpload(context.WithoutCancel(ctx), &s3.AbortMultipartUploadInput{Bucket: aws.String(site.Bucket), Key: aws.String(key), UploadId: id}); aerr != nil {
			if err == nil {
				return fmt.Errorf("s3://%s/%s was already there, the same file, and aborting this upload of it failed: %w", site.Bucket, key, aerr)
			}
			err = fmt.Errorf("%w (and aborting the upload failed: %v)", err, aerr)
		}
	}
	return err
}

// uploadParts sends the parts of upload id, partSize bytes each but the
// last, four at a time.
func uploadParts(ctx context.Context, mp S3Multipart, bucket, key string, id *string, ra io.ReaderAt, total, partSize int64) ([]types.CompletedPart, error) {
	n := int((total + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := 0; i < n; i++ {
		off := int64(i) * partSize
		size := min(partSize, total-off)
		g.Go(func() error {
			sum, err := partChecksum(io.NewSectionReader(ra, off, size))
			if err != nil {
				return fmt.Errorf("part %d of s3://%s/%s: %w", i+1, bucket, key, err)
			}
			out, err := mp.UploadPart(gctx, &s3.UploadPartInput{Bucket: aws.String(bucket), Key: aws.String(key), UploadId: id,
				PartNumber: aws.Int32(int32(i + 1)), Body: io.NewSectionReader(ra, off, size), ContentLength: aws.Int64(size),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32, ChecksumCRC32: aws.String(sum)}, unsignedPayload)
			if err != nil {
				return fmt.Errorf("part %d of s3://%s/%s: %w", i+1, bucket, key, err)
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32: aws.String(sum)}
			return nil
		})
	}
	return parts, g.Wait()
}

// partChecksum is the CRC32 (base64, as x-amz-checksum-crc32 carries it)
// of one part of a multipart upload.
//
// aws-sdk-go-v2 computes a CRC32 for every UploadPart on its own since its
// request checksum calculation became WhenSupported (early 2025); real S3
// then keeps the part under that checksum, and a CompleteMultipartUpload
// that lists the part by ETag alone, of an upload created without a
// checksum algorithm, fails with InvalidPart
// (https://github.com/aws/aws-sdk-go-v2/issues/3005,
// https://github.com/aws/aws-sdk-java-v2/issues/6518). So the upload is
// made consistent, as S3 documents it
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/checking-object-integrity.html):
// CreateMultipartUpload declares the algorithm; each UploadPart carries
// the part's checksum of that algorithm ("This checksum algorithm must be
// the same for all parts and it match the checksum value supplied in the
// CreateMultipartUpload request",
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_UploadPart.html),
// which S3 checks against the bytes it receives (BadDigest otherwise); and
// CompleteMultipartUpload lists each part's checksum beside its ETag,
// which S3 requires of an upload created with an algorithm ("The upload
// was created using a crc32 checksum. The complete request must include
// the checksum for each part",
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompleteMultipartUpload.html,
// https://docs.aws.amazon.com/AmazonS3/latest/API/API_CompletedPart.html).
//
// The checksum is computed here, from the part's bytes on disk, rather
// than left to the SDK and read back from UploadPart's answer: the value
// Complete lists is then the one of the bytes publish read, not an echo;
// the SDK, seeing the header, neither wraps the body in aws-chunked
// framing nor computes one of its own; and it is the same over HTTPS
// (where the SDK would send a trailer) and plain HTTP (where it would
// read the part twice too). It costs one more read of each part, from
// the page cache for the send that follows, at CRC32's speed: far below
// the part's time on the network. CRC32 is the SDK's default algorithm,
// and a composite one: S3 keeps the object's checksum as a checksum of
// the parts' (COMPOSITE), which keepExisting does not use as proof of
// content (it compares multipart ETags instead).
func partChecksum(part io.Reader) (string, error) {
	h := crc32.NewIEEE()
	if _, err := io.Copy(h, part); err != nil {
		return "", err
	}
	return base64.StdEncoding.EncodeToString(h.Sum(nil)), nil
}

// unsignedPayload signs uploads with UNSIGNED-PAYLOAD instead of a SHA-256
// of the body. Over plain HTTP the SDK would otherwise hash every byte
// once more just to sign it; S3 still checks the body against the
// checksum sent with it (the manifest's SHA-256 for PutObject, the CRC32
// partChecksum computes for each part of a multipart upload).
func unsignedPayload(o *s3.Options) {
	o.APIOptions = append(o.APIOptions, v4.SwapComputePayloadSHA256ForUnsignedPayloadMiddleware)
}
