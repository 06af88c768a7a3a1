// S3Bucket's manifests: reading (whole, streamed, stat), listing and
// writing <prefix>.deploybot/releases/<version>.json.

package cloud

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/deploybot/deploybot/releases"
)

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
