package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfront"
	cftypes "github.com/aws/aws-sdk-go-v2/service/cloudfront/types"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/hook"
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

func signed(body string, ts time.Time) map[string]string {
	return map[string]string{
		hook.HeaderTimestamp: strconv.FormatInt(ts.Unix(), 10),
		hook.HeaderSignature: hook.Sign([]byte(secret), ts.Unix(), []byte(body)),
	}
}

func TestHook(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	// v3's manifest names its commit; v1's does not (published without
	// --commit), so the notice supplies it.
	if err := e.bucket.WriteManifest(context.Background(), e.site, &releases.Manifest{Version: "v3", Commit: "def456", PublishedAt: e.clk.Now(),
		Files: []releases.ManifestFile{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.bucket.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(e.site.Bucket), Key: aws.String(e.site.ManifestKey("v4")),
		Body: strings.NewReader(`{"version":"v4","files":[{"path":"../../etc/passwd","size":1}]}`)}); err != nil {
		t.Fatal(err)
	}
	e.start()
	now := e.clk.Now()
	valid := `{"site":"www","version":"v1","commit":"abc","message":"first"}`
	broken := `{"site":"www","version":"v4"}`
	contradicting := `{"site":"www","version":"v3","commit":"abc"}`
	dup := `{"site":"www","version":"v1","version":"v10"}`
	upper := `{"SITE":"www","version":"v1"}`
	agreeing := `{"site":"www","version":"v3","commit":"def456"}`
	validHeaders := signed(valid, now)
	big := `{"site":"www","version":"v1","message":"` + strings.Repeat("x", hook.MaxBody) + `"}`
	cases := []struct {
		name   string
		body   string
		header map[string]string
		status int
		want   string
	}{
		{"valid", valid, validHeaders, 202, "recorded"},
		{"replay", valid, validHeaders, 401, "replayed"},
		{"duplicate, freshly signed", valid, signed(valid, now.Add(time.Second)), 202, "already recorded"},
		{"bad signature", valid, map[string]string{hook.HeaderTimestamp: strconv.FormatInt(now.Unix(), 10), hook.HeaderSignature: "v1=00"}, 401, "signature"},
		{"signed with another secret", valid, map[string]string{hook.HeaderTimestamp: strconv.FormatInt(now.Unix(), 10), hook.HeaderSignature: hook.Sign([]byte("x"), now.Unix(), []byte(valid))}, 401, "signature"},
		{"stale", valid, signed(valid, now.Add(-6*time.Minute)), 401, "timestamp"},
		{"future", valid, signed(valid, now.Add(6*time.Minute)), 401, "timestamp"},
		{"no headers", valid, nil, 401, "timestamp"},
		{"too large", big, signed(big, now), 413, "64 KiB"},
		{"bad JSON", `{"site":`, signed(`{"site":`, now), 400, "JSON"},
		{"unknown field", `{"site":"www","version":"v1","x":1}`, signed(`{"site":"www","version":"v1","x":1}`, now), 400, "unknown field"},
		{"malformed version", `{"site":"www","version":"../v1"}`, signed(`{"site":"www","version":"../v1"}`, now), 400, "invalid version"},
		{"unknown site", `{"site":"nope","version":"v1"}`, signed(`{"site":"nope","version":"v1"}`, now), 404, "unknown site"},
		{"no manifest", `{"site":"www","version":"v2"}`, signed(`{"site":"www","version":"v2"}`, now), 422, "no manifest"},
		{"commit contradicts the manifest", contradicting, signed(contradicting, now), 409, "its manifest says def456"},
		{"replay with the signature padded (NBSP)", valid, map[string]string{hook.HeaderTimestamp: validHeaders[hook.HeaderTimestamp], hook.HeaderSignature: validHeaders[hook.HeaderSignature] + "\u00a0"}, 401, "signature"},
		{"replay with the timestamp zero-padded", valid, map[string]string{hook.HeaderTimestamp: "0" + validHeaders[hook.HeaderTimestamp], hook.HeaderSignature: validHeaders[hook.HeaderSignature]}, 401, "replayed"},
		{"duplicate key", dup, signed(dup, now), 400, "given twice"},
		{"malformed manifest", broken, signed(broken, now), 422, "manifest of v4"},
		{"key in another case", upper, signed(upper, now), 400, "unknown field"},
		{"commit agrees with the manifest", agreeing, signed(agreeing, now), 202, "recorded"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a := e.post("/hooks/release", []byte(c.body), c.header)
			text := fmt.Sprint(a.body)
			if a.status != c.status || !strings.Contains(text, c.want) {
				t.Fatalf("answer %d %v, want %d mentioning %q", a.status, a.body, c.status, c.want)
			}
			if a.status >= 400 && a.body["error"] == nil {
				t.Fatalf("error answer without an error message: %v", a.body)
			}
		})
	}
	rel, err := e.db.Release(context.Background(), "www", "v1")
	if err != nil || rel.Commit != "abc" || rel.Message != "first" {
		t.Fatalf("the notice's commit and message were not recorded: %+v %v", rel, err)
	}
	if rel, err := e.db.Release(context.Background(), "www", "v3"); err != nil || rel.Commit != "def456" {
		t.Fatalf("v3 after a contradicting notice: %+v %v", rel, err)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/hooks/release", nil)
	if a := e.do(req); a.status != 405 {
		t.Fatalf("GET: %d", a.status)
	}
}

func TestHookDisabledWithoutSecret(t *testing.T) {
	e := newEnv(t)
	e.srv.HookSecret = nil
	e.start()
	body := `{"site":"www","version":"v1"}`
	if a := e.post("/hooks/release", []byte(body), signed(body, e.clk.Now())); a.status != 401 {
		t.Fatalf("hook without a secret: %d %v", a.status, a.body)
	}
}

func TestPublishNoticeReachesTheHook(t *testing.T) {
	e := newEnv(t)
	e.publish("v7")
	e.start()
	s := &hook.Sender{URL: e.url + "/hooks/release", Secret: []byte(secret), Now: e.clk.Now}
	if err := s.Send(context.Background(), hook.Notice{Site: "www", Version: "v7"}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.db.Release(context.Background(), "www", "v7"); err != nil {
		t.Fatal(err)
	}
	// A permanent refusal is not retried and is reported.
	s.Secret = []byte("wrong")
	if err := s.Send(context.Background(), hook.Notice{Site: "www", Version: "v7"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
	}
}

func TestAPIAuth(t *testing.T) {
	e := newEnv(t)
	e.start()
	for _, c := range []struct {
		name, header string
		status       int
	}{
		{"missing", "", 401},
		{"wrong", "Bearer nope", 401},
		{"not bearer", "Basic " + token, 401},
		{"right", "Bearer " + token, 200},
	} {
		req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/sites/www/status", nil)
		if c.header != "" {
			req.Header.Set("Authorization", c.header)
		}
		if a := e.do(req); a.status != c.status {
			t.Errorf("%s: %d %v, want %d", c.name, a.status, a.body, c.status)
		}
	}
	// Every route asks for the token, before it reads a body or acts.
	for _, route := range []string{
		"GET /api/v1/sites", "GET /api/v1/sites/www/releases", "GET /api/v1/sites/www/status",
		"POST /api/v1/sites/www/promote", "POST /api/v1/sites/www/rollback", "GET /api/v1/backup",
		"POST /api/v1/sites/www/prune", "POST /api/v1/sites/www/pins", "POST /api/v1/sites/www/previews",
		"PUT /api/v1/sites/www/lock", "DELETE /api/v1/sites/www/lock", "DELETE /api/v1/sites/www/pins/v1",
	} {
		method, path, _ := strings.Cut(route, " ")
		req, _ := http.NewRequest(method, e.url+path, strings.NewReader(`{"version":"v1"}`))
		req.Header.Set("Authorization", "Bearer nope")
		if a := e.do(req); a.status != 401 || a.body["code"] != releases.EUNAUTHORIZED {
			t.Errorf("%s with a wrong token: %d %v", route, a.status, a.body)
		}
	}
	e.srv.APIToken = ""
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/sites", nil)
	req.Header.Set("Authorization", "Bearer ")
	if a := e.do(req); a.status != 401 {
		t.Fatalf("API without a configured token answered %d", a.status)
	}
}

func TestAPIRefusesBadBodies(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	for _, c := range []struct{ name, method, path, body, want string }{
		{"truncated", http.MethodPost, "/api/v1/sites/www/pins", `{"version":`, "bad JSON body"},
		{"unknown field", http.MethodPut, "/api/v1/sites/www/lock", `{"reason":"x","who":"me"}`, "unknown field"},
		{"not an object", http.MethodPost, "/api/v1/sites/www/prune", `[]`, "bad JSON body"},
		{"deploy", http.MethodPost, "/api/v1/sites/www/promote", `{"version":"v1","force":true}`, "unknown field"},
	} {
		req, _ := http.NewRequest(c.method, e.url+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+token)
		a := e.do(req)
		if msg, _ := a.body["error"].(string); a.status != 400 || a.body["code"] != releases.EINVALID || !strings.Contains(msg, c.want) {
			t.Errorf("%s: %d %v, want 400 %s naming %q", c.name, a.status, a.body, releases.EINVALID, c.want)
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/sites/www/status", nil)
	req.Header.Set("Authorization", "Bearer "+token)
	if a := e.do(req); a.status != 200 || a.body["lock"] != nil {
		t.Fatalf("after a refused lock request: %d %v", a.status, a.body)
	}
	resp, err := http.Get(e.url + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	raw, _ := io.ReadAll(resp.Body)
	for _, want := range []string{`deploybot_api_requests_total{route="pin",status="400"} 1`, `deploybot_api_requests_total{route="lock",status="400"} 1`} {
		if !strings.Contains(string(raw), want) {
			t.Errorf("/metrics lacks %s", want)
		}
	}
}

func TestAPIPromoteStreamsAndRefusesWhileBusy(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	e.start()
	c := e.client()
	ctx := context.Background()
	var mu sync.Mutex
	var phases []string
	done := make(chan error, 1)
	go func() {
		_, err := c.Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice", Reason: "launch"}, func(ev releases.Event) {
			mu.Lock()
			phases = append(phases, string(ev.Type)+":"+string(ev.Phase))
			mu.Unlock()
		})
		done <- err
	}()
	e.eventually("the deploy to hold the lock", func() bool { l, _ := e.db.Lock(ctx, "www"); return l != nil })
	_, err := c.Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v2", Actor: "bob"}, nil)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "alice") {
		t.Fatalf("second deploy: %v", err)
	}
	e.flow()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	mu.Lock()
	got := strings.Join(phases, " ")
	mu.Unlock()
	for _, want := range []string{"deploy_started:", "phase_started:update", "phase_finished:invalidate-wait", "deploy_finished:"} {
		if !strings.Contains(got, want) {
			t.Fatalf("events %q lack %q", got, want)
		}
	}
	st, err := c.Status(ctx, "www")
	if err != nil || st.Live == nil || *st.Live != "v1" {
		t.Fatalf("status %+v %v", st, err)
	}
	vs, err := c.Versions(ctx, "www")
	if err != nil || len(vs) != 2 {
		t.Fatalf("versions %+v %v", vs, err)
	}
	out, err := c.Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1"}, nil)
	if err != nil || !out.AlreadyLive {
		t.Fatalf("promote of the live release: %+v %v", out, err)
	}
	if _, err := c.Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "nope!"}, nil); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("malformed version: %v", err)
	}
	// An unknown site is a mistake in the request, as on the command line.
	if _, err := c.Deploy(ctx, "nope", releases.KindPromote, server.DeployRequest{Version: "v1"}, nil); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("unknown site: %v", err)
	}
}

