package cloud

import (
	"context"
	"crypto/md5"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	smithyhttp "github.com/aws/smithy-go/transport/http"

	"github.com/deploybot/deploybot/releases"
)

// A release's files are written once. Every PutObject, CopyObject and
// CompleteMultipartUpload of a release file carries If-None-Match: *, so
// S3 itself refuses to replace an object that is there (412
// PreconditionFailed), even under a race, and a bucket policy or the CI
// role's policy can require the header (s3:if-none-match) so that nothing
// else can either
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html,
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html).
//
// A version that has a manifest is refused before anything is sent, so a
// 412 on a file means an earlier publish of the same version stopped
// before its manifest (a cancelled job, a crash). Then the object there is
// read (HEAD) and kept when it is the object this write would make: same
// size, headers and release stamp, and the same bytes as far as S3 can
// show them (keepExisting); anything else is left as it is and the write
// fails naming the key. 409 ConditionalRequestConflict (another
// conditional write to the key in flight) is retried, as the pages say.

// errGone: the key that answered 412 was gone when read; write again.
var errGone = errors.New("the object that was there is gone")

// conditionalRetry is what a create-only write retries: a concurrent
// conditional write (409), or an object deleted between the 412 and the
// HEAD.
func conditionalRetry(err error) bool { return isConflict(err) || errors.Is(err, errGone) }

// keepExisting decides about the object at key after a write of f
// (stamped version) met 412: nil when it is the object the write would
// have made, an ECONFLICT error naming the key when it is not (or cannot
// be shown to be), errGone when there is none any more. body, when set,
// is f's content (read from its start to compare MD5s); srcKey, when
// set, is the key a copy was made from (its ETag is the content's too).
func (b *S3Bucket) keepExisting(ctx context.Context, site releases.Site, key, version string, f releases.File, body io.ReadSeeker, srcKey string) error {
	head, err := b.headObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(key), ChecksumMode: types.ChecksumModeEnabled})
	if isNotFound(err) {
		return errGone
	}
	if err != nil {
		return fmt.Errorf("s3://%s/%s is already there (412) and reading it failed: %w", site.Bucket, key, err)
	}
	var why []string
	if size := aws.ToInt64(head.ContentLength); size != f.Size {
		why = append(why, fmt.Sprintf("it is %d bytes, this file %d", size, f.Size))
	}
	if got := head.Metadata[releases.ReleaseMetadata]; got != version {
		why = append(why, fmt.Sprintf("it is stamped for release %q", got))
	}
	for _, h := range []struct{ name, got, want string }{
		{"Content-Type", aws.ToString(head.ContentType), f.ContentType},
		{"Cache-Control", aws.ToString(head.CacheControl), f.CacheControl},
		{"Content-Encoding", aws.ToString(head.ContentEncoding), f.ContentEncoding},
	} {
		// An empty Content-Type is stored as S3's default; the others are
		// stored as sent.
		if h.got != h.want && !(h.name == "Content-Type" && h.want == "") {
			why = append(why, fmt.Sprintf("its %s is %q, this file's %q", h.name, h.got, h.want))
		}
	}
	if len(why) == 0 {
		ev := evidence{ETag: aws.ToString(head.ETag), ChecksumSHA256: aws.ToString(head.ChecksumSHA256), ChecksumType: head.ChecksumType}
		same, reason := b.sameContent(ctx, site, ev, f, body, srcKey)
		if !same {
			why = append(why, reason)
		}
	}
	if len(why) > 0 {
		return releases.Errorf(releases.ECONFLICT, "s3://%s/%s is already there and is not this file (%s); a release's files are written once and this one is left as it is: publish under a new version name",
			site.Bucket, key, strings.Join(why, "; "))
	}
	return nil
}

// evidence is what a HEAD says of an object's bytes.
type evidence struct {
	ETag           string
	ChecksumSHA256 string // base64, when S3 keeps one (ChecksumMode ENABLED)
	ChecksumType   types.ChecksumType
}

