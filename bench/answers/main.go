// Command answers measures what `versions` costs now that it answers from
// the store, next to `status` (which reads the distribution) and to a sync
// (which lists the bucket), at 1,000 and 3,000 releases, in one run, on the
// stand-in.
//
//	go run ./bench/answers [-sizes 1000,3000] [-calls 50]
package main

import (
	"context"
	"flag"
	"fmt"
	"net/http/httptest"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

func main() {
	sizes := flag.String("sizes", "1000,3000", "numbers of releases, comma-separated")
	calls := flag.Int("calls", 50, "calls of each answer (medians are printed)")
	flag.Parse()
	if err := run(*sizes, *calls); err != nil {
		fmt.Fprintln(os.Stderr, "answers:", err)
		os.Exit(1)
	}
}

func run(sizes string, calls int) error {
	fmt.Printf("%-9s %-12s %-12s %-14s %s\n", "releases", "versions", "status", "first sync", "sync, nothing new")
	for _, f := range strings.Split(sizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n < 1 {
			return fmt.Errorf("bad size %q", f)
		}
		if err := one(n, calls); err != nil {
			return err
		}
	}
	return nil
}

func one(n, calls int) error {
	ctx := context.Background()
	dir, err := os.MkdirTemp("", "deploybot-answers-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(dir)
	aws, err := localaws.New(localaws.Options{DataDir: filepath.Join(dir, "aws")})
	if err != nil {
		return err
	}
	if err := aws.EnsureSite("EANSWERS", "answers"); err != nil {
		return err
	}
	api := httptest.NewServer(aws.Handler())
	defer api.Close()
	s3c, cfc, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: api.URL, Credentials: cloud.StaticCredentials("a", "b")})
	if err != nil {
		return err
	}
	bucket := &cloud.S3Bucket{Client: s3c}
	site := releases.Site{Name: "www", Bucket: "answers", Prefix: "www/", DistributionID: "EANSWERS"}
	base := time.Now().Add(-time.Duration(n) * time.Minute)
	for i := range n {
		m := &releases.Manifest{Version: fmt.Sprintf("v%05d", i), PublishedAt: base.Add(time.Duration(i) * time.Minute),
			Files: []releases.ManifestFile{{Path: "index.html", Size: 100}}}
		if err := bucket.WriteManifest(ctx, site, m); err != nil {
			return err
		}
	}
	db, err := store.Open(filepath.Join(dir, "db"), store.Options{})
	if err != nil {
		return err
	}
	defer db.Close()
	svc := wiring.Service(wiring.Config{Sites: []releases.Site{site}, Store: db, Bucket: bucket, CF: cfc, Unshared: true, NoProbes: true, NoPIDCheck: true})
	t0 := time.Now()
	if _, err := svc.Sync(ctx, "www"); err != nil {
		return err
	}
	firstSync := time.Since(t0)
	median := func(f func() error) (time.Duration, error) {
		var ds []time.Duration
		for range calls {
			t := time.Now()
			if err := f(); err != nil {
				return 0, err
			}
			ds = append(ds, time.Since(t))
		}
		sort.Slice(ds, func(i, j int) bool { return ds[i] < ds[j] })
		return ds[len(ds)/2], nil
	}
	versions, err := median(func() error { _, err := svc.Versions(ctx, "www"); return err })
	if err != nil {
		return err
	}
	status, err := median(func() error { _, err := svc.Status(ctx, "www"); return err })
	if err != nil {
		return err
	}
	resync, err := median(func() error { _, err := svc.Sync(ctx, "www"); return err })
	if err != nil {
		return err
	}
	fmt.Printf("%-9d %-12s %-12s %-14s %s\n", n, versions.Round(10*time.Microsecond), status.Round(10*time.Microsecond),
		firstSync.Round(time.Millisecond), resync.Round(10*time.Microsecond))
	return nil
}
