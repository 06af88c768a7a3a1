package cloud

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"hash/crc32"
	"io"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	v4 "github.com/aws/aws-sdk-go-v2/aws/signer/v4"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/aws/smithy-go"
	smithyhttp "github.com/aws/smithy-go/transport/http"
	"golang.org/x/sync/errgroup"

	"github.com/deploybot/deploybot/releases"
)

// S3API is the part of the S3 client the bucket adapter uses, with the
// SDK's own signatures, so *s3.Client satisfies it and tests may wrap it.
type S3API interface {
	GetObject(ctx context.Context, in *s3.GetObjectInput, optFns ...func(*s3.Options)) (*s3.GetObjectOutput, error)
	PutObject(ctx context.Context, in *s3.PutObjectInput, optFns ...func(*s3.Options)) (*s3.PutObjectOutput, error)
	ListObjectsV2(ctx context.Context, in *s3.ListObjectsV2Input, optFns ...func(*s3.Options)) (*s3.ListObjectsV2Output, error)
	HeadObject(ctx context.Context, in *s3.HeadObjectInput, optFns ...func(*s3.Options)) (*s3.HeadObjectOutput, error)
}

var _ S3API = (*s3.Client)(nil)

// S3Bucket keeps a site's releases in S3.
type S3Bucket struct {
	Client S3API
	// MultipartThreshold is the size from which files go up in parts
	// (zero: 64 MiB); PartSize is the part size (zero: 16 MiB, S3's
	// minimum is 5 MiB). Parts are retried alone, and four go at once.
	MultipartThreshold int64
	PartSize           int64
	// Uploads, when set, sends PutFile's single-request uploads (a
	// *DirectPut, which spares each the SDK's per-call middleware); nil:
	// Client.
	Uploads S3Putter
	// Budget bounds the manifest bytes ReadManifest reads at once; nil:
	// the process-wide releases.DefaultManifestBudget, which the service
	// shares.
	Budget *releases.ManifestBudget
}

// S3Multipart is what large uploads add to S3API.
type S3Multipart interface {
	CreateMultipartUpload(ctx context.Context, in *s3.CreateMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CreateMultipartUploadOutput, error)
	UploadPart(ctx context.Context, in *s3.UploadPartInput, optFns ...func(*s3.Options)) (*s3.UploadPartOutput, error)
	CompleteMultipartUpload(ctx context.Context, in *s3.CompleteMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.CompleteMultipartUploadOutput, error)
	AbortMultipartUpload(ctx context.Context, in *s3.AbortMultipartUploadInput, optFns ...func(*s3.Options)) (*s3.AbortMultipartUploadOutput, error)
}

var _ S3Multipart = (*s3.Client)(nil)

var _ releases.Bucket = (*S3Bucket)(nil)

var _ releases.ManifestStreamer = (*S3Bucket)(nil)

// ReadManifest reads and decodes the manifest of version, whole, within
// the manifest budget while it is read (the service streams through
// StreamManifest and holds the budget itself; this is for callers that
// want the file list).
func (b *S3Bucket) ReadManifest(ctx context.Context, site releases.Site, version string) (*releases.Manifest, error) {
	st, err := b.StatManifest(ctx, site, version)
	if err != nil {
		return nil, err
	}
	release, err := b.Budget.Hold(ctx, st.Size)
	if err != nil {
		return nil, err
	}
	defer release()
	return b.readManifest(ctx, site, version, st.Size, nil)
}

// StatManifest reads the manifest's size and ETag (HeadObject): what a
// read is weighed by in the manifest budget.
func (b *S3Bucket) StatManifest(ctx context.Context, site releases.Site, version string) (releases.ManifestStat, error) {
	key := site.ManifestKey(version)
	out, err := b.headObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return releases.ManifestStat{}, releases.Errorf(releases.ENOTFOUND, "site %s: version %s has no manifest at s3://%s/%s: %w",
				site.Name, version, site.Bucket, key, releases.ErrNoManifest)
		}
		return releases.ManifestStat{}, fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, key, err)
	}
	return releases.ManifestStat{Size: aws.ToInt64(out.ContentLength), ETag: aws.ToString(out.ETag)}, nil
}

