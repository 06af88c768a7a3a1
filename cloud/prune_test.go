package cloud_test

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// staticCDN serves one fixed version: versitygw has no CloudFront, and the
// prune only reads what is live.
type staticCDN struct {
	site    releases.Site
	version string
}

func (c staticCDN) Strategy() string { return releases.DefaultStrategy }
func (c staticCDN) Current(context.Context, releases.Site) (releases.Current, error) {
	return releases.Current{Version: c.version, Path: c.site.OriginPath(c.version)}, nil
}
func (c staticCDN) Plan(releases.Site, releases.Current, string, string) []releases.Step { return nil }
func (c staticCDN) Resume(context.Context, releases.Site, releases.Deploy) ([]releases.Step, bool, error) {
	return nil, false, nil
}

// t0 is when the first release was published: sixty days before the wall
// clock. These tests run against S3 servers (versitygw, the stand-in) that
// stamp objects by the wall clock, and the prune judges an unfinished
// upload by its objects' LastModified, so the service's clock follows the
// wall clock here rather than a fixture date that the wall clock would one
// day pass.
var t0 = time.Now().UTC().Add(-60 * 24 * time.Hour).Truncate(time.Hour)

type pruneEnv struct {
	now    time.Time
	s3     *s3.Client
	bucket *cloud.S3Bucket
	svc    *releases.Service
	db     *store.DB
	site   releases.Site
}

