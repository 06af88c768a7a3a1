// Command prune measures how fast deploybot's retention deletes releases
// from a real S3 server (versitygw), next to `rclone purge` on the same
// data in the same run, and prints objects per second for both.
//
//	go run ./bench/prune [-releases 50] [-objects 2000] [-workers 32]
//
// It installs versitygw (go install) and Debian's rclone when they are missing.
// rclone runs with AWS_CA_BUNDLE unset: it would otherwise try to load it
// for a plain-HTTP endpoint and fail.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync/atomic"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"golang.org/x/sync/errgroup"

	"github.com/deploybot/deploybot/bench/internal/tools"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

func main() {
	nRel := flag.Int("releases", 50, "releases to prune")
	nObj := flag.Int("objects", 2000, "objects per release")
	workers := flag.Int("workers", 32, "uploads in flight while seeding")
	flag.Parse()
	if err := run(*nRel, *nObj, *workers); err != nil {
		fmt.Fprintln(os.Stderr, "bench/prune:", err)
		os.Exit(1)
	}
}

// liveCDN says the newest release is live; the benchmark needs no
// CloudFront.
type liveCDN struct{ version string }

func (c liveCDN) Strategy() string { return releases.DefaultStrategy }
func (c liveCDN) Current(_ context.Context, s releases.Site) (releases.Current, error) {
	return releases.Current{Version: c.version, Path: s.OriginPath(c.version)}, nil
}
func (liveCDN) Plan(releases.Site, releases.Current, string, string) []releases.Step { return nil }
func (liveCDN) Resume(context.Context, releases.Site, releases.Deploy) ([]releases.Step, bool, error) {
	return nil, false, nil
}

func run(nRel, nObj, workers int) error {
	ctx := context.Background()
	bin, err := tools.VersityGW()
	if err != nil {
		return err
	}
	rclone, err := tools.Debian("rclone", "rclone")
	if err != nil {
		return err
	}
	dir, err := os.MkdirTemp("", "deploybot-bench-prune-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	endpoint, stop, err := testaws.Start(bin, dir)
	if err != nil {
		return err
	}
	defer stop()
	s3c, err := tools.VersityS3(ctx, endpoint)
	if err != nil {
		return err
	}
	total := nRel * nObj
	fmt.Printf("prune benchmark: %d releases x %d objects = %d objects on versitygw %s\n", nRel, nObj, total, endpoint)

	// deploybot: nRel old releases plus one live one; keep 1.
	site := releases.Site{Name: "bench", Bucket: "bench-deploybot", Prefix: "www/",
		Retention: releases.Policy{Keep: 1, KeepDeployed: 1, MinAge: time.Nanosecond, Grace: time.Hour}}
	if err := seed(ctx, s3c, site.Bucket, site.Prefix, nRel, nObj, workers, true); err != nil {
		return err
	}
	db, err := store.Open(filepath.Join(dir, "bench.db"), store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	svc := wiring.Service(wiring.Config{Sites: []releases.Site{site}, Store: db, Bucket: &cloud.S3Bucket{Client: s3c},
		CDN: liveCDN{version: "live"}, Unshared: true, NoProbes: true, NoPIDCheck: true})
	start := time.Now()
	rep, err := svc.Prune(ctx, releases.PruneRequest{Site: site.Name, Actor: "bench"})
	if err != nil {
		return err
	}
	ours := time.Since(start)
	if rep.Objects != total {
		return fmt.Errorf("deploybot deleted %d objects, want %d", rep.Objects, total)
	}

	// rclone purge of the same objects (the release folders, not the live one).
	if err := seed(ctx, s3c, "bench-rclone", "www/", nRel, nObj, workers, false); err != nil {
		return err
	}
	remote := fmt.Sprintf(":s3,provider=Other,endpoint='%s',access_key_id=%s,secret_access_key=%s,force_path_style=true,region=us-east-1:bench-rclone/www",
		endpoint, testaws.AccessKey, testaws.SecretKey)
	cmd := exec.CommandContext(ctx, rclone, "purge", remote)
	cmd.Env = withoutEnv(os.Environ(), "AWS_CA_BUNDLE")
	start = time.Now()
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("rclone purge: %v\n%s", err, out)
	}
	theirs := time.Since(start)
	left, err := count(ctx, s3c, "bench-rclone", "www/")
	if err != nil {
		return err
	}
	if left != 0 {
		return fmt.Errorf("rclone left %d objects", left)
	}

	rate := func(d time.Duration) float64 { return float64(total) / d.Seconds() }
	fmt.Printf("%-22s %10s %10s %12s\n", "tool", "objects", "seconds", "objects/s")
	fmt.Printf("%-22s %10d %10.2f %12.0f\n", "deploybot prune", total, ours.Seconds(), rate(ours))
	fmt.Printf("%-22s %10d %10.2f %12.0f\n", "rclone purge", total, theirs.Seconds(), rate(theirs))
	fmt.Printf("deploybot / rclone objects/s: %.2fx\n", rate(ours)/rate(theirs))
	return nil
}

func withoutEnv(env []string, name string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

// seed creates the bucket and nRel release folders of nObj small objects;
// with manifests, also their manifests and a live release "live".
func seed(ctx context.Context, c *s3.Client, bucket, prefix string, nRel, nObj, workers int, manifests bool) error {
	if _, err := c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
		return fmt.Errorf("creating %s: %w", bucket, err)
	}
	start := time.Now()
	var done atomic.Int64
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(workers)
	for r := 0; r < nRel; r++ {
		for o := 0; o < nObj; o++ {
			key := fmt.Sprintf("%sr%03d/assets/%02d/obj-%05d.js", prefix, r, o%50, o)
			g.Go(func() error {
				_, err := c.PutObject(gctx, &s3.PutObjectInput{Bucket: aws.String(bucket), Key: aws.String(key), Body: strings.NewReader("console.log(1)\n")})
				done.Add(1)
				return err
			})
		}
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("seeding: %w", err)
	}
	if manifests {
		b := &cloud.S3Bucket{Client: c}
		site := releases.Site{Name: "bench", Bucket: bucket, Prefix: prefix}
		old := time.Now().Add(-30 * 24 * time.Hour)
		for r := 0; r < nRel; r++ {
			if err := b.WriteManifest(ctx, site, &releases.Manifest{Version: fmt.Sprintf("r%03d", r), PublishedAt: old.Add(time.Duration(r) * time.Minute)}); err != nil {
				return err
			}
		}
		if err := b.PutFile(ctx, site, "live", releases.File{Path: "index.html", Body: strings.NewReader("live"), Size: 4}); err != nil {
			return err
		}
		if err := b.WriteManifest(ctx, site, &releases.Manifest{Version: "live", PublishedAt: time.Now()}); err != nil {
			return err
		}
	}
	fmt.Printf("seeded %d objects into %s in %.1fs\n", done.Load(), bucket, time.Since(start).Seconds())
	return nil
}

func count(ctx context.Context, c *s3.Client, bucket, prefix string) (int, error) {
	n := 0
	p := s3.NewListObjectsV2Paginator(c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(ctx)
		if err != nil {
			return 0, err
		}
		n += len(page.Contents)
	}
	return n, nil
}
