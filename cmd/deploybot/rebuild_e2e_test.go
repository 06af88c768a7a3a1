package main_test

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	"github.com/deploybot/deploybot/cloud"
)

// Lose the volume, lose nothing: deploys, a lock, pins, a freeze and a
// prune through the command line and through serve; serve stops; the
// store file is deleted; serve starts, finds the store empty, rebuilds it
// from the bucket and the distribution, and versions, status and the
// history read as they did, field by field.
func TestLostStoreIsRebuiltByServe(t *testing.T) {
	w := start(t, "100ms", "100ms")
	addr := freeAddr(t)
	w.serveConfig(addr)
	w.write("deploybot.yaml", strings.Replace(readFile(t, w.config), "    distribution_id: E2ETEST\n",
		"    distribution_id: E2ETEST\n    retention: {keep: 2, keep_deployed: 1, min_age: 1ms, schedule: \"@daily\"}\n", 1))
	for _, v := range []string{"v1", "v2", "v3", "v4", "v5"} {
		w.must("publish", "--site", "www", "--version", v, "--commit", "c-"+v, w.siteDir(v))
	}
	// Through the command line, on the store file.
	w.must("promote", "--reason", "first", "v1")
	w.must("promote", "v2")
	w.must("pin", "--reason", "audit", "v1")
	w.must("prune")
	// Through serve.
	p := w.serve(addr)
	server := append(append([]string(nil), w.env...), "DEPLOYBOT_SERVER=http://"+addr, "DEPLOYBOT_API_TOKEN=tok")
	local := w.env
	w.env = server
	w.must("promote", "v4")
	w.must("rollback", "--reason", "broke")
	w.must("freeze", "3h", "sale")
	w.must("lock", "launch", "week")
	w.expect(1, "locked by", "promote", "v5")
	var rebuilds []map[string]any
	snapshot := func() (string, string, string) {
		// The history but for the records of rebuilds: the one record the
		// rebuilt store holds that the lost one did not (see
		// releases.ActionRebuild); every other record, field by field, as
		// it was.
		var h, kept []map[string]any
		if err := json.Unmarshal([]byte(w.must("history", "--json", "--limit", "1000").stdout), &h); err != nil {
			t.Fatal(err)
		}
		rebuilds = nil
		for _, e := range h {
			if e["action"] == "rebuild" {
				rebuilds = append(rebuilds, e)
			} else {
				kept = append(kept, e)
			}
		}
		hist, err := json.MarshalIndent(kept, "", "  ")
		if err != nil {
			t.Fatal(err)
		}
		return w.must("versions", "--json").stdout, w.must("status", "--json").stdout, string(hist)
	}
	v0, s0, h0 := snapshot()
	if !strings.Contains(h0, `"action": "prune"`) || !strings.Contains(v0, `"pruned": true`) || !strings.Contains(s0, `"freeze": {`) {
		t.Fatalf("the history does not hold what the test did:\n%s\n%s\n%s", v0, s0, h0)
	}
	stop := func(p *serveProc) {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		select {
		case err := <-p.done:
			p.done <- err // the cleanup waits for it too
			if err != nil {
				t.Fatalf("serve exited with %v; logs:\n%s", err, p.logs.String())
			}
		case <-time.After(30 * time.Second):
			t.Fatal("serve did not stop")
		}
	}
	stop(p)
	// The volume is lost.
	if err := os.RemoveAll(filepath.Join(w.dir, "db")); err != nil {
		t.Fatal(err)
	}
	w.env = local
	p = w.serve(addr)
	if !strings.Contains(p.logs.String(), "the store was empty; rebuilt www from its bucket") {
		t.Fatalf("serve did not say it rebuilt the store; logs:\n%s", p.logs.String())
	}
	w.env = server
	v1, s1, h1 := snapshot()
	for _, c := range []struct{ what, was, now string }{{"versions", v0, v1}, {"status", s0, s1}, {"history", h0, h1}} {
		if c.was != c.now {
			t.Errorf("%s differs after the rebuild:\nwas %s\nnow %s", c.what, c.was, c.now)
		}
	}
	// serve's rebuild is one record, deploybot's, saying what came back.
	if len(rebuilds) != 1 || rebuilds[0]["actor"] != "deploybot" || rebuilds[0]["door"] != "schedule" || rebuilds[0]["result"] != "ok" ||
		!strings.HasPrefix(rebuilds[0]["detail"].(string), "the store was empty: 5 release(s)") {
		t.Errorf("serve's rebuild recorded as %+v", rebuilds)
	}
	// The rebuilt store works on: the lock and the freeze hold, and an
	// unlock goes into the mirrored history like anything else.
	w.expect(1, "locked by", "promote", "v5")
	w.must("unlock")
	stop(p)
}

