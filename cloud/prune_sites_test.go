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

// pruneRig is a stand-in S3 on a test clock, for rounds of sites that
// share a bucket.
type pruneRig struct {
	clk *testclock.Clock
	s3c *s3.Client
	b   *cloud.S3Bucket
}

// pruneRound is one round's bucket: the sites sharing it, the site to
// prune, a ghost site inside its prefix, the keys each site wrote and
// the version live on each.
type pruneRound struct {
	n      int
	bucket string
	sites  []releases.Site
	victim releases.Site
	ghost  releases.Site
	owned  map[string][]string // site -> keys it wrote
	live   liveBySite
}

func newPruneRig(t *testing.T) *pruneRig {
	t.Helper()
	clk := testclock.New(testclock.At(9, 0))
	srv, err := localaws.New(localaws.Options{DataDir: t.TempDir(), Now: clk.Now})
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	s3c, _, err := cloud.NewClients(context.Background(), cloud.Settings{Region: "us-east-1", Endpoint: api.URL,
		Credentials: cloud.StaticCredentials("AKIDLOCAL", "secret"), MaxAttempts: 3})
	if err != nil {
		t.Fatal(err)
	}
	return &pruneRig{clk: clk, s3c: s3c, b: &cloud.S3Bucket{Client: s3c}}
}

var prunePrefixes = []string{"", "a/", "a/b/", "b/", "v1/", "a/v2/", "www/", "a/old1/"}

// seed makes round n's bucket: two or three sites with prefixes drawn
// from rng, each with releases v1 to v3 (v3 live) and an upload
// abandoned long ago, and a ghost site inside the victim's prefix.
func (r *pruneRig) seed(t *testing.T, n int, rng *rand.Rand) *pruneRound {
	t.Helper()
	ctx := context.Background()
	pr := &pruneRound{n: n, bucket: fmt.Sprintf("shared-%02d", n), owned: map[string][]string{}, live: liveBySite{}}
	if _, err := r.s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(pr.bucket)}); err != nil {
		t.Fatal(err)
	}
	for i := range 2 + rng.IntN(2) {
		site := releases.Site{Name: fmt.Sprintf("s%d", i), Bucket: pr.bucket, Prefix: prunePrefixes[rng.IntN(len(prunePrefixes))], DistributionID: "E",
			Retention: releases.Policy{Keep: 1, KeepDeployed: 1, MinAge: 0, Grace: time.Hour}}
		pr.sites = append(pr.sites, site)
		for _, v := range []string{"v1", "v2", "v3"} {
			pr.owned[site.Name] = append(pr.owned[site.Name], r.publish(t, site, v)...)
		}
		// An upload of this site abandoned long ago.
		if err := r.b.PutFile(ctx, site, "old1", releases.File{Path: "index.html", Body: strings.NewReader("x"), Size: 1, Replace: true}); err != nil {
			t.Fatal(err)
		}
		pr.live[site.Name] = "v3"
	}
	pr.victim = pr.sites[rng.IntN(len(pr.sites))]
	// A site no configuration here names, inside the victim's prefix
	// (another deploybot's, or one removed from this configuration):
	// its .deploybot/ folder says it is a site, not an upload.
	pr.ghost = releases.Site{Name: "ghost", Bucket: pr.bucket, Prefix: pr.victim.Prefix + "ghost/"}
	if err := r.b.PutFile(ctx, pr.ghost, "v1", releases.File{Path: "index.html", Body: strings.NewReader("g"), Size: 1}); err != nil {
		t.Fatal(err)
	}
	if err := r.b.WriteManifest(ctx, pr.ghost, &releases.Manifest{Version: "v1", PublishedAt: r.clk.Now(),
		Files: []releases.ManifestFile{{Path: "index.html", Size: 1}}}); err != nil {
		t.Fatal(err)
	}
	pr.owned["ghost"] = []string{pr.ghost.ReleasePath("v1") + "index.html", pr.ghost.ManifestKey("v1")}
	return pr
}

