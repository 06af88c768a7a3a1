// Package testenv starts what most tests stand on: the AWS stand-in
// behind aws-sdk-go-v2's real clients, a site on it, and, when asked, a
// bbolt store in a temporary directory and the releases.Service over all
// of them. Each test gets its own, cleaned up with the test.
package testenv

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"maps"
	"net/http/httptest"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/wiring"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// Options say how the world differs from the usual one. The zero value
// is a stand-in with instant AWS, a site www in bucket site-bucket under
// www/ on a distribution made with a fixed id, and no store.
type Options struct {
	// AWS configures the stand-in; an empty DataDir is a temporary one.
	AWS localaws.Options
	// Provision makes the bucket and distribution through the SDK, as an
	// operator would (localaws.Provision), instead of with a fixed id.
	Provision bool
	// Site is the site; empty Name, Bucket, Prefix and DistributionID
	// take the defaults (DistributionID: ETEST, or the provisioned one).
	Site releases.Site
	// MaxAttempts per SDK call, first try included; 0: 2.
	MaxAttempts int
	// PollInterval of the CDN; 0: 10ms.
	PollInterval time.Duration
	// Edge serves the stand-in's edge too (Env.Edge).
	Edge bool
	// Store opens a store and builds the Service.
	Store bool
	// Now is the Service's clock; nil: the wall clock.
	Now func() time.Time
}

// Env is a started world.
type Env struct {
	AWS      *localaws.Server
	API      string // the stand-in's API base URL
	Edge     string // the edge's base URL ("" without Options.Edge)
	Settings cloud.Settings
	S3       *s3.Client
	CF       *cloudfront.Client
	Bucket   *cloud.S3Bucket
	CDN      *cloud.OriginPath
	Site     releases.Site
	// With Options.Store:
	DBPath  string
	Store   *store.DB
	Service *releases.Service

	t    testing.TB
	opts Options
}

// New starts a world for t.
func New(t testing.TB, o Options) *Env {
	t.Helper()
	if o.AWS.DataDir == "" {
		o.AWS.DataDir = t.TempDir()
	}
	if o.MaxAttempts == 0 {
		o.MaxAttempts = 2
	}
	if o.PollInterval == 0 {
		o.PollInterval = 10 * time.Millisecond
	}
	site := o.Site
	if site.Name == "" {
		site.Name = "www"
	}
	if site.Bucket == "" {
		site.Bucket = "site-bucket"
	}
	if site.Prefix == "" {
		site.Prefix = site.Name + "/"
	}
	srv, err := localaws.New(o.AWS)
	if err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(srv.Handler())
	t.Cleanup(api.Close)
	e := &Env{AWS: srv, API: api.URL, t: t, opts: o}
	if o.Edge {
		edge := httptest.NewServer(srv.Edge())
		t.Cleanup(edge.Close)
		e.Edge = edge.URL
	}
	e.Settings = cloud.Settings{Region: "us-east-1", Endpoint: api.URL, Credentials: cloud.StaticCredentials("AKIDTEST", "secret"), MaxAttempts: o.MaxAttempts}
	ctx := context.Background()
	e.S3, e.CF, err = cloud.NewClients(ctx, e.Settings)
	if err != nil {
		t.Fatal(err)
	}
	switch {
	case o.Provision:
		// CloudFront keeps a caller reference per distribution; a
		// test's name is unique among the tests of one stand-in.
		id, err := localaws.Provision(ctx, e.S3, e.CF, site.Bucket, strings.ReplaceAll(t.Name(), "/", "-"))
		if err != nil {
			t.Fatal(err)
		}
		if site.DistributionID == "" {
			site.DistributionID = id
		}
	default:
		if site.DistributionID == "" {
			site.DistributionID = "ETEST"
		}
		if err := srv.EnsureSite(site.DistributionID, site.Bucket); err != nil {
			t.Fatal(err)
		}
	}
	e.Site = site
	e.Bucket = &cloud.S3Bucket{Client: e.S3}
	e.CDN = &cloud.OriginPath{Client: e.CF, PollInterval: o.PollInterval}
	if o.Store {
		e.OpenStore()
	}
	return e
}

// OpenStore opens the store at DBPath (a new one in a temporary
// directory when empty; again, after a test closed it, as a restart does)
// and builds a Service over it; the store is closed with the test.
func (e *Env) OpenStore() {
	e.t.Helper()
	if e.DBPath == "" {
		e.DBPath = filepath.Join(e.t.TempDir(), "deploybot.db")
	}
	db, err := store.Open(e.DBPath, store.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { db.Close() })
	e.Store = db
	// One process's world: the store alone holds locks and freezes, and
	// no probe runs unless a test adds one.
	e.Service = wiring.Service(wiring.Config{Sites: []releases.Site{e.Site}, Store: db, Bucket: e.Bucket, CF: e.CF, CDN: e.CDN,
		Deploy: wiring.Deploy{Timeout: time.Minute}, Now: e.opts.Now, Unshared: true, NoProbes: true, NoPIDCheck: true})
}

// Publish uploads files (path -> body) as release version of the site and
// writes its manifest, stamped publishedAt, last, as `deploybot publish`
// does.
func (e *Env) Publish(version string, publishedAt time.Time, files map[string]string) releases.Manifest {
	e.t.Helper()
	ctx := context.Background()
	// Bucket.PutFile stamps each object with the release, as publish's
	// uploads are.
	m := releases.Manifest{Version: version, Commit: "c0ffee" + version, PublishedAt: publishedAt, Stamped: true}
	for _, path := range slices.Sorted(maps.Keys(files)) {
		body := files[path]
		if err := e.Bucket.PutFile(ctx, e.Site, version, releases.File{Path: path, Body: strings.NewReader(body), Size: int64(len(body)),
			ContentType: contentType(path), CacheControl: "no-cache"}); err != nil {
			e.t.Fatal(err)
		}
		sum := sha256.Sum256([]byte(body))
		m.Files = append(m.Files, releases.ManifestFile{Path: path, Size: int64(len(body)), SHA256: hex.EncodeToString(sum[:]),
			ContentType: contentType(path), CacheControl: "no-cache"})
	}
	if err := e.Bucket.WriteManifest(ctx, e.Site, &m); err != nil {
		e.t.Fatal(err)
	}
	return m
}

func contentType(path string) string {
	switch {
	case strings.HasSuffix(path, ".html"):
		return "text/html; charset=utf-8"
	case strings.HasSuffix(path, ".css"):
		return "text/css"
	case strings.HasSuffix(path, ".js"):
		return "text/javascript"
	}
	return "application/octet-stream"
}
