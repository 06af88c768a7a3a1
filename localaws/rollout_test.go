package localaws

import (
	"fmt"
	"math"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/releases"
)

// visitor is one simulated browser: its address and user agent, and its
// cookie jar (the cohort cookie, once an answer set it).
type visitor struct {
	ip, ua string
	jar    map[string]string
	on     string // the release its last answer came from
}

// rolloutRig runs a kvs site's two generated functions as the edge does:
// the viewer-request function (with the key value store it reads), then
// the viewer-response one on the answer.
type rolloutRig struct {
	req, resp *jsFunction
	keys      map[string]string
}

func newRolloutRig(t *testing.T) *rolloutRig {
	t.Helper()
	site := releases.Site{Name: "www", Prefix: "www/", Strategy: cloud.StrategyKVS, Routing: releases.DefaultRouting, URL: "https://www.example.com"}
	reqCode, err := cloud.FunctionCode(site, "kvs-id")
	if err != nil {
		t.Fatal(err)
	}
	respCode, err := cloud.ReleaseHeaderCode(site)
	if err != nil {
		t.Fatal(err)
	}
	r := &rolloutRig{keys: map[string]string{"www": "v1"}}
	if r.req, err = compileFunction(reqCode); err != nil {
		t.Fatal(err)
	}
	if r.resp, err = compileFunction(respCode); err != nil {
		t.Fatal(err)
	}
	return r
}

func (r *rolloutRig) get(_, key string) (string, bool) {
	v, ok := r.keys[key]
	return v, ok
}

// visit is one page load: the release the visitor is served, and what
// the answer's Set-Cookie puts in its jar.
func (r *rolloutRig) visit(v *visitor) error {
	req := fnRequest{Method: "GET", URI: "/", Querystring: map[string]fnValue{}, Headers: map[string]fnValue{"user-agent": {Value: v.ua}}, Cookies: map[string]fnValue{}}
	for name, value := range v.jar {
		req.Cookies[name] = fnValue{Value: value}
	}
	res, err := r.req.run(req, v.ip, r.get)
	if err != nil || res.StatusCode != 0 {
		return fmt.Errorf("viewer request: %+v %v", res, err)
	}
	v.on = strings.Split(strings.TrimPrefix(res.URI, "/www/"), "/")[0]
	out, err := r.resp.runResponse(req, fnResponseOf(200, nil), v.ip, r.get)
	if err != nil {
		return err
	}
	h, err := headerOfFnResponse(out, fnResponseOf(200, nil))
	if err != nil {
		return err
	}
	for _, line := range h.Values("Set-Cookie") {
		pair, attrs, _ := strings.Cut(line, "; ")
		name, value, _ := strings.Cut(pair, "=")
		if name != cloud.CohortCookie || attrs != "Path=/; Max-Age=2592000; HttpOnly; Secure; SameSite=Lax" {
			return fmt.Errorf("Set-Cookie %q", line)
		}
		v.jar[name] = value
	}
	return nil
}