// interrupted builds the store and AWS state of a deploy from v1 to v2 that
// stopped in phase, with the distribution flipped or not, and an
// invalidation already created or not.
func (e *env) interrupted(phase releases.Phase, flipped, invalidated bool) releases.Deploy {
	e.t.Helper()
	ctx := context.Background()
	e.publish("v1", "v2")
	// v1 live, deployed.
	for _, st := range e.cdn.Plan(e.site, releases.Current{}, "v1", "setup")[:1] {
		if err := st.Run(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	e.settle()
	if err := e.db.SetLive(ctx, "www", releases.Live{Version: "v1"}); err != nil {
		e.t.Fatal(err)
	}
	d := releases.Deploy{ID: "20261128T120000Z-crash" + string(phase), Site: "www", Kind: releases.KindPromote, Actor: "alice",
		From: "v1", FromPath: "/www/v1", To: "v2", Strategy: releases.DefaultStrategy, Phase: phase, StartedAt: e.clk.Now()}
	if phase != releases.PhasePending {
		d.Phases = []releases.PhaseRecord{{Phase: phase, Started: e.clk.Now()}}
	}
	if err := e.db.StartDeploy(ctx, d, releases.Lock{Site: "www", Holder: "alice", DeployID: d.ID, Since: e.clk.Now()}); err != nil {
		e.t.Fatal(err)
	}
	if flipped {
		if err := e.cdn.Plan(e.site, releases.Current{Version: "v1", Path: "/www/v1"}, "v2", d.ID)[0].Run(ctx); err != nil {
			e.t.Fatal(err)
		}
	}
	if invalidated {
		if _, err := e.cf.CreateInvalidation(ctx, &cloudfront.CreateInvalidationInput{DistributionId: aws.String(distID),
			InvalidationBatch: &cftypes.InvalidationBatch{CallerReference: aws.String(d.ID), Paths: &cftypes.Paths{Quantity: aws.Int32(1), Items: []string{"/*"}}}}); err != nil {
			e.t.Fatal(err)
		}
	}
	return d
}

func TestRecoveryFromEveryPhase(t *testing.T) {
	cases := []struct {
		name        string
		phase       releases.Phase
		flipped     bool
		invalidated bool
		want        releases.Phase
		live        string
	}{
		{"pending, nothing done", releases.PhasePending, false, false, releases.PhaseFailed, "v1"},
		{"update, not applied", cloud.PhaseUpdate, false, false, releases.PhaseFailed, "v1"},
		{"update, applied", cloud.PhaseUpdate, true, false, releases.PhaseDone, "v2"},
		{"propagate", cloud.PhasePropagate, true, false, releases.PhaseDone, "v2"},
		{"propagate, flipped back by hand", cloud.PhasePropagate, false, false, releases.PhaseFailed, "v1"},
		{"invalidate, none made", cloud.PhaseInvalidate, true, false, releases.PhaseDone, "v2"},
		{"invalidate, made", cloud.PhaseInvalidate, true, true, releases.PhaseDone, "v2"},
		{"invalidate-wait", cloud.PhaseInvalidateWait, true, true, releases.PhaseDone, "v2"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			e := newEnv(t)
			d := e.interrupted(c.phase, c.flipped, c.invalidated)
			ctx := context.Background()
			e.start()
			if c.want == releases.PhaseDone {
				// AWS is held InProgress: the resumed deploy must wait.
				time.Sleep(30 * time.Millisecond)
				if got, _ := e.db.Deploy(ctx, "www", d.ID); got.Phase.Final() {
					t.Fatalf("deploy finished while AWS was still in progress: %+v", got)
				}
				e.flow()
			}
			e.eventually("the deploy to reach a final phase", func() bool {
				got, _ := e.db.Deploy(ctx, "www", d.ID)
				return got.Phase.Final()
			})
			got, _ := e.db.Deploy(ctx, "www", d.ID)
			if got.Phase != c.want {
				t.Fatalf("deploy ended %s (%s), want %s", got.Phase, got.Error, c.want)
			}
			if l, _ := e.db.Lock(ctx, "www"); l != nil {
				t.Fatalf("lock still held: %+v", l)
			}
			live, _, _ := e.db.Live(ctx, "www")
			if live.Version != c.live || e.originPath() != "/www/"+c.live {
				t.Fatalf("live pointer %q, origin path %q, want %s", live.Version, e.originPath(), c.live)
			}
			if c.want == releases.PhaseDone {
				out, err := e.cf.ListInvalidations(ctx, &cloudfront.ListInvalidationsInput{DistributionId: aws.String(distID)})
				if err != nil || len(out.InvalidationList.Items) != 1 {
					t.Fatalf("want exactly one invalidation (the caller reference makes it idempotent), got %+v %v", out, err)
				}
			}
		})
	}
}

func TestReconcileFindsUnnotifiedReleaseAndHandFlip(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	ctx := context.Background()
	e.start()
	// The first reconcile must be over (not just its listing) before the
	// hand flip, or it is that reconcile which sees the drift.
	e.eventually("the first reconcile", func() bool {
		resp, err := http.Get(e.url + "/metrics")
		if err != nil {
			return false
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		return bytes.Contains(raw, []byte(`deploybot_reconcile_runs_total{result="ok",site="www"} 1`))
	})
	// Someone flips the origin path in the console.
	if err := e.cdn.Plan(e.site, releases.Current{}, "v2", "by-hand")[0].Run(ctx); err != nil {
		t.Fatal(err)
	}
	e.publish("v3")
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	e.srv = &server.Server{Service: e.svc, Store: e.db, HookSecret: []byte(secret), APIToken: token, ReconcileInterval: 20 * time.Millisecond}
	e.start()
	// The store changes inside Reconcile and the counters move after it
	// returns, so wait for the counters, then check the store.
	want := []string{`deploybot_drift_total{site="www"} 1`, `deploybot_releases_recorded_total{site="www",source="reconcile"} 1`, `deploybot_reconcile_runs_total{result="ok",site="www"}`}
	var raw []byte
	e.eventually("the reconcile that finds v3 and the hand flip to be counted", func() bool {
		resp, err := http.Get(e.url + "/metrics")
		if err != nil {
			return false
		}
		raw, _ = io.ReadAll(resp.Body)
		resp.Body.Close()
		for _, w := range want {
			if !bytes.Contains(raw, []byte(w)) {
				return false
			}
		}
		return true
	})
	if _, err := e.db.Release(ctx, "www", "v3"); err != nil {
		t.Fatalf("v3 not recorded: %v", err)
	}
	if live, _, _ := e.db.Live(ctx, "www"); live.Version != "v2" {
		t.Fatalf("live is %q, want the hand-flipped v2", live.Version)
	}
}

func TestGracefulShutdownMidFlipResumesOnRestart(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	ctx := context.Background()
	out := make(chan error, 1)
	go func() {
		_, err := e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice"}, nil)
		out <- err
	}()
	e.eventually("the deploy to wait for propagation", func() bool {
		ds, _ := e.db.Deploys(ctx, "www", 1)
		return len(ds) == 1 && ds[0].Phase == cloud.PhasePropagate
	})
	began := time.Now()
	if err := e.shutdown(); err != nil {
		t.Fatal(err)
	}
	if took := time.Since(began); took > 5*time.Second {
		t.Fatalf("shutdown took %s", took)
	}
	if err := <-out; err == nil || !strings.Contains(err.Error(), "resumes") {
		t.Fatalf("client saw %v", err)
	}
	ds, _ := e.db.Deploys(ctx, "www", 1)
	if ds[0].Phase != cloud.PhasePropagate {
		t.Fatalf("after shutdown the deploy is in %s, want propagate (resumable)", ds[0].Phase)
	}
	if l, _ := e.db.Lock(ctx, "www"); l == nil {
		t.Fatal("the interrupted deploy lost its lock")
	}
	// Restart (a new process would reopen the file; the record is the same).
	e.db.Close()
	e.open()
	e.start()
	e.flow()
	e.eventually("the resumed deploy to finish", func() bool {
		d, _ := e.db.Deploy(ctx, "www", ds[0].ID)
		return d.Phase == releases.PhaseDone
	})
	if l, _ := e.db.Lock(ctx, "www"); l != nil {
		t.Fatalf("lock after the resumed deploy: %+v", l)
	}
}

func TestReadiness(t *testing.T) {
	e := newEnv(t)
	e.srv.Ready = []server.ReadyCheck{{Name: "slack", Check: func(context.Context) error { return errors.New("not connected to xoxb-secret-workspace") }}}
	e.start()
	getWith := func(path, auth string) answer {
		req, _ := http.NewRequest(http.MethodGet, e.url+path, nil)
		if auth != "" {
			req.Header.Set("Authorization", "Bearer "+auth)
		}
		return e.do(req)
	}
	get := func() answer { return getWith("/readyz", "") }
	e.eventually("the first reconcile", func() bool {
		a := get()
		checks, _ := a.body["checks"].(map[string]any)
		return checks["aws"] == "ok"
	})
	// Anyone sees which check failed, not why: the reasons name
	// buckets, paths and workspaces.
	if a := get(); a.status != 503 || a.body["checks"].(map[string]any)["slack"] != "failed" || strings.Contains(fmt.Sprint(a.body), "not connected") {
		t.Fatalf("readyz with Slack down: %d %v", a.status, a.body)
	}
	if a := getWith("/readyz?verbose", ""); a.status != 401 {
		t.Fatalf("readyz?verbose without the token: %d %v", a.status, a.body)
	}
	if a := getWith("/readyz?verbose", token); a.status != 503 || !strings.Contains(fmt.Sprint(a.body), "not connected to xoxb-secret-workspace") {
		t.Fatalf("readyz?verbose with the token: %d %v", a.status, a.body)
	}
	e.srv.Ready = nil
	if a := get(); a.status != 200 {
		t.Fatalf("readyz: %d %v", a.status, a.body)
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/healthz", nil)
	if a := e.do(req); a.status != 200 {
		t.Fatalf("healthz %d", a.status)
	}
}

func TestBackupRestoresEverything(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	e.start()
	ctx := context.Background()
	c := e.client()
	e.flow()
	if _, err := c.Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	held := releases.Deploy{ID: "zz-running", Site: "www", To: "v2", Phase: cloud.PhasePropagate}
	if err := e.db.StartDeploy(ctx, held, releases.Lock{Site: "www", Holder: "bob", DeployID: held.ID}); err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	if _, err := c.Backup(ctx, &buf); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(t.TempDir(), "restored.db")
	if err := writeFile(path, buf.Bytes()); err != nil {
		t.Fatal(err)
	}
	restored, err := store.Open(path, store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	defer restored.Close()
	rs, _ := restored.Releases(ctx, "www")
	ds, _ := restored.Deploys(ctx, "www", 0)
	lock, _ := restored.Lock(ctx, "www")
	live, _, _ := restored.Live(ctx, "www")
	if len(rs) != 2 || len(ds) != 2 || lock == nil || lock.Holder != "bob" || live.Version != "v1" {
		t.Fatalf("restored: %d releases, %d deploys, lock %+v, live %+v", len(rs), len(ds), lock, live)
	}
}

// Every route asked with a method it does not take answers 405 in JSON
// with Allow; an unknown path answers 404 in JSON. The walk takes the
// routes from the server, so a new route cannot be left out.
func TestEveryRouteRefusesWrongMethodsInJSON(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	routes := e.srv.Routes()
	e.start()
	methods := map[string][]string{}
	for _, p := range routes {
		m, path, ok := strings.Cut(p, " ")
		if !ok {
			t.Fatalf("route %q has no method", p)
		}
		path = strings.NewReplacer("{site}", "www", "{version}", "v1").Replace(path)
		methods[path] = append(methods[path], m)
	}
	if len(methods) < 10 {
		t.Fatalf("only %d paths: %v", len(methods), routes)
	}
	for path, allowed := range methods {
		for _, m := range []string{http.MethodGet, http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch} {
			if slices.Contains(allowed, m) || m == http.MethodHead && slices.Contains(allowed, http.MethodGet) {
				continue
			}
			req, _ := http.NewRequest(m, e.url+path, strings.NewReader("{}"))
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			raw, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			var body map[string]any
			if resp.StatusCode != 405 || !strings.HasPrefix(resp.Header.Get("Content-Type"), "application/json") || json.Unmarshal(raw, &body) != nil ||
				body["error"] == nil || body["code"] != releases.EINVALID {
				t.Errorf("%s %s: %d %s %q, want 405 JSON {error, code}", m, path, resp.StatusCode, resp.Header.Get("Content-Type"), raw)
				continue
			}
			for _, a := range allowed {
				if !strings.Contains(resp.Header.Get("Allow"), a) {
					t.Errorf("%s %s: Allow %q lacks %s", m, path, resp.Header.Get("Allow"), a)
				}
			}
		}
	}
	req, _ := http.NewRequest(http.MethodGet, e.url+"/api/v1/nothing/"+strings.Repeat("x", 5000), nil)
	a := e.do(req)
	if msg, _ := a.body["error"].(string); a.status != 404 || a.body["code"] != releases.ENOTFOUND || len(msg) > 300 {
		t.Fatalf("unknown route: %d %v", a.status, a.body)
	}
}

// API answers are snake_case throughout, the already-live promote too.
func TestAPIAnswersAreSnakeCase(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	e.flow()
	ctx := context.Background()
	if _, err := e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice"}, nil); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct{ method, path, body string }{
		{"POST", "/api/v1/sites/www/promote", `{"version":"v1","actor":"alice"}`},
		{"GET", "/api/v1/sites/www/status", ""},
		{"GET", "/api/v1/sites/www/releases", ""},
		{"GET", "/api/v1/sites", ""},
		{"POST", "/api/v1/sites/www/pins", `{"version":"v1","reason":"keep"}`},
		{"POST", "/api/v1/sites/www/prune", `{"dry_run":true}`},
		{"PUT", "/api/v1/sites/www/lock", `{"reason":"freeze"}`},
		{"DELETE", "/api/v1/sites/www/lock", ""},
	} {
		req, _ := http.NewRequest(c.method, e.url+c.path, strings.NewReader(c.body))
		req.Header.Set("Authorization", "Bearer "+token)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		raw, _ := io.ReadAll(resp.Body)
		resp.Body.Close()
		if resp.StatusCode != 200 {
			t.Fatalf("%s %s: %d %s", c.method, c.path, resp.StatusCode, raw)
		}
		var v any
		if err := json.Unmarshal(raw, &v); err != nil {
			t.Fatalf("%s %s: %v: %s", c.method, c.path, err, raw)
		}
		if k := nonSnakeKey(v); k != "" {
			t.Errorf("%s %s: key %q is not snake_case: %s", c.method, c.path, k, raw)
		}
		if c.path == "/api/v1/sites/www/promote" && !strings.Contains(string(raw), `"already_live":true`) {
			t.Errorf("already-live promote: %s", raw)
		}
	}
}

var snake = regexp.MustCompile(`^[a-z][a-z0-9_]*$`)

func nonSnakeKey(v any) string {
	switch x := v.(type) {
	case map[string]any:
		for k, child := range x {
			if !snake.MatchString(k) {
				return k
			}
			if bad := nonSnakeKey(child); bad != "" {
				return bad
			}
		}
	case []any:
		for _, child := range x {
			if bad := nonSnakeKey(child); bad != "" {
				return bad
			}
		}
	}
	return ""
}

// Whoever the API's caller says it acts for is recorded as api:<name> (in
// the deploy here, the pin with no name as "api"; the lock and the audit in
// TestLockAndUnlockThroughTheAPI); the name loses control characters and is
// cut to 64 bytes.
func TestAPIActorIsVouchedForByTheToken(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	e.flow()
	ctx := context.Background()
	out, err := e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: "alice\n<!channel>\x1b[31m" + strings.Repeat("x", 100)}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := out.Deploy.Actor; !strings.HasPrefix(a, "api:alice<!channel>[31m") || len(a) != len("api:")+64 || strings.ContainsAny(a, "\n\x1b") {
		t.Fatalf("recorded actor %q", a)
	}
	if _, err := e.client().PinRelease(ctx, "www", "v1", "", "keep"); err != nil {
		t.Fatal(err)
	}
	vs, _ := e.svc.Versions(ctx, "www")
	if vs[0].Pin == nil || vs[0].Pin.By != "api" {
		t.Fatalf("a pin with no actor: %+v", vs[0].Pin)
	}
}

// One captured notice sent again in many forms (padded headers, a
// zero-padded timestamp, upper-case hex, the body with keys reordered or
// doubled): exactly the first is accepted, and the replay cache holds one
// entry. DEPLOYBOT_HOOK_FLOOD sets how many forms are tried (make
// reliability sends thousands).
func TestHookReplayFlood(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	n := 200
	if v, err := strconv.Atoi(os.Getenv("DEPLOYBOT_HOOK_FLOOD")); err == nil && v > 0 {
		n = v
	}
	body := `{"site":"www","version":"v1"}`
	h := signed(body, e.clk.Now())
	if a := e.post("/hooks/release", []byte(body), h); a.status != 202 {
		t.Fatalf("the notice itself: %d %v", a.status, a.body)
	}
	pads := []string{" ", "\t", "\u00a0", "\u2003", "\u3000", "\ufeff"}
	accepted := 0
	for i := range n {
		ts, sig, b := h[hook.HeaderTimestamp], h[hook.HeaderSignature], body
		pad := strings.Repeat(pads[i%len(pads)], 1+i%50)
		switch i % 5 {
		case 0:
			sig += pad
		case 1:
			ts = pad + ts
		case 2:
			ts = strings.Repeat("0", 1+i%5) + ts
		case 3:
			sig = "v1=" + strings.ToUpper(sig[3:])
		case 4:
			b = `{"version":"v1","site":"www"` + strings.Repeat(`,"site":"www"`, i%3) + `}`
		}
		if a := e.post("/hooks/release", []byte(b), map[string]string{hook.HeaderTimestamp: ts, hook.HeaderSignature: sig}); a.status == 202 {
			accepted++
		}
	}
	if accepted != 0 {
		t.Fatalf("%d of %d replays accepted", accepted, n)
	}
	metrics := e.get("/metrics")
	if !strings.Contains(metrics, "deploybot_hook_replay_cache_entries 1\n") {
		t.Fatalf("replay cache after the flood:\n%s", grepLines(metrics, "replay"))
	}
	t.Logf("hook replay flood: %d forms of one captured notice, 0 accepted, replay cache 1 entry", n)
}

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

// The chat hears when what is live changes outside serve (a command-line
// deploy, a hand flip) at the next reconcile, and once at start, so the
// release notices are kept true.
func TestReconcileTellsTheChatWhenLiveChanges(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	rec := &recorder{}
	e.srv.Notifier = rec
	e.srv.ReconcileInterval = 20 * time.Millisecond
	e.start()
	e.eventually("the first reconcile to tell", func() bool { return rec.liveChanges() == 1 })
	if err := e.cdn.Plan(e.site, releases.Current{}, "v2", "by-hand")[0].Run(context.Background()); err != nil {
		t.Fatal(err)
	}
	e.eventually("the reconcile after the flip to tell", func() bool { return rec.liveChanges() == 2 })
}
