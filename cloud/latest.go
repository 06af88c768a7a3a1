package cloud

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/releases"
)

// The newest releases without listing every manifest: publish needs the
// last few (skew protection carries their assets; unchanged files are
// copied from them), and listing the manifests costs one call per 1,000
// releases plus every key in memory. <prefix>.deploybot/latest.json
// names the latestKept most recently published versions, newest first.
//
// The index is updated before the manifest is written, with If-Match on
// the ETag read, so it never lacks a release that exists: a publish that
// fails after the update leaves a name without a manifest, which readers
// skip. A bucket without the index (published before it existed) is
// listed once, by the first publish, to seed it. A manifest written by
// something other than deploybot is not in the index; a reader that finds
// fewer good entries than it needs in a full index lists the manifests,
// as before.

// latestKept is how many versions the index names.
const latestKept = 32

type latestIndex struct {
	Versions []string `json:"versions"`
}

func latestKey(site releases.Site) string { return site.Prefix + ".deploybot/latest.json" }

// readLatest reads the index and its ETag; ok is false when there is
// none or it is not valid (then etag is still the object's, when there is
// one, so a writer replaces it).
func (b *S3Bucket) readLatest(ctx context.Context, site releases.Site) (idx latestIndex, etag string, ok bool, err error) {
	out, err := b.getObject(ctx, &s3.GetObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(latestKey(site))})
	if isNotFound(err) {
		return latestIndex{}, "", false, nil
	}
	if err != nil {
		return latestIndex{}, "", false, fmt.Errorf("reading s3://%s/%s: %w", site.Bucket, latestKey(site), err)
	}
	defer out.Body.Close()
	raw, err := io.ReadAll(io.LimitReader(out.Body, 64<<10))
	if err != nil {
		return latestIndex{}, "", false, err
	}
	// The index is outside input: anything that does not decode, or
	// names something that is not a version, is not used.
	etag = aws.ToString(out.ETag)
	if json.Unmarshal(raw, &idx) != nil {
		return latestIndex{}, etag, false, nil
	}
	for _, v := range idx.Versions {
		if releases.ValidateVersion(v) != nil {
			return latestIndex{}, etag, false, nil
		}
	}
	return idx, etag, true, nil
}

// noteLatest puts version first in the index (seeding it from a listing
// when there is none).
func (b *S3Bucket) noteLatest(ctx context.Context, site releases.Site, version string) error {
	err := retryConditional(ctx, lostRace, func() error {
		idx, etag, ok, err := b.readLatest(ctx, site)
		if err != nil {
			return err
		}
		if !ok {
			all, err := b.manifests(ctx, site)
			if err != nil {
				return err
			}
			newestFirst(all)
			idx = latestIndex{}
			for _, e := range all {
				idx.Versions = append(idx.Versions, e.version)
			}
		}
		vs := []string{version}
		for _, v := range idx.Versions {
			if v != version && len(vs) < latestKept {
				vs = append(vs, v)
			}
		}
		raw, _ := json.Marshal(latestIndex{Versions: vs})
		in := &s3.PutObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(latestKey(site)), Body: strings.NewReader(string(raw)),
			ContentLength: aws.Int64(int64(len(raw))), ContentType: aws.String("application/json"), CacheControl: aws.String("no-cache")}
		if etag != "" {
			in.IfMatch = aws.String(etag)
		} else {
			in.IfNoneMatch = aws.String("*")
		}
		_, err = b.Client.PutObject(ctx, in)
		return err
	})
	if err != nil {
		return fmt.Errorf("writing s3://%s/%s: %w", site.Bucket, latestKey(site), err)
	}
	return nil
}

// newestFirst orders manifest entries by when they were written, newest
// first, then by version.
func newestFirst(all []manifestEntry) {
	sort.Slice(all, func(i, j int) bool {
		if !all[i].written.Equal(all[j].written) {
			return all[i].written.After(all[j].written)
		}
		return all[i].version > all[j].version
	})
}

// LatestManifests returns the n most recently published manifests, newest
// first: from the index when it has them (n GETs and one for the index),
// else from a listing of every manifest.
func (b *S3Bucket) LatestManifests(ctx context.Context, site releases.Site, n int, files *releases.ManifestFiles) ([]*releases.Manifest, error) {
	idx, _, ok, err := b.readLatest(ctx, site)
	if err != nil {
		return nil, err
	}
	var out []*releases.Manifest
	tried := map[string]bool{}
	if ok {
		out, err = b.readManifests(ctx, site, idx.Versions, n, files)
		// Fewer than n in an index that is not full: that is all there is.
		if err != nil || len(out) == n || len(idx.Versions) < latestKept {
			return out, err
		}
		for _, v := range idx.Versions {
			tried[v] = true
		}
	}
	// The rest from a listing, older than what the index named (it holds
	// the newest), each version read once.
	all, err := b.manifests(ctx, site)
	if err != nil {
		return nil, err
	}
	newestFirst(all)
	var vs []string
	for _, e := range all {
		if !tried[e.version] {
			vs = append(vs, e.version)
		}
	}
	more, err := b.readManifests(ctx, site, vs, n-len(out), files)
	return append(out, more...), err
}

// readManifests reads the first n manifests of versions that are there
// and valid.
func (b *S3Bucket) readManifests(ctx context.Context, site releases.Site, versions []string, n int, files *releases.ManifestFiles) ([]*releases.Manifest, error) {
	var out []*releases.Manifest
	for _, v := range versions {
		if len(out) == n {
			break
		}
		var each func(releases.ManifestFile, bool) error
		if files != nil {
			each = func(f releases.ManifestFile, carried bool) error { return files.File(v, f, carried) }
		}
		// Publish reads these one after another, in its own process,
		// not weighed against a budget (max -1).
		m, err := b.readManifest(ctx, site, v, -1, each)
		if files != nil {
			files.Done(v, err == nil)
		}
		if errors.Is(err, releases.ErrNoManifest) {
			continue // pruned, or a publish that did not finish
		}
		if releases.ErrorCode(err) == releases.EINVALID {
			continue // not a release deploybot can use (see Service.Sync)
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