// kill -9 between the store's commit and the write to the bucket loses
// nothing: with every history write failing, serve records a promote and
// is killed; started again with S3 healthy, it writes what was pending,
// and a store rebuilt from the bucket has the promote.
func TestKilledBeforeTheMirrorWriteLosesNothing(t *testing.T) {
	w := start(t, "100ms", "100ms")
	addr := freeAddr(t)
	w.serveConfig(addr)
	w.must("publish", "--site", "www", "--version", "v1", w.siteDir("v1"))
	w.fault(`{"error_rate":1,"only":"s3 PutObject","path":"/.deploybot/history/"}`)
	p := w.serve(addr)
	server := append(append([]string(nil), w.env...), "DEPLOYBOT_SERVER=http://"+addr, "DEPLOYBOT_API_TOKEN=tok")
	local := w.env
	w.env = server
	w.must("promote", "--reason", "before the crash", "v1")
	if !strings.Contains(w.must("history").stdout, "before the crash") {
		t.Fatal("the promote is not in the store's history")
	}
	if historyWritten(t, w) {
		t.Fatal("the history reached the bucket although every write to it fails")
	}
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	err := <-p.done
	p.done <- err
	w.fault(`{}`)
	w.env = local
	p = w.serve(addr)
	// serve writes what was pending at start; then the volume is lost.
	deadline := time.Now().Add(15 * time.Second)
	for !historyWritten(t, w) {
		if time.Now().After(deadline) {
			t.Fatalf("serve did not write the pending history; logs:\n%s", p.logs.String())
		}
		time.Sleep(100 * time.Millisecond)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	err = <-p.done
	p.done <- err
	if err := os.RemoveAll(filepath.Join(w.dir, "db")); err != nil {
		t.Fatal(err)
	}
	r := w.must("history")
	if !strings.Contains(r.stdout, "before the crash") || !strings.Contains(r.stderr, "the store was empty; rebuilt www") {
		t.Fatalf("the rebuilt history lacks the promote made before the kill:\n%s\n%s", r.stdout, r.stderr)
	}
	// On demand: rebuild says what the bucket holds, and adds nothing the
	// store has.
	r = w.must("rebuild")
	if !strings.Contains(r.stdout, "rebuilt www from its bucket: 1 release(s), 1 deploy(s), ") || !strings.Contains(r.stdout, "live v1") {
		t.Fatalf("rebuild: %q", r.stdout)
	}
	if h := w.must("history").stdout; strings.Count(h, "before the crash") != 1 {
		t.Fatalf("rebuild doubled the history:\n%s", h)
	}
}

// historyWritten reports whether the bucket holds the mirrored deploy.
func historyWritten(t *testing.T, w *world) bool {
	t.Helper()
	for _, key := range w.bucketKeys("www/.deploybot/history/deploys/") {
		if strings.HasSuffix(key, ".json") {
			return true
		}
	}
	return false
}

// bucketKeys lists the keys of the site's bucket under prefix.
func (w *world) bucketKeys(prefix string) []string {
	w.t.Helper()
	ctx := context.Background()
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: w.api, Credentials: cloud.StaticCredentials("a", "b")})
	if err != nil {
		w.t.Fatal(err)
	}
	out, err := s3c.ListObjectsV2(ctx, &s3.ListObjectsV2Input{Bucket: aws.String("example-site"), Prefix: aws.String(prefix)})
	if err != nil {
		w.t.Fatal(err)
	}
	var keys []string
	for _, o := range out.Contents {
		keys = append(keys, aws.ToString(o.Key))
	}
	return keys
}
