package cloud

import (
	"bytes"
	"context"
	"fmt"
	"io"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

var _ releases.Coordinator = (*S3Bucket)(nil)

// GetState implements releases.Coordinator: one GetObject, the body read
// up to releases.MaxStateBytes (a larger object is refused, not read).
func (b *S3Bucket) GetState(ctx context.Context, site releases.Site, key string) ([]byte, string, error) {
	full := site.StatePrefix() + key
	out, err := b.getObject(ctx, &s3.GetObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(full)})
	if err != nil {
		if isNotFound(err) {
			return nil, "", fmt.Errorf("s3://%s/%s: %w", site.Bucket, full, releases.ErrNoState)
		}
		return nil, "", fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, full, err)
	}
	defer out.Body.Close()
	if n := aws.ToInt64(out.ContentLength); n > releases.MaxStateBytes {
		return nil, aws.ToString(out.ETag), releases.Errorf(releases.EINVALID, "s3://%s/%s is %d bytes; a state object is at most %d", site.Bucket, full, n, releases.MaxStateBytes)
	}
	body, err := io.ReadAll(io.LimitReader(out.Body, releases.MaxStateBytes+1))
	if err != nil {
		return nil, "", fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, full, err)
	}
	if len(body) > releases.MaxStateBytes {
		return nil, aws.ToString(out.ETag), releases.Errorf(releases.EINVALID, "s3://%s/%s is larger than %d bytes", site.Bucket, full, releases.MaxStateBytes)
	}
	return body, aws.ToString(out.ETag), nil
}

// PutState implements releases.Coordinator with S3's conditional writes
// (https://docs.aws.amazon.com/AmazonS3/latest/userguide/conditional-writes.html):
// If-None-Match: * to create, If-Match: ETag to change. S3 answers a lost
// race 412 PreconditionFailed, or 409 ConditionalRequestConflict when a
// write to the key was in flight; If-Match on a key deleted since answers
// 404 NoSuchKey. Each means the object is not as read.
func (b *S3Bucket) PutState(ctx context.Context, site releases.Site, key string, body []byte, etag string) (string, error) {
	full := site.StatePrefix() + key
	in := &s3.PutObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(full), Body: bytes.NewReader(body),
		ContentLength: aws.Int64(int64(len(body))), ContentType: aws.String("application/json"), CacheControl: aws.String("no-store")}
	if etag == "" {
		in.IfNoneMatch = aws.String("*")
	} else {
		in.IfMatch = aws.String(etag)
	}
	out, err := b.Client.PutObject(ctx, in)
	switch {
	case err == nil:
		return aws.ToString(out.ETag), nil
	case lostRace(err) || etag != "" && isNotFound(err):
		return "", fmt.Errorf("writing s3://%s/%s: %w", site.Bucket, full, releases.ErrStateChanged)
	}
	return "", fmt.Errorf("writing s3://%s/%s: %w", site.Bucket, full, err)
}
