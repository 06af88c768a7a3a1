package cloud

import (
	"context"
	"fmt"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/releases"
)

// LivePager keeps a kvs site's 404 page where CloudFront fetches it.
type LivePager interface {
	// PublishLivePage copies the site's routing.not_found page of release
	// version to <prefix>.deploybot/live/, or deletes the copy when the
	// release has no such page.
	PublishLivePage(ctx context.Context, site releases.Site, version string) error
}

var _ LivePager = (*S3Bucket)(nil)

// LivePageKey is the key of a kvs site's live 404 page.
func LivePageKey(site releases.Site) string {
	return site.Prefix + LivePagePrefix + site.Routing.NotFound
}

// PublishLivePage copies the page server-side, keeping the headers
// publish gave it (HTML: Cache-Control no-cache, so the edge asks again
// within CloudFront's minimum TTL). Cost: one CopyObject per kvs flip, or
// one DeleteObject when the release has no page; a release without one
// shows CloudFront's own error, not an older release's page.
func (b *S3Bucket) PublishLivePage(ctx context.Context, site releases.Site, version string) error {
	if site.Routing.NotFound == "" {
		return nil
	}
	cp, ok := b.Client.(S3Copier)
	if !ok {
		return fmt.Errorf("the S3 client cannot copy objects")
	}
	src := site.ReleasePath(version) + site.Routing.NotFound
	key := LivePageKey(site)
	_, err := cp.CopyObject(ctx, &s3.CopyObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(key),
		CopySource: aws.String(site.Bucket + "/" + escapeKey(src)), MetadataDirective: types.MetadataDirectiveCopy})
	if err == nil {
		return nil
	}
	if !isNotFound(err) {
		return fmt.Errorf("copying the 404 page s3://%s/%s to %s: %w", site.Bucket, src, key, err)
	}
	del, ok := b.Client.(S3Deleter)
	if !ok {
		return fmt.Errorf("the S3 client cannot delete objects")
	}
	if _, err := del.DeleteObject(ctx, &s3.DeleteObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(key)}); err != nil {
		return fmt.Errorf("deleting the 404 page s3://%s/%s, which release %s lacks: %w", site.Bucket, key, version, err)
	}
	return nil
}

// errorPagesStep says, for people, what setup does with the site's
// custom error responses.
func errorPagesStep(site releases.Site) string {
	p := NotFoundPagePath(site)
	switch {
	case p == "":
		return "leave the custom error responses for 403 and 404 as they are (routing.not_found is empty), except pages that cannot resolve"
	case site.Strategy == StrategyKVS:
		return fmt.Sprintf("answer the origin's 403 (a missing key, under origin access control) and 404 with %s and status 404, a copy of the live release's %s that every flip refreshes (CloudFront fetches error pages as requests of their own, which the function is not trusted to route)", p, site.Routing.NotFound)
	}
	return fmt.Sprintf("answer the origin's 403 (a missing key, under origin access control) and 404 with %s of the live release and status 404", strings.TrimPrefix(p, "/"))
}
