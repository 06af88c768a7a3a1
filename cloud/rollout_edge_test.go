package cloud_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"math"
	"net/http"
	"net/http/cookiejar"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/cloudfrontkeyvaluestore"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testenv"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// newRolloutEnv is a kvs site set up by kvs-setup with v1 live and v2
// published, whose key writes reach the edge at once (the test is about
// who gets what, not about propagation).
func newRolloutEnv(t *testing.T) *kvsEnv {
	t.Helper()
	e := &env{testenv.New(t, testenv.Options{AWS: localaws.Options{Propagation: 20 * time.Millisecond, Pops: 2},
		Provision: true, MaxAttempts: 8, Edge: true})}
	kvsc, err := cloud.NewKVSClient(context.Background(), e.Settings)
	if err != nil {
		t.Fatal(err)
	}
	arn, err := e.AWS.EnsureKVS("deploybot")
	if err != nil {
		t.Fatal(err)
	}
	// The edge is plain HTTP: the cohort cookie goes without Secure.
	e.Site.Strategy, e.Site.KVSARN, e.Site.Routing, e.Site.URL = cloud.StrategyKVS, arn, releases.DefaultRouting, e.Edge
	k := &kvsEnv{env: e, kvsc: kvsc, kvs: &cloud.KVS{Client: kvsc, CF: e.CF, Propagation: time.Millisecond}, pops: 2,
		setup: &cloud.KVSSetup{CF: e.CF, KVS: kvsc, PollInterval: 10 * time.Millisecond}}
	for _, v := range []string{"v1", "v2"} {
		k.put(t, v, "index.html", "index of "+v)
		if err := e.Bucket.PutFile(context.Background(), e.Site, v, releases.File{Path: "app.css", Body: strings.NewReader("css of " + v),
			Size: int64(len("css of " + v)), ContentType: "text/css", CacheControl: "max-age=300"}); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := k.setup.Apply(context.Background(), e.Site); err != nil {
		t.Fatal(err)
	}
	k.deployed(t)
	k.run(t, k.kvs.Plan(e.Site, releases.Current{}, "v1", "d1"))
	return k
}

// The rollout key's writes are compare-and-set, as the live key's are:
// a step from a state the key no longer holds is refused, a step already
// taken is done, and a value the function would not accept is named.
func TestSetRolloutComparesAndSets(t *testing.T) {
	e := newRolloutEnv(t)
	ctx := context.Background()
	if _, ok, err := e.kvs.Rollout(ctx, e.Site); ok || err != nil {
		t.Fatalf("before any rollout: %v %v", ok, err)
	}
	r1 := &cloud.Rollout{Candidate: "v2", Percent: 1, Salt: 7}
	r10 := &cloud.Rollout{Candidate: "v2", Percent: 10, Salt: 7}
	if err := e.kvs.SetRollout(ctx, e.Site, r1, r10); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "expected v2 at 1%, found no rollout") {
		t.Fatalf("a step from a rollout that is not there: %v", err)
	}
	for range 2 { // the second is a resumed step: already done
		if err := e.kvs.SetRollout(ctx, e.Site, nil, r1); err != nil {
			t.Fatal(err)
		}
	}
	if got, ok, err := e.kvs.Rollout(ctx, e.Site); !ok || err != nil || got != *r1 {
		t.Fatalf("after the write: %+v %v %v", got, ok, err)
	}
	// Someone paused or aborted meanwhile: the advance does not undo it.
	abort := &cloud.Rollout{Candidate: "v2", Percent: 0, Salt: 7}
	if err := e.kvs.SetRollout(ctx, e.Site, r1, abort); err != nil {
		t.Fatal(err)
	}
	if err := e.kvs.SetRollout(ctx, e.Site, r1, r10); releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "found v2 at 0%") {
		t.Fatalf("an advance over an abort: %v", err)
	}
	if got, _, _ := e.kvs.Rollout(ctx, e.Site); got != *abort {
		t.Fatalf("the abort was overwritten: %+v", got)
	}
	if err := e.kvs.SetRollout(ctx, e.Site, abort, nil); err != nil {
		t.Fatal(err)
	}
	if _, ok, err := e.kvs.Rollout(ctx, e.Site); ok || err != nil {
		t.Fatalf("after clearing: %v %v", ok, err)
	}
	// Clearing again (a resumed step) is done, whatever it expected.
	for _, from := range []*cloud.Rollout{abort, nil} {
		if err := e.kvs.SetRollout(ctx, e.Site, from, nil); err != nil {
			t.Fatalf("clearing what is clear: %v", err)
		}
	}
	// A hand-written value: named on reading, replaced by a new rollout
	// (at the edge it is none), deleted by clearing.
	hand := func() {
		desc, err := e.kvsc.DescribeKeyValueStore(ctx, &cloudfrontkeyvaluestore.DescribeKeyValueStoreInput{KvsARN: aws.String(e.Site.KVSARN)})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := e.kvsc.PutKey(ctx, &cloudfrontkeyvaluestore.PutKeyInput{KvsARN: aws.String(e.Site.KVSARN), Key: aws.String("www.rollout"),
			Value: aws.String("v2 at 5%"), IfMatch: desc.ETag}); err != nil {
			t.Fatal(err)
		}
	}
	hand()
	if _, _, err := e.kvs.Rollout(ctx, e.Site); !errors.Is(err, cloud.ErrNotARollout) || !strings.Contains(err.Error(), `"v2 at 5%"`) {
		t.Fatalf("reading a hand-written value: %v", err)
	}
	if err := e.kvs.SetRollout(ctx, e.Site, nil, r1); err != nil {
		t.Fatalf("a rollout over a hand-written value: %v", err)
	}
	hand()
	if err := e.kvs.SetRollout(ctx, e.Site, nil, nil); err != nil {
		t.Fatal(err)
	}
	if _, err := e.kvsc.GetKey(ctx, &cloudfrontkeyvaluestore.GetKeyInput{KvsARN: aws.String(e.Site.KVSARN), Key: aws.String("www.rollout")}); err == nil {
		t.Fatal("clearing left the hand-written value")
	}
}

