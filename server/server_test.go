package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
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
	*testenv.Env
	t      *testing.T
	clk    *testclock.Clock
	awsClk *testclock.Clock
	srv    *server.Server
	url    string
	// shutdown stops the server started last and returns Run's error.
	shutdown func() error
}

func newEnv(t *testing.T) *env {
	t.Helper()
	e := &env{t: t, clk: testclock.Ticking(testclock.At(10, 0), time.Millisecond), awsClk: testclock.Start()}
	e.Env = testenv.New(t, testenv.Options{AWS: localaws.Options{Propagation: time.Hour, Invalidation: time.Hour, Now: e.awsClk.Now},
		Site: releases.Site{DistributionID: distID}, PollInterval: 5 * time.Millisecond, Store: true, Now: e.clk.Now})
	e.newServer()
	return e
}

// open opens the store again, as a restart does, with a new server.
func (e *env) open() {
	e.OpenStore()
	e.newServer()
}

func (e *env) newServer() {
	e.srv = &server.Server{Service: e.Service, Store: e.Store, HookSecret: []byte(secret), APIToken: token,
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
		if err := e.Bucket.PutFile(context.Background(), e.Site, v, releases.File{Path: "index.html", Body: strings.NewReader(body), Size: int64(len(body))}); err != nil {
			e.t.Fatal(err)
		}
		if err := e.Bucket.WriteManifest(context.Background(), e.Site, &releases.Manifest{Version: v, PublishedAt: e.clk.Now(),
			Files: []releases.ManifestFile{{Path: "index.html", Size: int64(len(body))}}}); err != nil {
			e.t.Fatal(err)
		}
	}
}

func (e *env) client() *server.Client { return &server.Client{URL: e.url, Token: token} }

// named gives the API named tokens (name -> roles) and the service the
// access rules that go with them, and returns a client per name.
func (e *env) named(roles map[string][]releases.Role) map[string]*server.Client {
	acc := &releases.Access{Tokens: map[string][]releases.Grant{}}
	for _, r := range releases.Roles {
		acc.Tokens[releases.LegacyTokenName] = append(acc.Tokens[releases.LegacyTokenName], releases.Grant{Role: r})
	}
	out := map[string]*server.Client{}
	for name, rs := range roles {
		secret := "secret-of-" + name + "-0123456789"
		e.srv.Tokens = append(e.srv.Tokens, server.APIToken{Name: name, Token: secret})
		for _, r := range rs {
			acc.Tokens[name] = append(acc.Tokens[name], releases.Grant{Role: r})
		}
		out[name] = &server.Client{URL: e.url, Token: secret}
	}
	e.Service.Access = acc
	return out
}

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
	cur, err := e.CDN.Current(context.Background(), e.Site)
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
