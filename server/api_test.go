package server_test

import (
	"context"
	"encoding/json"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

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
		"PUT /api/v1/sites/www/freeze", "DELETE /api/v1/sites/www/freeze",
		"GET /api/v1/sites/www/approvals", "GET /api/v1/sites/www/approvals/x", "POST /api/v1/sites/www/approvals/x/approve",
		"POST /api/v1/sites/www/approvals/x/reject", "POST /api/v1/sites/www/sync",
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
	cs := e.named(map[string][]releases.Role{"alice": {releases.RoleDeployer}, "bob": {releases.RoleDeployer}})
	c := cs["alice"]
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
	e.eventually("the deploy to hold the lock", func() bool { l, _ := e.Store.Lock(ctx, "www"); return l != nil })
	_, err := cs["bob"].Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v2", Actor: "bob"}, nil)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "by token:alice") {
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
		{"GET", "/api/v1/sites/www/diff?from=v1&to=v1", ""},
		{"GET", "/api/v1/sites", ""},
		{"POST", "/api/v1/sites/www/pins", `{"version":"v1","reason":"keep"}`},
		{"POST", "/api/v1/sites/www/prune", `{"dry_run":true}`},
		{"PUT", "/api/v1/sites/www/lock", `{"reason":"freeze"}`},
		{"DELETE", "/api/v1/sites/www/lock", ""},
		{"PUT", "/api/v1/sites/all/freeze", `{"until":"2h","reason":"launch"}`},
		{"DELETE", "/api/v1/sites/all/freeze", ""},
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

// An API caller is its token's name (token:NAME) in every record; what it
// says it acts for is only a label beside it in the audit log, without
// control characters and cut to 64 bytes.
func TestAPIActorIsVouchedForByTheToken(t *testing.T) {
	e := newEnv(t)
	e.publish("v1")
	e.start()
	e.flow()
	ctx := context.Background()
	typed := "alice\n<!channel>\x1b[31m" + strings.Repeat("x", 100)
	out, err := e.client().Deploy(ctx, "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: typed}, nil)
	if err != nil {
		t.Fatal(err)
	}
	if a := out.Deploy.Actor; a != "token:api" {
		t.Fatalf("recorded actor %q", a)
	}
	audit, _ := e.Store.Audit(ctx, "www", 1)
	if l := audit[0].Label; audit[0].Actor != "token:api" || !strings.HasPrefix(l, "alice<!channel>[31m") || len(l) != 64 || strings.ContainsAny(l, "\n\x1b") {
		t.Fatalf("audit %+v", audit[0])
	}
	if _, err := e.client().PinRelease(ctx, "www", "v1", "", "keep"); err != nil {
		t.Fatal(err)
	}
	vs, _ := e.Service.Versions(ctx, "www")
	if vs[0].Pin == nil || vs[0].Pin.By != "token:api" {
		t.Fatalf("a pin: %+v", vs[0].Pin)
	}
}

// The releases route answers from the store; POST .../sync lists the
// bucket and records what it finds.
func TestAPIVersionsFromTheStoreAndSync(t *testing.T) {
	e := newEnv(t)
	e.start()
	ctx := context.Background()
	c := e.client()
	// The reconcile at start has run (it syncs); the next is an hour off.
	e.eventually("the first reconcile", func() bool { at, _ := e.Store.SyncedAt(ctx, "www"); return !at.IsZero() })
	e.publish("v1")
	if vs, err := c.Versions(ctx, "www"); err != nil || len(vs) != 0 {
		t.Fatalf("before a sync: %v %v", vs, err)
	}
	added, err := c.Sync(ctx, "www")
	if err != nil || len(added) != 1 || added[0].Version != "v1" {
		t.Fatalf("sync: %+v %v", added, err)
	}
	if vs, err := c.Versions(ctx, "www"); err != nil || len(vs) != 1 {
		t.Fatalf("after a sync: %v %v", vs, err)
	}
}

// A diff through the API answers as `diff --json`; a release that is not
// there is 404, a missing name 400.
func TestAPIDiff(t *testing.T) {
	e := newEnv(t)
	e.publish("v1", "v2")
	e.start()
	ctx := context.Background()
	c := e.client()
	d, err := c.Diff(ctx, "www", "v1", "v2")
	if err != nil || d.Site != "www" || d.From != "v1" || d.To != "v2" || !d.Empty() || d.Unchanged != 1 {
		t.Fatalf("diff: %+v %v", d, err)
	}
	if _, err := c.Diff(ctx, "www", "v1", "v9"); releases.ErrorCode(err) != releases.ENOTFOUND {
		t.Fatalf("unknown release: %v", err)
	}
	if _, err := c.Diff(ctx, "www", "v1", ""); releases.ErrorCode(err) != releases.EINVALID {
		t.Fatalf("no release named: %v", err)
	}
}
