package main_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"
	kvstypes "github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore/types"

	"github.com/deploybot/deploybot/cloud"
)

// kvsWorld is a world whose site www is on strategy kvs, set up by
// kvs-setup, serving v1, with v2 published, and rolling out by extra
// (the site's rollout key).
func kvsWorld(t *testing.T, rollout string) *world {
	w := start(t, "300ms", "100ms", "--kvs", "deploybot", "--kvs-propagation", "200ms", "--pops", "3")
	v1 := w.siteDir("v1")
	w.write("v1/health.txt", "ok") // v2 has none: its health check fails
	w.must("publish", "--version", "v1", v1)
	w.must("publish", "--version", "v2", w.siteDir("v2"))
	w.must("promote", "v1")
	cfg := readFile(t, w.config)
	cfg = strings.Replace(cfg, "deploy: {poll_interval: 50ms, timeout: 1m}", "deploy: {poll_interval: 50ms, timeout: 1m, kvs_propagation: 300ms}", 1)
	cfg = strings.Replace(cfg, "    distribution_id: E2ETEST\n", fmt.Sprintf("    distribution_id: E2ETEST\n    strategy: kvs\n    kvs: {arn: %q}\n    url: %q\n    rollout: %s\n", w.kvsARN, w.edge, rollout), 1)
	w.write("deploybot.yaml", cfg)
	w.must("kvs-setup", "--apply")
	w.waitDeployed()
	w.waitPage("/", "the edge to serve v1 through the function", func(code int, body string) bool {
		return code == 200 && strings.Contains(body, "release v1<")
	})
	return w
}

// visitor asks the edge for / as one visitor (its user agent; every
// request comes from 127.0.0.1), with its cookie jar, and says which
// release answered.
type visitor struct {
	agent  string
	cookie string
}