// each calls check for every visitor, on every core (each visitor is one
// goroutine's), and fails the test on the first error.
func each(t *testing.T, vs []*visitor, check func(i int, v *visitor) error) {
	t.Helper()
	workers := runtime.GOMAXPROCS(0)
	errs := make(chan error, workers)
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := w; i < len(vs); i += workers {
				if err := check(i, vs[i]); err != nil {
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

// rolloutSalt is the salt of the rollout the visitors go through; the
// refused keys abortAndRefusedKeysServeLive writes carry it too.
const rolloutSalt = 0x9e3779b9

// 10,000 visitors (2,000 under the race detector), each with its own address, user agent and cookie jar,
// through the shipped functions: at each step of a rolling release the
// candidate's share is the step's within 2 points, no visitor goes back
// to live as the percent grows, a visitor keeps its release when its
// address changes (the cookie), and an abort (percent 0) or a key the
// function does not accept puts everyone on live. The functions decide
// as cloud.Rollout.Serves and cloud.BaseCohort do, visitor by visitor.
func TestRolloutCohortsThroughTheFunctions(t *testing.T) {
	r := newRolloutRig(t)
	n := 10000
	if raceDetector {
		n = 2000
	}
	vs := make([]*visitor, n)
	for i := range vs {
		vs[i] = &visitor{ip: fmt.Sprintf("198.51.%d.%d", i/250, i%250+1), ua: fmt.Sprintf("Mozilla/5.0 (visitor %d)", i), jar: map[string]string{}}
	}
	// Before any rollout: everyone on live, and the first answer gives
	// each visitor its base cohort.
	each(t, vs, func(i int, v *visitor) error {
		if err := r.visit(v); err != nil {
			return err
		}
		if v.on != "v1" || v.jar[cloud.CohortCookie] != fmt.Sprint(cloud.BaseCohort(v.ip, v.ua)) {
			return fmt.Errorf("no rollout: visitor %d %+v", i, v)
		}
		return nil
	})
	// Some change address (a phone between networks): the cookie keeps
	// their cohort.
	for i := 0; i < n; i += 7 {
		vs[i].ip = fmt.Sprintf("203.0.%d.%d", i/250, i%250+1)
	}
	onCandidate := growRollout(t, r, vs, rolloutSalt)
	var were []*visitor
	for i, v := range vs {
		if onCandidate[i] {
			were = append(were, v)
		}
	}
	abortAndRefusedKeysServeLive(t, r, were)
}

// growRollout takes the rollout through 1, 10 and 50 percent: at each
// step every visitor gets the release Rollout.Serves gives its base
// cohort, none goes back to live, and the candidate's share is the
// step's within 2 points. It returns who ended on the candidate.
func growRollout(t *testing.T, r *rolloutRig, vs []*visitor, salt uint32) []bool {
	onCandidate := make([]bool, len(vs))
	for _, pct := range []int{1, 10, 50} {
		ro := cloud.Rollout{Candidate: "v2", Percent: pct, Salt: salt}
		val, err := ro.Encode()
		if err != nil {
			t.Fatal(err)
		}
		r.keys["www"+cloud.RolloutKeySuffix] = val
		var got atomic.Int64
		each(t, vs, func(i int, v *visitor) error {
			if err := r.visit(v); err != nil {
				return err
			}
			base, err := strconv.Atoi(v.jar[cloud.CohortCookie])
			if err != nil {
				return err
			}
			if want := map[bool]string{true: "v2", false: "v1"}[ro.Serves(base)]; v.on != want {
				return fmt.Errorf("%d%%: visitor %d (base %d) got %s, want %s", pct, i, base, v.on, want)
			}
			if onCandidate[i] && v.on != "v2" {
				return fmt.Errorf("visitor %d went back to live when the rollout grew to %d%%", i, pct)
			}
			onCandidate[i] = v.on == "v2"
			if v.on == "v2" {
				got.Add(1)
			}
			return nil
		})
		if share := 100 * float64(got.Load()) / float64(len(vs)); math.Abs(share-float64(pct)) > 2 {
			t.Fatalf("%d%%: %.2f%% of visitors on the candidate", pct, share)
		}
	}
	return onCandidate
}

// abortAndRefusedKeysServeLive writes an abort, then values the function
// refuses: everyone on live. were are the visitors on the candidate, the
// ones that could stay there.
func abortAndRefusedKeysServeLive(t *testing.T, r *rolloutRig, were []*visitor) {
	for _, bad := range []string{"r1:0:9e3779b9:v2", "r1:50:9e3779b9:", "r1:050:9e3779b9:v2", "r1:50:9E3779B9:v2", "r2:50:9e3779b9:v2",
		"r1:50:9e3779b9:v2 ", "r1:101:9e3779b9:v2", "r1:50:9e3779b9:../v2", "50"} {
		r.keys["www"+cloud.RolloutKeySuffix] = bad
		sample := were
		if !strings.HasPrefix(bad, "r1:0:") {
			sample = were[:100] // a sample for the malformed values; all of them for the abort
		}
		each(t, sample, func(i int, v *visitor) error {
			if err := r.visit(v); err != nil {
				return err
			}
			if v.on != "v1" {
				return fmt.Errorf("rollout key %q: a visitor on %s", bad, v.on)
			}
			return nil
		})
	}
}

// A new rollout's salt starts on other visitors: the first 10% of base
// cohorts under one salt are not those under the next.
func TestNewSaltStartsOnOtherVisitors(t *testing.T) {
	salt := uint32(rolloutSalt)
	first := func(salt uint32) map[int]bool {
		out := map[int]bool{}
		for b := range 100 {
			if cloud.Cohort(b, salt) < 10 {
				out[b] = true
			}
		}
		return out
	}
	a, b := first(salt), first(salt+1)
	same := 0
	for k := range a {
		if b[k] {
			same++
		}
	}
	if len(a) != 10 || len(b) != 10 || same == 10 {
		t.Fatalf("the first 10%% of two rollouts: %v and %v", a, b)
	}
}
