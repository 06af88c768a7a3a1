package server_test

import (
	"context"
	"fmt"
	"net/http"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/hook"
	"github.com/deploybot/deploybot/releases"
)

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
	if err := e.Bucket.WriteManifest(context.Background(), e.Site, &releases.Manifest{Version: "v3", Commit: "def456", PublishedAt: e.clk.Now(),
		Files: []releases.ManifestFile{}}); err != nil {
		t.Fatal(err)
	}
	if _, err := e.Bucket.Client.PutObject(context.Background(), &s3.PutObjectInput{Bucket: aws.String(e.Site.Bucket), Key: aws.String(e.Site.ManifestKey("v4")),
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
	rel, err := e.Store.Release(context.Background(), "www", "v1")
	if err != nil || rel.Commit != "abc" || rel.Message != "first" {
		t.Fatalf("the notice's commit and message were not recorded: %+v %v", rel, err)
	}
	if rel, err := e.Store.Release(context.Background(), "www", "v3"); err != nil || rel.Commit != "def456" {
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
	if _, err := e.Store.Release(context.Background(), "www", "v7"); err != nil {
		t.Fatal(err)
	}
	// A permanent refusal is not retried and is reported.
	s.Secret = []byte("wrong")
	if err := s.Send(context.Background(), hook.Notice{Site: "www", Version: "v7"}); err == nil || !strings.Contains(err.Error(), "401") {
		t.Fatalf("wrong secret: %v", err)
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