// sameContent compares an object's bytes with f's by the strongest proof
// there is: the SHA-256 checksum S3 checked on upload (and a copy keeps
// from its source); else the ETag, which for a single-part object not
// encrypted with SSE-KMS is the MD5 of its bytes and for a multipart one
// the MD5 of its parts' MD5s, "-" and their count (computed from body
// with this bucket's part size); else, for a copy, the source's ETag. A
// false answer's reason says which proof failed or that none was
// possible.
func (b *S3Bucket) sameContent(ctx context.Context, site releases.Site, ev evidence, f releases.File, body io.ReadSeeker, srcKey string) (bool, string) {
	if want, ok := sha256Base64(f.SHA256); ok && ev.ChecksumSHA256 != "" && ev.ChecksumType != types.ChecksumTypeComposite && !strings.Contains(ev.ChecksumSHA256, "-") {
		if ev.ChecksumSHA256 == want {
			return true, ""
		}
		return false, "its SHA-256 differs"
	}
	md5hex, parts, ok := parseETag(ev.ETag)
	if ok && body != nil {
		got, err := etagOf(body, parts, b.partSize())
		switch {
		case err != nil:
			return false, fmt.Sprintf("reading this file to compare: %v", err)
		case got == md5hex:
			return true, ""
		case parts == 0:
			return false, "its ETag is not this file's MD5 (other bytes, or SSE-KMS encryption, whose ETags are not MD5s)"
		default:
			return false, "its multipart ETag is not this file's (other bytes, another part size, or SSE-KMS encryption)"
		}
	}
	if srcKey != "" && ev.ETag != "" {
		src, err := b.Client.HeadObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(srcKey)})
		if err == nil && aws.ToString(src.ETag) == ev.ETag {
			return true, ""
		}
	}
	return false, "S3 shows nothing that proves it holds the same bytes"
}

// partSize is the part size of this bucket's multipart uploads.
func (b *S3Bucket) partSize() int64 {
	if b.PartSize > 0 {
		return b.PartSize
	}
	return 16 << 20
}

// sha256Base64 is a hex SHA-256 as S3's checksum headers carry it.
func sha256Base64(hexSum string) (string, bool) {
	sum, err := hex.DecodeString(hexSum)
	if err != nil || len(sum) != 32 {
		return "", false
	}
	return base64.StdEncoding.EncodeToString(sum), true
}

// parseETag reads an S3 ETag: the MD5 (hex, lower case) it carries and
// the number of parts of a multipart upload's ("<md5 of the parts'
// MD5s>-<parts>"), 0 for a single-part object. ok is false for anything
// else (a weak or malformed ETag).
func parseETag(etag string) (md5hex string, parts int, ok bool) {
	etag = strings.Trim(etag, `"`)
	md5hex, n, multi := strings.Cut(etag, "-")
	if len(md5hex) != 32 {
		return "", 0, false
	}
	if _, err := hex.DecodeString(md5hex); err != nil {
		return "", 0, false
	}
	if multi {
		p, err := strconv.Atoi(n)
		if err != nil || p < 1 || p > 10000 || strconv.Itoa(p) != n {
			return "", 0, false
		}
		parts = p
	}
	return strings.ToLower(md5hex), parts, true
}

// etagOf is the MD5 part of the ETag S3 gives body: its MD5 (parts 0),
// or the MD5 of the MD5s of its partSize pieces when it went up in parts
// pieces (none if that is not how many it makes). body is read from its
// start.
func etagOf(body io.ReadSeeker, parts int, partSize int64) (string, error) {
	if _, err := body.Seek(0, io.SeekStart); err != nil {
		return "", err
	}
	if parts == 0 {
		h := md5.New()
		if _, err := io.Copy(h, body); err != nil {
			return "", err
		}
		return hex.EncodeToString(h.Sum(nil)), nil
	}
	all := md5.New()
	n := 0
	for {
		h := md5.New()
		got, err := io.CopyN(h, body, partSize)
		if err != nil && err != io.EOF {
			return "", err
		}
		if got == 0 {
			break
		}
		all.Write(h.Sum(nil))
		n++
		if got < partSize {
			break
		}
	}
	if n != parts {
		return "", nil
	}
	return hex.EncodeToString(all.Sum(nil)), nil
}

// copyRefused: S3 refused a conditional CopyObject as a bucket policy
// that enforces conditional writes does, by the note on
// https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes-enforce.html:
// 501 Not Implemented for a copy with the headers (the note may predate
// CopyObject's If-None-Match), 403 AccessDenied for one a policy denies.
func copyRefused(err error) bool {
	switch apiCode(err) {
	case "NotImplemented", "AccessDenied":
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && (re.HTTPStatusCode() == http.StatusNotImplemented || re.HTTPStatusCode() == http.StatusForbidden)
}

var _ releases.FileOpener = (*S3Bucket)(nil)

// OpenFile reads path of release version (publish's carry, when the
// bucket refuses server-side copies).
func (b *S3Bucket) OpenFile(ctx context.Context, site releases.Site, version, path string) (io.ReadCloser, error) {
	key := site.ReleasePath(version) + path
	out, err := b.getObject(ctx, &s3.GetObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(key)})
	if isNotFound(err) {
		return nil, releases.Errorf(releases.ENOTFOUND, "s3://%s/%s is missing: %w", site.Bucket, key, err)
	}
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, key, err)
	}
	return out.Body, nil
}