// publish writes release v of site and returns the keys it wrote.
func (r *pruneRig) publish(t *testing.T, site releases.Site, v string) []string {
	t.Helper()
	ctx := context.Background()
	var keys []string
	var files []releases.ManifestFile
	for _, p := range []string{"index.html", "b/x.js"} {
		body := site.Name + " " + v + " " + p
		// Two sites with one prefix write the same keys: the
		// second replaces the first's (deploybot never would:
		// its configuration refuses overlapping prefixes).
		if err := r.b.PutFile(ctx, site, v, releases.File{Path: p, Body: strings.NewReader(body), Size: int64(len(body)), Replace: true}); err != nil {
			t.Fatal(err)
		}
		keys = append(keys, site.ReleasePath(v)+p)
		files = append(files, releases.ManifestFile{Path: p, Size: int64(len(body))})
	}
	// A manifest of the same version may be there already
	// (two sites with one prefix): the first one stays.
	if err := r.b.WriteManifest(ctx, site, &releases.Manifest{Version: v, PublishedAt: r.clk.Now(), Files: files}); err == nil {
		keys = append(keys, site.ManifestKey(v))
	}
	return keys
}

// prune dry-runs then runs a prune of the round's victim, two days on,
// and checks the dry run named what the run deleted.
func (r *pruneRig) prune(t *testing.T, pr *pruneRound) *releases.PruneReport {
	t.Helper()
	ctx := context.Background()
	db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	svc := &releases.Service{Store: db, Bucket: r.b, Sites: pr.sites, CDNs: map[string]releases.CDN{releases.DefaultStrategy: pr.live},
		Now: func() time.Time { return r.clk.Now().Add(48 * time.Hour) }}
	dry, err := svc.Prune(ctx, releases.PruneRequest{Site: pr.victim.Name, DryRun: true, Actor: "test"})
	if err != nil {
		t.Fatalf("round %d: dry run: %v", pr.n, err)
	}
	rep, err := svc.Prune(ctx, releases.PruneRequest{Site: pr.victim.Name, Actor: "test"})
	if err != nil {
		t.Fatalf("round %d: prune: %v", pr.n, err)
	}
	db.Close()
	if !slices.Equal(prunedVersions(dry), prunedVersions(rep)) {
		t.Fatalf("round %d: the dry run said %v, the run deleted %v", pr.n, prunedVersions(dry), prunedVersions(rep))
	}
	return rep
}

func prunedVersions(r *releases.PruneReport) []string {
	var out []string
	for _, d := range r.Deleted {
		out = append(out, d.Version)
	}
	slices.Sort(out)
	return out
}

// keys is every key in bucket.
func (r *pruneRig) keys(t *testing.T, bucket string) map[string]bool {
	t.Helper()
	left := map[string]bool{}
	p := s3.NewListObjectsV2Paginator(r.s3c, &s3.ListObjectsV2Input{Bucket: aws.String(bucket)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			left[aws.ToString(o.Key)] = true
		}
	}
	return left
}

// Sites that share a bucket with overlapping prefixes (the configuration
// refuses them, but a prune must be safe whatever the configuration says):
// for random sets of sites and a prune of any one of them, no object that
// another site wrote is deleted, and the dry run names exactly what the
// run deletes. Each round is a fresh bucket on the stand-in, seeded so a
// failure can be replayed.
func TestPruneNeverDeletesAnotherSitesObjects(t *testing.T) {
	r := newPruneRig(t)
	rounds := 40
	if n, err := strconv.Atoi(os.Getenv("DEPLOYBOT_PRUNE_ROUNDS")); err == nil && n > 0 {
		rounds = n // make reliability runs many more
	}
	checked, deleted := 0, 0
	for round := range rounds {
		pr := r.seed(t, round, rand.New(rand.NewPCG(uint64(round), 7)))
		rep := r.prune(t, pr)
		left := r.keys(t, pr.bucket)
		for _, o := range append(pr.sites, pr.ghost) {
			if o.Name == pr.victim.Name {
				continue
			}
			for _, k := range pr.owned[o.Name] {
				checked++
				if !left[k] {
					desc := []string{}
					for _, s := range pr.sites {
						desc = append(desc, fmt.Sprintf("%s=%q", s.Name, s.Prefix))
					}
					t.Fatalf("round %d: sites %v, pruning %s deleted %s of site %s (deleted %v)", round, desc, pr.victim.Name, k, o.Name, prunedVersions(rep))
				}
			}
		}
		deleted += rep.Objects
	}
	t.Logf("prune property: %d rounds, %d objects of other sites checked, 0 lost; %d objects of the pruned sites deleted", rounds, checked, deleted)
}
