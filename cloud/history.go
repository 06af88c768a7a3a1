package cloud

import (
	"context"
	"fmt"
	"io"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

// The mirrored history (releases/mirror.go) under each site's
// <prefix>.deploybot/history/. Records are written once with
// If-None-Match: *; S3 answers 412 when the key exists, which for a record
// whose key holds a hash of its content means it is there already. State
// objects are replaced with If-Match on the ETag just read (If-None-Match
// when there is none), so two writers never silently undo each other;
// a 412 or a 409 (another conditional write in flight) reads the ETag
// again and retries
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html).

// PutHistory implements releases.Bucket.
func (b *S3Bucket) PutHistory(ctx context.Context, site releases.Site, key string, body []byte, replace bool) error {
	full := site.HistoryPrefix() + key
	in := func() *s3.PutObjectInput {
		return &s3.PutObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(full), Body: strings.NewReader(string(body)),
			ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/json"), CacheControl: aws.String("no-cache")}
	}
	if !replace {
		put := in()
		put.IfNoneMatch = aws.String("*")
		_, err := b.Client.PutObject(ctx, put)
		if err == nil || isPreconditionFailed(err) {
			return nil
		}
		return fmt.Errorf("writing s3://%s/%s: %w", site.Bucket, full, err)
	}
	err := retryConditional(ctx, lostRace, func() error {
		put := in()
		head, err := b.headObject(ctx, &s3.HeadObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(full)})
		switch {
		case err == nil:
			put.IfMatch = head.ETag
		case isNotFound(err):
			put.IfNoneMatch = aws.String("*")
		default:
			return err
		}
		_, err = b.Client.PutObject(ctx, put)
		return err
	})
	if err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w", site.Bucket, full, err)
	}
	return nil
}

// ListHistory implements releases.Bucket.
func (b *S3Bucket) ListHistory(ctx context.Context, site releases.Site, dir, after string) ([]string, error) {
	return b.ListHistoryRange(ctx, site, dir, after, "")
}

var _ releases.HistoryRanger = (*S3Bucket)(nil)

// ListHistoryRange implements releases.HistoryRanger: ListHistory that
// stops at the first key not before before ("": none), so that keys
// sorting after it (planted, dated in 9999) cost no page.
func (b *S3Bucket) ListHistoryRange(ctx context.Context, site releases.Site, dir, after, before string) ([]string, error) {
	prefix := site.HistoryPrefix() + dir
	var out []string
	in := &s3.ListObjectsV2Input{Bucket: aws.String(site.Bucket), Prefix: aws.String(prefix)}
	if after != "" {
		// Listing starts after this key: a catch-up lists what is new,
		// not a year of history.
		in.StartAfter = aws.String(site.HistoryPrefix() + after)
	}
	p := s3.NewListObjectsV2Paginator(b.Client, in)
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return nil, fmt.Errorf("listing s3://%s/%s: %w", site.Bucket, prefix, err)
		}
		for _, o := range page.Contents {
			k := strings.TrimPrefix(aws.ToString(o.Key), site.HistoryPrefix())
			if before != "" && k >= before {
				return out, nil
			}
			out = append(out, k)
		}
	}
	return out, nil
}

// GetHistory implements releases.Bucket.
func (b *S3Bucket) GetHistory(ctx context.Context, site releases.Site, key string) ([]byte, error) {
	full := site.HistoryPrefix() + key
	out, err := b.getObject(ctx, &s3.GetObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(full)})
	if isNotFound(err) {
		return nil, fmt.Errorf("s3://%s/%s: %w", site.Bucket, full, releases.ErrNoHistory)
	}
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, full, err)
	}
	defer out.Body.Close()
	// A history object is a few KB; more than the bound is not ours.
	raw, err := io.ReadAll(io.LimitReader(out.Body, 4<<20+1))
	if err != nil {
		return nil, fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, full, err)
	}
	return raw, nil
}