// StreamManifest reads the manifest as it arrives, handing each file to
// visit (see releases.ManifestStreamer).
func (b *S3Bucket) StreamManifest(ctx context.Context, site releases.Site, version string, max int64, visit func(releases.ManifestFile, bool) error) (*releases.Manifest, error) {
	return b.readManifest(ctx, site, version, max, visit)
}

// readManifest reads the manifest, weighed at max bytes, handing the
// files to visit instead of keeping them when visit is set (see
// releases.DecodeManifestFiles). The object's Content-Length is checked
// before a byte of the body is read: past releases.MaxManifestBytes it is
// refused, and larger than max (replaced since it was weighed) it is not
// read, so no read holds more than its weight.
func (b *S3Bucket) readManifest(ctx context.Context, site releases.Site, version string, max int64, visit func(releases.ManifestFile, bool) error) (*releases.Manifest, error) {
	key := site.ManifestKey(version)
	out, err := b.getObject(ctx, &s3.GetObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(key)})
	if err != nil {
		if isNotFound(err) {
			return nil, releases.Errorf(releases.ENOTFOUND, "site %s: version %s has no manifest at s3://%s/%s: %w",
				site.Name, version, site.Bucket, key, releases.ErrNoManifest)
		}
		return nil, fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, key, err)
	}
	defer out.Body.Close()
	switch size := aws.ToInt64(out.ContentLength); {
	case size > releases.MaxManifestBytes:
		return nil, &releases.RefusedManifest{ETag: aws.ToString(out.ETag), Err: fmt.Errorf("s3://%s/%s: %w", site.Bucket, key,
			releases.Errorf(releases.EINVALID, "manifest of %s is larger than %d bytes", version, releases.MaxManifestBytes))}
	case max >= 0 && size > max:
		return nil, fmt.Errorf("reading s3://%s/%s: it is %d bytes, %d when its size was read; it changed, read it again", site.Bucket, key, size, max)
	}
	// Decoded as it arrives, within releases.MaxManifestBytes and
	// MaxManifestFiles: a hostile manifest costs at most that much memory.
	var m *releases.Manifest
	if visit != nil {
		m, err = releases.DecodeManifestFiles(out.Body, version, visit)
	} else {
		m, err = releases.DecodeManifest(out.Body, version)
	}
	if err != nil {
		if releases.ErrorCode(err) == releases.EINVALID {
			return nil, &releases.RefusedManifest{ETag: aws.ToString(out.ETag), Err: fmt.Errorf("s3://%s/%s: %w", site.Bucket, key, err)}
		}
		return nil, fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, key, err)
	}
	m.ETag = aws.ToString(out.ETag)
	return m, nil
}

// ManifestETag reads the manifest's ETag: what tells whether a version is
// published (publish asks before sending anything, and again before the
// manifest) and whether a manifest refused before has changed since. It
// lists the key rather than HEAD it, so that a manifest that is not there
// is told as such to a caller without s3:ListBucket on the key, as CI is
// (see exists.go); the listing carries the same ETag.
func (b *S3Bucket) ManifestETag(ctx context.Context, site releases.Site, version string) (string, error) {
	key := site.ManifestKey(version)
	o, err := b.listKey(ctx, site.Bucket, key)
	if err != nil {
		return "", err
	}
	if o == nil {
		return "", releases.Errorf(releases.ENOTFOUND, "site %s: version %s has no manifest: %w", site.Name, version, releases.ErrNoManifest)
	}
	return aws.ToString(o.ETag), nil
}

// ListVersions lists the manifests, a page of 1,000 keys per call.
func (b *S3Bucket) ListVersions(ctx context.Context, site releases.Site) ([]string, error) {
	entries, err := b.manifests(ctx, site)
	if err != nil {
		return nil, err
	}
	versions := make([]string, len(entries))
	for i, e := range entries {
		versions[i] = e.version
	}
	return versions, nil
}

type manifestEntry struct {
	version string
	written time.Time
}

