// S3Bucket's release folders: listing them, their stats, and deleting
// one in batches.

package cloud

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/aws/aws-sdk-go-v2/service/s3/types"
	"github.com/deploybot/deploybot/releases"
	"golang.org/x/sync/errgroup"
)

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
