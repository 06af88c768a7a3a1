package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/service/cloudfront"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
	"github.com/deploybot/deploybot/store"
)

const (
	secret = "hook-secret"
	token  = "api-token"
	distID = "ETEST1"
)

// env is a deploybot on real bbolt and the SDK, against the stand-in whose
// clock the test holds, so AWS stays in any state as long as needed. The
// service and the server read clk, and everything the fixture stamps
// (manifests, hook timestamps, deploy records) takes its time from clk too.
type env struct {
	t      *testing.T
	clk    *testclock.Clock
	awsClk *testclock.Clock
	aws    *localaws.Server
	cf     *cloudfront.Client
	bucket *cloud.S3Bucket
	cdn    *cloud.OriginPath
	site   releases.Site
	dbPath string
	db     *store.DB
	svc    *releases.Service
	srv    *server.Server
	url    string
	// shutdown stops the server started last and returns Run's error.
	shutdown func() error
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clk: testclock.Ticking(testclock.At(10, 0), time.Millisecond), awsClk: testclock.Start()}
	var err error
	e.aws, err = localaws.New(localaws.Options{DataDir: t.TempDir(), Propagation: time.Hour, Invalidation: time.Hour, Now: e.awsClk.Now})
	if err != nil {
		t.Fatal(err)
	}
	if err := e.aws.EnsureSite(distID, "site-bucket"); err != nil {
		t.Fatal(err)
	}
	api := httptest.NewServer(e.aws.Handler())
	t.Cleanup(api.Close)
	s3c, cfc, err := cloud.NewClients(context.Background(), cloud.Settings{Region: "us-east-1", Endpoint: api.URL,
		Credentials: cloud.StaticCredentials("AKID", "secret"), MaxAttempts: 2})
	if err != nil {
		t.Fatal(err)
	}
	e.cf = cfc
	e.bucket = &cloud.S3Bucket{Client: s3c}
	e.cdn = &cloud.OriginPath{Client: cfc, PollInterval: 5 * time.Millisecond}
	e.site = releases.Site{Name: "www", Bucket: "site-bucket", Prefix: "www/", DistributionID: distID}
	e.dbPath = filepath.Join(t.TempDir(), "deploybot.db")
	e.open()
	return e
}

func (e *env) open() {
	var err error
	e.db, err = store.Open(e.dbPath, store.Options{})
	if err != nil {
		e.t.Fatal(err)
	}
	e.t.Cleanup(func() { e.db.Close() })
	e.svc = &releases.Service{Store: e.db, Bucket: e.bucket, Sites: []releases.Site{e.site},
		CDNs: map[string]releases.CDN{releases.DefaultStrategy: e.cdn}, Timeout: time.Minute, Now: e.clk.Now}
	e.srv = &server.Server{Service: e.svc, Store: e.db, HookSecret: []byte(secret), APIToken: token,
		ReconcileInterval: time.Hour, ShutdownTimeout: 5 * time.Second, Now: e.clk.Now}
}

// start runs the server on a loopback listener, as serve does.
func (e *env) start() {
	e.t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		e.t.Fatal(err)
	}
	e.url = "http://" + ln.Addr().String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- e.srv.Run(ctx, ln) }()
	var once sync.Once
	var runErr error
	e.shutdown = func() error {
		once.Do(func() { cancel(); runErr = <-done })
		return runErr
	}
	e.t.Cleanup(func() { _ = e.shutdownOf(e.shutdown) })
}

func (e *env) shutdownOf(f func() error) error { return f() }

func (e *env) publish(versions ...string) {
	e.t.Helper()
	for _, v := range versions {
		body := "<h1>" + v + "</h1>"
		if err := e.bucket.PutFile(context.Background(), e.site, v, releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
			e.t.Fatal(err)
		}
		if err := e.bucket.WriteManifest(context.Background(), e.site, &releases.Manifest{Version: v, PublishedAt: e.clk.Now(),
			Files: []releases.ManifestFile{{Path: "index.html", Size: int64(len(body))}}}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) client() *server.Client { return &server.Client{URL: e.url, Token: token} }

// settle lets CloudFront finish whatever it is doing now.
func (e *env) settle() { e.awsClk.Add(2 * time.Hour) }

// flow lets CloudFront's time run fast from now on, so every change and
// invalidation completes within milliseconds.
func (e *env) flow() {
	stop := make(chan struct{})
	e.t.Cleanup(func() { close(stop) })
	go func() {
		for {
			select {
			case <-stop:
				return
			case <-time.After(2 * time.Millisecond):
				e.awsClk.Add(time.Hour)
			}
		}
	}()
}

func (e *env) eventually(what string, cond func() bool) {
	e.t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for !cond() {
		if time.Now().After(deadline) {
			e.t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func (e *env) originPath() string {
	e.t.Helper()
	cur, err := e.cdn.Current(context.Background(), e.site)
	if err != nil {
		e.t.Fatal(err)
	}
	return cur.Path
}

type answer struct {
	status int
	body   map[string]any
}

func (e *env) post(path string, body []byte, header map[string]string) answer {
	e.t.Helper()
	req, _ := http.NewRequest(http.MethodPost, e.url+path, bytes.NewReader(body))
	for k, v := range header {
		req.Header.Set(k, v)
	}
	return e.do(req)
}

func (e *env) do(req *http.Request) answer {
	e.t.Helper()
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	var m map[string]any
	if err := json.Unmarshal(raw, &m); err != nil {
		e.t.Fatalf("%s %s answered %d with a body that is not a JSON object: %q", req.Method, req.URL.Path, resp.StatusCode, raw)
	}
	return answer{resp.StatusCode, m}
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func (e *env) get(path string) string {
	e.t.Helper()
	resp, err := http.Get(e.url + path)
	if err != nil {
		e.t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return string(b)
}

func grepLines(s, sub string) string {
	var out []string
	for _, l := range strings.Split(s, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}
