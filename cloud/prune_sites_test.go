package cloud_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// liveBySite serves a fixed live version per site.
type liveBySite map[string]string

func (c liveBySite) Strategy() string { return releases.DefaultStrategy }
func (c liveBySite) Current(_ context.Context, site releases.Site) (releases.Current, error) {
	return releases.Current{Version: c[site.Name], Path: site.OriginPath(c[site.Name])}, nil
}
func (c liveBySite) Plan(releases.Site, releases.Current, string, string) []releases.Step { return nil }
func (c liveBySite) Resume(context.Context, releases.Site, releases.Deploy) ([]releases.Step, bool, error) {
	return nil, false, nil
}

// Sites that share a bucket with overlapping prefixes (the configuration
// refuses them, but a prune must be safe whatever the configuration says):
// for random sets of sites and a prune of any one of them, no object that
// another site wrote is deleted, and the dry run names exactly what the
// run deletes. Each round is a fresh bucket on the stand-in, seeded so a
// failure can be replayed.
func TestPruneNeverDeletesAnotherSitesObjects(t *testing.T) {
	clk := testclock.New(testclock.At(9, 0))
	srv, err := localaws.New(localaws.Options{DataDir: t.TempDir(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	ctx := context.Background()
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: api.URL,
		Credentials: cloud.StaticCredentials("AKIDLOCAL", "secret"), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	b := &cloud.S3Bucket{Client: s3c}
	prefixes := []string{"", "a/", "a/b/", "b/", "v1/", "a/v2/", "www/", "a/old1/"}
	rounds := 40
	if n, err := strconv.Atoi(os.Getenv("DEPLOYBOT_PRUNE_ROUNDS")); err == nil && n > 0 {
		rounds = n // make reliability runs many more
	}
	checked, deleted := 0, 0
	for round := range rounds {
		rng := rand.New(rand.NewPCG(uint64(round), 7))
		bucket := fmt.Sprintf("shared-%02d", round)
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(bucket)}); err != nil {
			t.Fatal(err)
		}
		var sites []releases.Site
		owned := map[string][]string{} // site -> keys it wrote
		live := liveBySite{}
		for i := range 2 + rng.IntN(2) {
			site := releases.Site{Name: fmt.Sprintf("s%d", i), Bucket: bucket, Prefix: prefixes[rng.IntN(len(prefixes))], DistributionID: "E",
				Retention: releases.Policy{Keep: 1, KeepDeployed: 1, MinAge: 0, Grace: time.Hour}}
			sites = append(sites, site)
			for _, v := range []string{"v1", "v2", "v3"} {
				var files []releases.ManifestFile
				for _, p := range []string{"index.html", "b/x.js"} {
					body := site.Name + " " + v + " " + p
					// Two sites with one prefix write the same keys: the
					// second replaces the first's (deploybot never would:
					// its configuration refuses overlapping prefixes).
					if err := b.PutFile(ctx, site, v, releases.File{Path: p, Body: strings.NewReader(body), Size: int64(len(body)), Replace: true}); err != nil {
						t.Fatal(err)
					}
					owned[site.Name] = append(owned[site.Name], site.ReleasePath(v)+p)
					files = append(files, releases.ManifestFile{Path: p, Size: int64(len(body))})
				}
				// A manifest of the same version may be there already
				// (two sites with one prefix): the first one stays.
				if err := b.WriteManifest(ctx, site, &releases.Manifest{Version: v, PublishedAt: clk.Now(), Files: files}); err == nil {
					owned[site.Name] = append(owned[site.Name], site.ManifestKey(v))
				}
			}
			// An upload of this site abandoned long ago.
			if err := b.PutFile(ctx, site, "old1", releases.File{Path: "index.html", Body: strings.NewReader("x"), Size: 1, Replace: true}); err != nil {
				t.Fatal(err)
			}
			live[site.Name] = "v3"
		}
		victim := sites[rng.IntN(len(sites))]
		// A site no configuration here names, inside the victim's prefix
		// (another deploybot's, or one removed from this configuration):
		// its .deploybot/ folder says it is a site, not an upload.
		ghost := releases.Site{Name: "ghost", Bucket: bucket, Prefix: victim.Prefix + "ghost/"}
		if err := b.PutFile(ctx, ghost, "v1", releases.File{Path: "index.html", Body: strings.NewReader("g"), Size: 1}); err != nil {
			t.Fatal(err)
		}
		if err := b.WriteManifest(ctx, ghost, &releases.Manifest{Version: "v1", PublishedAt: clk.Now(),
			Files: []releases.ManifestFile{{Path: "index.html", Size: 1}}}); err != nil {
			t.Fatal(err)
		}
		owned["ghost"] = []string{ghost.ReleasePath("v1") + "index.html", ghost.ManifestKey("v1")}
		db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
		if err != nil {
			t.Fatal(err)
		}
		svc := &releases.Service{Store: db, Bucket: b, Sites: sites, CDNs: map[string]releases.CDN{releases.DefaultStrategy: live},
			Now: func() time.Time { return clk.Now().Add(48 * time.Hour) }}
		dry, err := svc.Prune(ctx, releases.PruneRequest{Site: victim.Name, DryRun: true, Actor: "test"})
		if err != nil {
			t.Fatalf("round %d: dry run: %v", round, err)
		}
		rep, err := svc.Prune(ctx, releases.PruneRequest{Site: victim.Name, Actor: "test"})
		if err != nil {
			t.Fatalf("round %d: prune: %v", round, err)
		}
		db.Close()
		names := func(r *releases.PruneReport) []string {
			var out []string
			for _, d := range r.Deleted {
				out = append(out, d.Version)
			}
			slices.Sort(out)
			return out
		}
		if !slices.Equal(names(dry), names(rep)) {
			t.Fatalf("round %d: the dry run said %v, the run deleted %v", round, names(dry), names(rep))
		}
		left := map[string]bool{}
		p := s3.NewListObjectsV2Paginator(s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
		for p.HasMorePages() {
			page, err := p.NextPage(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, o := range page.Contents {
				left[aws.ToString(o.Key)] = true
			}
		}
		for _, o := range append(sites, ghost) {
			if o.Name == victim.Name {
				continue
			}
			for _, k := range owned[o.Name] {
				checked++
				if !left[k] {
					desc := []string{}
					for _, s := range sites {
						desc = append(desc, fmt.Sprintf("%s=%q", s.Name, s.Prefix))
					}
					t.Fatalf("round %d: sites %v, pruning %s deleted %s of site %s (deleted %v)", round, desc, victim.Name, k, o.Name, names(rep))
				}
			}
		}
		deleted += rep.Objects
	}
	t.Logf("prune property: %d rounds, %d objects of other sites checked, 0 lost; %d objects of the pruned sites deleted", rounds, checked, deleted)
}