func (v *visitor) visit(t *testing.T, edge string) string {
	t.Helper()
	req, _ := http.NewRequest(http.MethodGet, edge+"/", nil)
	req.Header.Set("User-Agent", v.agent)
	if v.cookie != "" {
		req.Header.Set("Cookie", v.cookie)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	for _, c := range resp.Cookies() {
		if c.Name == "deploybot-cohort" {
			v.cookie = c.Name + "=" + c.Value
		}
	}
	for _, r := range []string{"v1", "v2"} {
		if strings.Contains(string(body), "release "+r+"<") {
			return r
		}
	}
	t.Fatalf("the edge answered %d %q", resp.StatusCode, body)
	return ""
}

// share is how many of the visitors get v2, each visiting once.
func share(t *testing.T, edge string, vs []*visitor) (on map[*visitor]bool) {
	on = map[*visitor]bool{}
	for _, v := range vs {
		if v.visit(t, edge) == "v2" {
			on[v] = true
		}
	}
	return on
}

// shareWhen is share once ok holds for the visitors on v2 in two rounds
// in a row (a key write reaches each PoP at its own moment), or fails the
// test after ten seconds.
func shareWhen(t *testing.T, edge string, vs []*visitor, what string, ok func(on map[*visitor]bool) bool) map[*visitor]bool {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	streak := 0
	for {
		on := share(t, edge, vs)
		if ok(on) {
			if streak++; streak == 2 {
				return on
			}
		} else {
			streak = 0
		}
		if time.Now().After(deadline) {
			t.Fatalf("the edge sent %d of %d visitors to v2, not %s", len(on), len(vs), what)
		}
	}
}

// count is ok for shareWhen when the number of visitors on v2 is n.
func count(n int) func(map[*visitor]bool) bool {
	return func(on map[*visitor]bool) bool { return len(on) == n }
}

// exactly is ok for shareWhen when the visitors on v2 are exactly those
// the site's rollout key sends there at pct: the share the key says, and
// no statistical bound (the salt is random per rollout, and a bound wide
// enough for every salt would check little).
func (w *world) exactly(vs []*visitor, pct int) func(map[*visitor]bool) bool {
	return func(on map[*visitor]bool) bool {
		r, err := cloud.DecodeRollout(w.rolloutKey())
		if err != nil || r.Percent != pct {
			return false
		}
		for _, v := range vs {
			if r.Serves(cloud.BaseCohort("127.0.0.1", v.agent)) != on[v] {
				return false
			}
		}
		return true
	}
}

// A gradual promote through the binary: the edge sends about the step's
// share of visitors to v2, each keeps its release as the share grows
// (rollout advance, from another process), and rollout abort from a third
// puts every visitor back on v1, ends the promote and locks the site,
// all of it recorded.
func TestRolloutFromTheCommandLine(t *testing.T) {
	w := kvsWorld(t, "{steps: [20, 60], interval: 1h}")
	var visitors []*visitor
	for i := range 200 {
		visitors = append(visitors, &visitor{agent: fmt.Sprintf("browser-%03d", i)})
	}
	share(t, w.edge, visitors) // everyone gets a cohort cookie on v1

	output, wait := w.startAs("alice", "promote", "--gradual", "--reason", "new checkout", "v2")
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(output(), "Holding at 20%") {
		if time.Now().After(deadline) {
			t.Fatalf("the rollout did not reach its first hold:\n%s", output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	first := shareWhen(t, w.edge, visitors, "20%", w.exactly(visitors, 20))

	w.runAs("bob", "rollout", "advance")
	for !strings.Contains(output(), "Holding at 60%") {
		if time.Now().After(deadline.Add(20 * time.Second)) {
			t.Fatalf("advance did not reach the next hold:\n%s", output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	second := shareWhen(t, w.edge, visitors, "60%", w.exactly(visitors, 60))
	for v := range first {
		if !second[v] {
			t.Fatalf("visitor %s went back from v2 to v1 as the share grew", v.agent)
		}
	}

	if r := w.runAs("carol", "rollout", "abort", "--reason", "checkout errors"); r.code != 0 || !strings.Contains(r.stdout, "aborted") {
		t.Fatalf("rollout abort: %d %s %s", r.code, r.stdout, r.stderr)
	}
	r := wait()
	if r.code != 1 || !strings.Contains(r.stderr, "rollout aborted by") || !strings.Contains(r.stderr, "checkout errors") {
		t.Fatalf("the promote after the abort: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	shareWhen(t, w.edge, visitors, "none after the abort", count(0))
	st := w.status()
	if lock, _ := st["lock"].(map[string]any); lock == nil || !strings.Contains(fmt.Sprint(lock["reason"]), "aborted: checkout errors") || st["live"] != "v1" {
		t.Fatalf("status after the abort: %v", st)
	}
	got := trail(w.history())
	for _, want := range []string{"rollout-advance:ok", "rollout-abort:ok", "promote:failed"} {
		if !strings.Contains(got, want) {
			t.Fatalf("history %s lacks %s", got, want)
		}
	}
}

// A health check that fails for the candidate's visitors (v2 has no
// /health.txt) aborts the rollout at its first step, as deploybot: every
// visitor back on v1, the site locked, the promote failed, recorded.
func TestRolloutAbortedByItsHealthCheck(t *testing.T) {
	w := kvsWorld(t, "{steps: [30], interval: 1h}")
	health := fmt.Sprintf("    health: {checks: [{url: %q, contains: ok}], settle: 2s, interval: 200ms, failures: 2}\n", w.edge+"/health.txt")
	w.write("deploybot.yaml", strings.Replace(readFile(t, w.config), "    rollout: {steps: [30], interval: 1h}\n", "    rollout: {steps: [30], interval: 1h}\n"+health, 1))
	r := w.runAs("alice", "promote", "--gradual", "v2")
	if r.code != 1 || !strings.Contains(r.stderr, "rollout aborted by deploybot: health check failed at 30%") {
		t.Fatalf("a gradual promote whose candidate fails its check: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	var visitors []*visitor
	for i := range 50 {
		visitors = append(visitors, &visitor{agent: fmt.Sprintf("browser-%03d", i)})
	}
	shareWhen(t, w.edge, visitors, "none after the abort", count(0))
	st := w.status()
	if lock, _ := st["lock"].(map[string]any); lock == nil || lock["holder"] != "deploybot" || st["live"] != "v1" {
		t.Fatalf("status after the health abort: %v", st)
	}
	// The audit log says what aborted it and why.
	h := w.history()
	last := h[len(h)-1]
	for _, e := range h {
		if e.Action == "promote" && e.Result == "failed" {
			last = e
		}
	}
	if last.Result != "failed" || !strings.Contains(last.Detail, "rollout aborted by deploybot: health check failed at 30%") {
		t.Fatalf("the audit record of the aborted rollout: %+v", last)
	}
}

// A rollout whose process is killed (kill -9) in a hold is resumed by
// deploybot recover from that step: the share stays where it was, the
// hold holds again until someone advances it (from a third process), and
// the release ends live for everyone; history says interrupted, resumed,
// then ok.
func TestRolloutKilledInAHoldResumes(t *testing.T) {
	w := kvsWorld(t, "{steps: [20, 60], interval: 1h}")
	visitors := make([]*visitor, 0, 100)
	for i := range 100 {
		visitors = append(visitors, &visitor{agent: fmt.Sprintf("browser-%03d", i)})
	}
	cmd := exec.Command(w.bin, "promote", "--gradual", "v2")
	cmd.Env = w.env
	var out syncBuffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(20 * time.Second)
	for !strings.Contains(out.String(), "Holding at 20%") {
		if time.Now().After(deadline) {
			t.Fatalf("the rollout never held at 20%%:\n%s", out.String())
		}
		time.Sleep(20 * time.Millisecond)
	}
	if err := cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	_ = cmd.Wait()
	at20 := shareWhen(t, w.edge, visitors, "20% while nobody runs it", w.exactly(visitors, 20))

	output, wait := w.startAs("e2e", "recover")
	w.runAs("bob", "rollout", "advance") // ends the resumed hold at 20%
	deadline = time.Now().Add(20 * time.Second)
	for !strings.Contains(w.must("status").stdout, "hold-60") {
		if time.Now().After(deadline) {
			t.Fatalf("the resumed rollout never held at 60%%:\n%s", output())
		}
		time.Sleep(50 * time.Millisecond)
	}
	at60 := shareWhen(t, w.edge, visitors, "60%", w.exactly(visitors, 60))
	for v := range at20 {
		if !at60[v] {
			t.Fatalf("visitor %s went back to v1 across the resume", v.agent)
		}
	}
	w.runAs("bob", "rollout", "advance")
	if r := wait(); r.code != 0 {
		t.Fatalf("recover: %d\n%s\n%s", r.code, r.stdout, r.stderr)
	}
	shareWhen(t, w.edge, visitors, "everyone", count(len(visitors)))
	got := trail(w.history())
	for _, want := range []string{"promote:interrupted", "promote:resumed", "promote:ok"} {
		if !strings.Contains(got, want) {
			t.Fatalf("history %s lacks %s", got, want)
		}
	}
}

// A rollout killed (kill -9) in each of its own phases (a share being
// written, its health check on the step's visitors, the flip's key write,
// the share being cleared) is finished by deploybot recover: v2 live for
// everyone, the rollout key gone, the site free, and history saying
// interrupted, resumed, ok.
func TestRolloutKilledInEachPhase(t *testing.T) {
	// A check that passes for both releases, whose settle holds check-20
	// for three seconds.
	slowCheck := "    health: {checks: [{url: %q, contains: release}], settle: 3s, interval: 200ms, failures: 2}\n"
	for _, c := range []struct{ phase, fault, health string }{
		{"share-20", `{"latency": 3000000000, "only": "cloudfront-keyvaluestore PUT"}`, ""},
		{"check-20", `{}`, slowCheck},
		{"key-write", `{"latency": 3000000000, "only": "cloudfront-keyvaluestore PUT"}`, ""},
		{"share-end", `{"latency": 3000000000, "only": "cloudfront-keyvaluestore DELETE"}`, ""},
	} {
		t.Run(c.phase, func(t *testing.T) {
			w := kvsWorld(t, "{steps: [20], interval: 0s}")
			if c.health != "" {
				w.write("deploybot.yaml", strings.Replace(readFile(t, w.config), "    rollout: {steps: [20], interval: 0s}\n",
					"    rollout: {steps: [20], interval: 0s}\n"+fmt.Sprintf(c.health, w.edge+"/"), 1))
			}
			w.fault(c.fault)
			cmd := exec.Command(w.bin, "promote", "--gradual", "v2")
			cmd.Env = w.env
			var out syncBuffer
			cmd.Stdout, cmd.Stderr = &out, &out
			if err := cmd.Start(); err != nil {
				t.Fatal(err)
			}
			w.waitDeployPhase(c.phase, &out)
			if err := cmd.Process.Kill(); err != nil {
				t.Fatal(err)
			}
			_ = cmd.Wait()
			w.fault(`{}`)

			w.must("recover")
			st := w.status()
			if st["live"] != "v2" || st["lock"] != nil || st["deploy"] != nil {
				t.Fatalf("after recover: %v", st)
			}
			if r := w.rolloutKey(); r != "" {
				t.Fatalf("the rollout key still holds %q", r)
			}
			got := trail(w.history())
			for _, want := range []string{"promote:interrupted", "promote:resumed", "promote:ok"} {
				if !strings.Contains(got, want) {
					t.Fatalf("history %s lacks %s", got, want)
				}
			}
		})
	}
}

// rolloutKey is what the site's rollout key holds, "" when there is none.
func (w *world) rolloutKey() string {
	w.t.Helper()
	ctx := context.Background()
	c, err := cloud.NewKVSClient(ctx, cloud.Settings{Region: "us-east-1", Endpoint: w.api, Credentials: cloud.StaticCredentials("e2e-reader", "secret")})
	if err != nil {
		w.t.Fatal(err)
	}
	out, err := c.GetKey(ctx, &cloudfrontkeyvaluestore.GetKeyInput{KvsARN: aws.String(w.kvsARN), Key: aws.String("www" + cloud.RolloutKeySuffix)})
	var nf *kvstypes.ResourceNotFoundException
	if errors.As(err, &nf) {
		return ""
	}
	if err != nil {
		w.t.Fatal(err)
	}
	return aws.ToString(out.Value)
}