// browser is one simulated visitor over HTTP: its user agent (every
// request comes from 127.0.0.1, so the user agent is what tells
// first-time visitors apart) and its own cookie jar.
type browser struct {
	ua     string
	client *http.Client
}

func (b *browser) get(path string) (body string, h http.Header, err error) {
	req, err := http.NewRequest(http.MethodGet, path, nil)
	if err != nil {
		return "", nil, err
	}
	req.Header.Set("User-Agent", b.ua)
	resp, err := b.client.Do(req)
	if err != nil {
		return "", nil, err
	}
	defer resp.Body.Close()
	raw, err := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return "", nil, fmt.Errorf("%s: %d %s", path, resp.StatusCode, raw)
	}
	return string(raw), resp.Header, err
}

func newBrowser(t *testing.T, ua string, tr http.RoundTripper) *browser {
	jar, err := cookiejar.New(nil)
	if err != nil {
		t.Fatal(err)
	}
	return &browser{ua: ua, client: &http.Client{Jar: jar, Transport: tr}}
}

// browse has every browser load "/" once, eight at a time, and calls
// check with what each got; the test fails on the first error.
func browse(t *testing.T, e *kvsEnv, bs []*browser, check func(i int, body string) error) {
	t.Helper()
	const workers = 8
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(bs); i += workers {
				body, _, err := bs[i].get(e.Edge + "/")
				if err == nil {
					err = check(i, body)
				}
				if err != nil {
					errs <- err
					return
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	if err := <-errs; err != nil {
		t.Fatal(err)
	}
}

// The test, through the stand-in's edge over HTTP, with the
// functions kvs-setup installed and the rollout key written through the
// KeyValueStore API: 10,000 visitors (2,000 under the race detector),
// each with its own cookie jar, get the candidate in each step's share
// within 2 points; none goes back to live as the percent grows; after an
// abort (percent 0), and once the key is cleared, every request gets
// live.
func TestRolloutThroughTheEdge(t *testing.T) {
	e := newRolloutEnv(t)
	ctx := context.Background()
	n := 10000
	if raceDetector {
		n = 2000
	}
	tr := &http.Transport{MaxIdleConnsPerHost: 16}
	defer tr.CloseIdleConnections()
	bs := make([]*browser, n)
	for i := range bs {
		bs[i] = newBrowser(t, fmt.Sprintf("Mozilla/5.0 (rollout test; visitor %d)", i), tr)
	}
	edge, _ := url.Parse(e.Edge)
	var prev *cloud.Rollout
	onCandidate := make([]bool, n)
	for _, pct := range []int{1, 10, 50} {
		next := &cloud.Rollout{Candidate: "v2", Percent: pct, Salt: 0x2545f491}
		if err := e.kvs.SetRollout(ctx, e.Site, prev, next); err != nil {
			t.Fatal(err)
		}
		prev = next
		var got atomic.Int64
		browse(t, e, bs, func(i int, body string) error {
			switch {
			case body == "index of v2":
				got.Add(1)
				onCandidate[i] = true
			case body != "index of v1":
				return fmt.Errorf("%d%%: visitor %d got %q", pct, i, body)
			case onCandidate[i]:
				return fmt.Errorf("%d%%: visitor %d went back to live", pct, i)
			}
			// The cohort the visitor's jar holds is the one it was given
			// on its first answer.
			cs := bs[i].client.Jar.Cookies(edge)
			if len(cs) != 1 || cs[0].Name != cloud.CohortCookie || cs[0].Value != fmt.Sprint(cloud.BaseCohort("127.0.0.1", bs[i].ua)) {
				return fmt.Errorf("visitor %d holds cookies %v", i, cs)
			}
			return nil
		})
		if share := 100 * float64(got.Load()) / float64(n); math.Abs(share-float64(pct)) > 2 {
			t.Fatalf("%d%%: %.2f%% of visitors got the candidate", pct, share)
		}
	}
	abort := &cloud.Rollout{Candidate: "v2", Percent: 0, Salt: prev.Salt}
	if err := e.kvs.SetRollout(ctx, e.Site, prev, abort); err != nil {
		t.Fatal(err)
	}
	browse(t, e, bs, func(i int, body string) error {
		if body != "index of v1" {
			return fmt.Errorf("after the abort visitor %d got %q", i, body)
		}
		return nil
	})
	if err := e.kvs.SetRollout(ctx, e.Site, abort, nil); err != nil {
		t.Fatal(err)
	}
	browse(t, e, bs[:n/10], func(i int, body string) error {
		if body != "index of v1" {
			return fmt.Errorf("with no rollout key visitor %d got %q", i, body)
		}
		return nil
	})
}

// The cohort cookie is set per viewer, after the cache: a cached copy
// served to a visitor with a cookie carries no Set-Cookie, and one served
// to a new visitor carries that visitor's cohort, not the one of the
// visitor whose request filled the cache. Its attributes are the whole
// site, 30 days, HttpOnly, SameSite=Lax (and Secure on an https site,
// which this plain-HTTP edge is not).
func TestCohortCookieIsNotCached(t *testing.T) {
	e := newRolloutEnv(t)
	tr := &http.Transport{}
	defer tr.CloseIdleConnections()
	// Two user agents with different base cohorts.
	uaA, uaC := "Mozilla/5.0 (A)", ""
	for i := 0; uaC == ""; i++ {
		if ua := fmt.Sprintf("Mozilla/5.0 (C%d)", i); cloud.BaseCohort("127.0.0.1", ua) != cloud.BaseCohort("127.0.0.1", uaA) {
			uaC = ua
		}
	}
	a := newBrowser(t, uaA, tr)
	body, h, err := a.get(e.Edge + "/app.css")
	if err != nil || body != "css of v1" || h.Get("X-Cache") != "Miss from cloudfront" {
		t.Fatalf("first request: %q %v %v", body, h, err)
	}
	want := fmt.Sprintf("%s=%d; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax", cloud.CohortCookie, cloud.BaseCohort("127.0.0.1", uaA))
	if got := h.Values("Set-Cookie"); len(got) != 1 || got[0] != want {
		t.Fatalf("the first answer sets %q, want %q", got, want)
	}
	body, h, err = a.get(e.Edge + "/app.css")
	if err != nil || body != "css of v1" || h.Get("X-Cache") != "Hit from cloudfront" || h.Get("Set-Cookie") != "" {
		t.Fatalf("a cached copy to a visitor with the cookie: %q %v %v", body, h, err)
	}
	c := newBrowser(t, uaC, tr)
	body, h, err = c.get(e.Edge + "/app.css")
	want = fmt.Sprintf("%s=%d; Path=/; Max-Age=2592000; HttpOnly; SameSite=Lax", cloud.CohortCookie, cloud.BaseCohort("127.0.0.1", uaC))
	if err != nil || body != "css of v1" || h.Get("X-Cache") != "Hit from cloudfront" || h.Get("Set-Cookie") != want {
		t.Fatalf("a cached copy to a new visitor: %q Set-Cookie %q (want %q) %v", body, h.Get("Set-Cookie"), want, err)
	}
}