// manifests lists the site's manifest keys (not their contents).
func (b *S3Bucket) manifests(ctx context.Context, site releases.Site) ([]manifestEntry, error) {
	var out []manifestEntry
	prefix := site.ManifestPrefix()
	err := b.eachObject(ctx, site.Bucket, prefix, func(o types.Object) {
		v, ok := strings.CutSuffix(strings.TrimPrefix(aws.ToString(o.Key), prefix), ".json")
		if ok && !strings.Contains(v, "/") && releases.ValidateVersion(v) == nil {
			out = append(out, manifestEntry{v, aws.ToTime(o.LastModified)})
		}
	})
	return out, err
}

// eachObject calls fn for every object under prefix, a page of 1,000 per
// ListObjectsV2 call.
func (b *S3Bucket) eachObject(ctx context.Context, bucket, prefix string, fn func(types.Object)) error {
	p := s3.NewListObjectsV2Paginator(b.Client, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return fmt.Errorf("listing s3://%s/%s: %w", bucket, prefix, err)
		}
		for _, o := range page.Contents {
			fn(o)
		}
	}
	return nil
}

// WriteManifest creates the manifest with If-None-Match: *, so S3 itself
// refuses to overwrite a published release, even under a race.
func (b *S3Bucket) WriteManifest(ctx context.Context, site releases.Site, m *releases.Manifest) error {
	raw, err := json.MarshalIndent(m, "", " ")
	if err != nil {
		return err
	}
	return b.WriteManifestJSON(ctx, site, m.Version, bytes.NewReader(raw), int64(len(raw)))
}

// WriteManifestJSON writes an encoded manifest, as WriteManifest does;
// body is read from its start for each attempt.
func (b *S3Bucket) WriteManifestJSON(ctx context.Context, site releases.Site, version string, body io.ReadSeeker, size int64) error {
	if err := releases.ValidateVersion(version); err != nil {
		return err
	}
	key := site.ManifestKey(version)
	// The index of the newest releases names this one before it exists,
	// so the index never lacks a release (see latest.go); a version that
	// is published already is refused first, so it cannot move up.
	if _, err := b.ManifestETag(ctx, site, version); err == nil {
		return releases.Errorf(releases.ECONFLICT, "site %s: version %s is already published; releases are immutable", site.Name, version)
	} else if !errors.Is(err, releases.ErrNoManifest) {
		return err
	}
	if err := b.noteLatest(ctx, site, version); err != nil {
		return err
	}
	// 409 ConditionalRequestConflict means another conditional write to the
	// key is in progress, not that it will succeed: retry until S3 says
	// the key exists (412) or this write lands.
	err := retryConditional(ctx, isConflict, func() error {
		if _, err := body.Seek(0, io.SeekStart); err != nil {
			return err
		}
		_, err := b.Client.PutObject(ctx, &s3.PutObjectInput{
			Bucket: aws.String(site.Bucket), Key: aws.String(key),
			Body: body, ContentLength: aws.Int64(size),
			ContentType: aws.String("application/json"), CacheControl: aws.String("no-cache"),
			IfNoneMatch: aws.String("*"),
		})
		return err
	})
	if isPreconditionFailed(err) {
		return releases.Errorf(releases.ECONFLICT, "site %s: version %s is already published; releases are immutable", site.Name, version)
	}
	if err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w", site.Bucket, key, err)
	}
	return nil
}

// conditionalTries bounds the retries of a conditional write that meets
// another writer (about 10 s of backoff in all).
const conditionalTries = 8