// seed publishes n releases of files objects each (release i has i*7
// extra objects when big is set), an abandoned upload and a fresh one.
func seedReleases(t *testing.T, e *pruneEnv, n, files int) {
	t.Helper()
	ctx := context.Background()
	for i := 1; i <= n; i++ {
		v := fmt.Sprintf("v%02d", i)
		var entries []releases.ManifestFile
		for j := 0; j < files; j++ {
			path := fmt.Sprintf("assets/%d/file-%04d.txt", j%7, j)
			body := strings.Repeat(v, 10+j%5)
			if err := e.bucket.PutFile(ctx, e.site, v, releases.File{Path: path, Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
				t.Fatal(err)
			}
			entries = append(entries, releases.ManifestFile{Path: path, Size: int64(len(body))})
		}
		if err := e.bucket.WriteManifest(ctx, e.site, &releases.Manifest{Version: v, PublishedAt: t0.Add(time.Duration(i) * time.Hour), Files: entries}); err != nil {
			t.Fatal(err)
		}
	}
}

func newPruneEnv(t *testing.T, s3c *s3.Client, cdn releases.CDN, site releases.Site, now time.Time) *pruneEnv {
	db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	site.Retention = releases.Policy{Keep: 5, KeepDeployed: 1, MinAge: 72 * time.Hour}
	b := &cloud.S3Bucket{Client: s3c}
	e := &pruneEnv{now: now, s3: s3c, bucket: b, db: db, site: site}
	e.svc = &releases.Service{Store: db, Bucket: b, Sites: []releases.Site{site}, CDNs: map[string]releases.CDN{releases.DefaultStrategy: cdn},
		Now: func() time.Time { return e.now }}
	return e
}

func (e *pruneEnv) keys(t *testing.T, prefix string) []string {
	t.Helper()
	var out []string
	p := s3.NewListObjectsV2Paginator(e.s3, &s3.ListObjectsV2Input{Bucket: aws.String(e.site.Bucket), Prefix: aws.String(prefix)})
	for p.HasMorePages() {
		page, err := p.NextPage(context.Background())
		if err != nil {
			t.Fatal(err)
		}
		for _, o := range page.Contents {
			out = append(out, aws.ToString(o.Key))
		}
	}
	return out
}

// checkPruned: exactly the folders and manifests of keep remain.
func (e *pruneEnv) checkPruned(t *testing.T, n int, keep map[string]bool) {
	t.Helper()
	for i := 1; i <= n; i++ {
		v := fmt.Sprintf("v%02d", i)
		objs := e.keys(t, e.site.ReleasePath(v))
		_, merr := e.bucket.ReadManifest(context.Background(), e.site, v)
		r, _ := e.db.Release(context.Background(), e.site.Name, v)
		switch {
		case keep[v] && (len(objs) == 0 || merr != nil || r.Pruned):
			t.Errorf("%s should remain in full: %d objects, manifest %v, pruned %v", v, len(objs), merr, r.Pruned)
		case !keep[v] && (len(objs) != 0 || merr == nil || !r.Pruned):
			t.Errorf("%s should be gone: %d objects left, manifest %v, pruned %v", v, len(objs), merr, r.Pruned)
		}
	}
}

func runPruneScenario(t *testing.T, e *pruneEnv) {
	ctx := context.Background()
	seedReleases(t, e, 12, 25)
	// A folder with no manifest: an upload in progress now, abandoned once
	// it is older than the grace period (1 h).
	if err := e.bucket.PutFile(ctx, e.site, "partial", releases.File{Path: "index.html", Body: strings.NewReader("x"), Size: 1}); err != nil {
		t.Fatal(err)
	}
	e.now = time.Now()
	dry, err := e.svc.Prune(ctx, releases.PruneRequest{Site: "www", DryRun: true, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	uploading := false
	for _, k := range dry.Kept {
		uploading = uploading || k.Version == "partial" && k.Reason == releases.KeepUploading
	}
	if !uploading {
		t.Fatalf("a fresh folder without manifest is not kept as an upload in progress: %+v", dry.Kept)
	}
	e.now = time.Now().Add(2 * time.Hour)
	dry, err = e.svc.Prune(ctx, releases.PruneRequest{Site: "www", DryRun: true, Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var wouldDelete []string
	for _, d := range dry.Deleted {
		wouldDelete = append(wouldDelete, d.Version)
	}
	if len(e.keys(t, e.site.Prefix)) != 12*25+12+2+1 { // files, manifests, v12's index.html, partial, the index of the newest releases
		t.Fatalf("the dry run deleted something")
	}
	rep, err := e.svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "test"})
	if err != nil {
		t.Fatal(err)
	}
	var deleted []string
	for _, d := range rep.Deleted {
		deleted = append(deleted, d.Version)
	}
	if fmt.Sprint(deleted) != fmt.Sprint(wouldDelete) {
		t.Fatalf("dry run said %v, the run deleted %v", wouldDelete, deleted)
	}
	// v12 is live; keep 5 -> v08..v12; the live one is among them.
	keep := map[string]bool{"v08": true, "v09": true, "v10": true, "v11": true, "v12": true}
	e.checkPruned(t, 12, keep)
	if rep.Objects != 7*25+1 || rep.Failures != 0 { // 7 releases and the abandoned upload
		t.Fatalf("report: %d objects, %d failures: %+v", rep.Objects, rep.Failures, rep)
	}
	if len(e.keys(t, e.site.ReleasePath("partial"))) != 0 {
		t.Fatal("the abandoned upload was kept")
	}
	if _, err := e.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v03", Actor: "x"}, nil); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("promote of a pruned release: %v", err)
	}
	vs, _ := e.svc.Versions(ctx, "www")
	pruned := 0
	for _, v := range vs {
		if v.Pruned {
			pruned++
		}
	}
	if pruned != 7 {
		t.Fatalf("versions shows %d pruned, want 7", pruned)
	}
}

func TestPruneOnLocalAWS(t *testing.T) {
	e := newEnv(t, 0, 0)
	now := time.Now()
	e.put(t, "v12", "index.html", "x") // make the folder exist before the flip
	cur, _ := e.CDN.Current(context.Background(), e.Site)
	if err := e.CDN.Plan(e.Site, cur, "v12", "d")[0].Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	pe := newPruneEnv(t, e.S3, e.CDN, e.Site, now)
	// the extra index.html of v12 counts as one of its objects
	runPruneScenario(t, pe)
}

func TestPruneOnVersityGW(t *testing.T) {
	endpoint := testaws.StartVersityGW(t)
	s3c, _, err := cloud.NewClients(context.Background(), cloud.Settings{Region: "us-east-1", Endpoint: endpoint,
		Credentials: cloud.StaticCredentials(testaws.AccessKey, testaws.SecretKey)})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := s3c.CreateBucket(context.Background(), &s3.CreateBucketInput{Bucket: aws.String("prune-site")}); err != nil {
		t.Fatal(err)
	}
	site := releases.Site{Name: "www", Bucket: "prune-site", Prefix: "www/"}
	pe := newPruneEnv(t, s3c, staticCDN{site: site, version: "v12"}, site, time.Now())
	if err := pe.bucket.PutFile(context.Background(), site, "v12", releases.File{Path: "index.html", Body: strings.NewReader("x"), Size: 1}); err != nil {
		t.Fatal(err)
	}
	runPruneScenario(t, pe)
}

func TestInterruptedPruneIsFinishedByTheNextRun(t *testing.T) {
	e := newEnv(t, 0, 0)
	ctx := context.Background()
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: e.API,
		Credentials: cloud.StaticCredentials("AKIDLOCAL", "secret"), MaxAttempts: 1})
	if err != nil {
		t.Fatal(err)
	}
	pe := newPruneEnv(t, s3c, staticCDN{site: e.Site, version: "v07"}, e.Site, time.Now())
	pe.svc.Sites[0].Retention.Keep = 5
	seedReleases(t, pe, 7, 2500) // 3 DeleteObjects batches per release
	// The second DeleteObjects call (the middle of the first release) and
	// every one after it fail.
	e.AWS.SetFaults(localaws.Faults{ErrorRate: 1, Only: "s3 DeleteObjects", Skip: 1})
	rep, err := pe.svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "test"})
	if err == nil || rep.Failures == 0 {
		t.Fatalf("a failing prune reported success: %+v", rep)
	}
	// Objects are gone only in part, and the manifest (deleted last) is still there.
	if n := len(pe.keys(t, e.Site.ReleasePath("v01"))); n == 0 || n == 2500 {
		t.Fatalf("v01 has %d objects left; the fault did not hit the middle", n)
	}
	if _, err := pe.bucket.ReadManifest(ctx, e.Site, "v01"); err != nil {
		t.Fatalf("manifest of a half-pruned release is gone: %v", err)
	}
	if l, _ := pe.db.Lock(ctx, "www"); l != nil {
		t.Fatalf("the prune's lock was kept: %+v", l)
	}
	e.AWS.SetFaults(localaws.Faults{})
	rep, err = pe.svc.Prune(ctx, releases.PruneRequest{Site: "www", Actor: "test"})
	if err != nil || rep.Failures != 0 {
		t.Fatalf("second run: %+v %v", rep, err)
	}
	pe.checkPruned(t, 7, map[string]bool{"v03": true, "v04": true, "v05": true, "v06": true, "v07": true})
}