// retryConditional runs put until it lands, or fails in a way retryable
// does not excuse, or conditionalTries are spent, backing off from 100 ms
// to 2 s between tries. A put that reads before it writes (If-Match on
// the ETag it read) reads again on each try. It returns put's last error.
func retryConditional(ctx context.Context, retryable func(error) bool, put func() error) error {
	backoff := 100 * time.Millisecond
	for attempt := 1; ; attempt++ {
		err := put()
		if err == nil || !retryable(err) || attempt == conditionalTries {
			return err
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// isConflict: another conditional write to the key is in flight (409).
func isConflict(err error) bool { return apiCode(err) == "ConditionalRequestConflict" }

// lostRace: another writer changed the object since it was read (412),
// or is writing it now (409).
func lostRace(err error) bool { return isPreconditionFailed(err) || isConflict(err) }

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

func isNotFound(err error) bool {
	if errors.Is(err, errMissingKey) {
		return true
	}
	var nsk *types.NoSuchKey
	if errors.As(err, &nsk) {
		return true
	}
	var nf *types.NotFound
	if errors.As(err, &nf) {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusNotFound && apiCode(err) != "NoSuchBucket"
}

func isPreconditionFailed(err error) bool {
	if err == nil {
		return false
	}
	if apiCode(err) == "PreconditionFailed" {
		return true
	}
	var re *smithyhttp.ResponseError
	return errors.As(err, &re) && re.HTTPStatusCode() == http.StatusPreconditionFailed
}

func apiCode(err error) string {
	var ae smithy.APIError
	if errors.As(err, &ae) {
		return ae.ErrorCode()
	}
	return ""
}

// S3Deleter is what pruning adds to S3API.
type S3Deleter interface {
	DeleteObjects(ctx context.Context, in *s3.DeleteObjectsInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectsOutput, error)
	DeleteObject(ctx context.Context, in *s3.DeleteObjectInput, optFns ...func(*s3.Options)) (*s3.DeleteObjectOutput, error)
}

var _ S3Deleter = (*s3.Client)(nil)

// ListFolders lists the folders under the site's prefix with a "/"
// delimiter: one call per 1,000 folders, however many objects they hold.
func (b *S3Bucket) ListFolders(ctx context.Context, site releases.Site) ([]string, error) {
	var out []string
	p := s3.NewListObjectsV2Paginator(b.Client, &s3.ListObjectsV2Input{Bucket: aws.String(site.Bucket),
		Prefix: aws.String(site.Prefix), Delimiter: aws.String("/")})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", site.Bucket, site.Prefix, err)
		}
		for _, cp := range page.CommonPrefixes {
			v := strings.TrimSuffix(strings.TrimPrefix(aws.ToString(cp.Prefix), site.Prefix), "/")
			if releases.ValidateVersion(v) == nil {
				out = append(out, v)
			}
		}
	}
	return out, nil
}

// FolderStats lists one release folder.
func (b *S3Bucket) FolderStats(ctx context.Context, site releases.Site, version string) (releases.Folder, error) {
	f := releases.Folder{Version: version}
	marker := site.ReleasePath(version) + ".deploybot/"
	err := b.eachObject(ctx, site.Bucket, site.ReleasePath(version), func(o types.Object) {
		if strings.HasPrefix(aws.ToString(o.Key), marker) {
			f.SiteData = true
		}
		f.Objects++
		f.Bytes += aws.ToInt64(o.Size)
		if t := aws.ToTime(o.LastModified); t.After(f.Newest) {
			f.Newest = t
		}
	})
	return f, err
}

// deleteBatches is how many DeleteObjects calls run at once. S3 allows
// 3,500 deletes a second per prefix; 4 batches of 1,000 in flight stay
// under that while keeping the round trips overlapped.
const deleteBatches = 4

// DeleteFolder deletes a release folder with paginated listing and
// DeleteObjects calls of up to 1,000 keys (S3's limit per call), several in
// flight. Keys S3 reports as failed are retried a few times; what still
// fails is returned, and the next prune run tries again.
func (b *S3Bucket) DeleteFolder(ctx context.Context, site releases.Site, version string) (int, int64, error) {
	del, ok := b.Client.(S3Deleter)
	if !ok {
		return 0, 0, fmt.Errorf("the S3 client cannot delete objects")
	}
	prefix := site.ReleasePath(version)
	var mu sync.Mutex
	objects, bytes := 0, int64(0)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(deleteBatches)
	p := s3.NewListObjectsV2Paginator(b.Client, &s3.ListObjectsV2Input{Bucket: aws.String(site.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(gctx)
		if err != nil {
			_ = g.Wait()
			return objects, bytes, fmt.Errorf("listing s3://%s/%s: %w", site.Bucket, prefix, err)
		}
		if len(page.Contents) == 0 {
			continue
		}
		sizes := map[string]int64{}
		var ids []types.ObjectIdentifier
		for _, o := range page.Contents {
			sizes[aws.ToString(o.Key)] = aws.ToInt64(o.Size)
			ids = append(ids, types.ObjectIdentifier{Key: o.Key})
		}
		g.Go(func() error {
			n, err := deleteKeys(gctx, del, site.Bucket, ids)
			mu.Lock()
			for k := range n {
				objects++
				bytes += sizes[k]
			}
			mu.Unlock()
			return err
		})
	}
	err := g.Wait()
	return objects, bytes, err
}

// deleteKeys deletes one batch, retrying the keys S3 reports as failed;
// it returns the keys deleted.
func deleteKeys(ctx context.Context, del S3Deleter, bucket string, ids []types.ObjectIdentifier) (map[string]int64, error) {
	done := map[string]int64{}
	for attempt := 1; ; attempt++ {
		out, err := del.DeleteObjects(ctx, &s3.DeleteObjectsInput{Bucket: aws.String(bucket),
			Delete: &types.Delete{Objects: ids, Quiet: aws.Bool(true)}})
		if err != nil {
			return done, fmt.Errorf("deleting %d objects from s3://%s: %w", len(ids), bucket, err)
		}
		failed := map[string]string{}
		for _, e := range out.Errors {
			failed[aws.ToString(e.Key)] = aws.ToString(e.Code) + ": " + aws.ToString(e.Message)
		}
		var retry []types.ObjectIdentifier
		for _, id := range ids {
			if _, bad := failed[aws.ToString(id.Key)]; bad {
				retry = append(retry, id)
			} else {
				done[aws.ToString(id.Key)] = 0
			}
		}
		if len(retry) == 0 {
			return done, nil
		}
		if attempt == 3 {
			for k, why := range failed {
				return done, fmt.Errorf("s3://%s/%s and %d more could not be deleted: %s", bucket, k, len(failed)-1, why)
			}
		}
		ids = retry
		select {
		case <-ctx.Done():
			return done, ctx.Err()
		case <-time.After(time.Duration(attempt) * 200 * time.Millisecond):
		}
	}
}

// DeleteManifest deletes a release's manifest.
func (b *S3Bucket) DeleteManifest(ctx context.Context, site releases.Site, version string) error {
	del, ok := b.Client.(S3Deleter)
	if !ok {
		return fmt.Errorf("the S3 client cannot delete objects")
	}
	key := site.ManifestKey(version)
	if _, err := del.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("deleting s3://%s/%s: %w", site.Bucket, key, err)
	}
	return nil
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

// ReleaseObjects lists a release folder, one call per 1,000 objects.
func (b *S3Bucket) ReleaseObjects(ctx context.Context, site releases.Site, version string) (map[string]int64, error) {
	out := map[string]int64{}
	prefix := site.ReleasePath(version)
	err := b.eachObject(ctx, site.Bucket, prefix, func(o types.Object) {
		out[strings.TrimPrefix(aws.ToString(o.Key), prefix)] = aws.ToInt64(o.Size)
	})
	if err != nil {
		return nil, err
	}
	return out, nil
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
	n := int((f.Size + partSize - 1) / partSize)
	parts := make([]types.CompletedPart, n)
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(4)
	for i := 0; i < n; i++ {
		off := int64(i) * partSize
		size := min(partSize, f.Size-off)
		g.Go(func() error {
			sum, err := partChecksum(io.NewSectionReader(ra, off, size))
			if err != nil {
				return fmt.Errorf("part %d of s3://%s/%s: %w", i+1, site.Bucket, key, err)
			}
			out, err := mp.UploadPart(gctx, &s3.UploadPartInput{Bucket: aws.String(site.Bucket), Key: aws.String(key), UploadId: id,
				PartNumber: aws.Int32(int32(i + 1)), Body: io.NewSectionReader(ra, off, size), ContentLength: aws.Int64(size),
				ChecksumAlgorithm: types.ChecksumAlgorithmCrc32, ChecksumCRC32: aws.String(sum)}, unsignedPayload)
			if err != nil {
				return fmt.Errorf("part %d of s3://%s/%s: %w", i+1, site.Bucket, key, err)
			}
			parts[i] = types.CompletedPart{ETag: out.ETag, PartNumber: aws.Int32(int32(i + 1)), ChecksumCRC32: aws.String(sum)}
			return nil
		})
	}
	err = g.Wait()
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

// optional is nil for "": an object stored without the header, rather
// than with an empty one.
func optional(s string) *string {
	if s == "" {
		return nil
	}
	return &s
}
