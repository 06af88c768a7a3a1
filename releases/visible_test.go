package releases_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/deploybot/deploybot/probe"
	"github.com/deploybot/deploybot/releases"
)

// lagEdge is a site's public address whose answers name, in the release
// header, the release the fake CDN points at, except that the next
// `stale` answers still name `old` (edge servers that have not caught up),
// and `header`, when set, is sent instead of the truth.
type lagEdge struct {
	mu     sync.Mutex
	h      *harness
	stale  int
	old    string
	header string
	asked  int
}

func (e *lagEdge) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	e.h.cdn.mu.Lock()
	path := e.h.cdn.path
	e.h.cdn.mu.Unlock()
	v, _ := e.h.svc.Sites[0].VersionFromOriginPath(path)
	e.mu.Lock()
	e.asked++
	switch {
	case e.header != "":
		v = e.header
	case e.stale > 0:
		e.stale--
		v = e.old
	}
	e.mu.Unlock()
	if v != "" && v != "none" {
		w.Header().Set(releases.ReleaseHeader, v)
	}
	w.Write([]byte("<html>ok</html>"))
}

// visibleHarness is a harness whose site has a url served by a lagEdge,
// watched with the real HTTP prober, and whose waits return at once.
func visibleHarness(t *testing.T) (*harness, *lagEdge) {
	t.Helper()
	h := newHarness(t)
	e := &lagEdge{h: h}
	srv := httptest.NewServer(e)
	t.Cleanup(srv.Close)
	h.svc.Sites[0].URL = srv.URL
	h.svc.EdgeProber = &probe.HTTP{}
	h.svc.After = func(time.Duration) <-chan time.Time {
		c := make(chan time.Time, 1)
		c <- time.Time{}
		return c
	}
	h.publish("v1", "v2")
	for _, m := range h.bucket.manifests {
		m.Stamped = true
	}
	return h, e
}

func phasesOf(d *releases.Deploy) []string {
	var out []string
	for _, p := range d.Phases {
		out = append(out, string(p.Phase))
	}
	return out
}

func TestVisiblePhaseWaitsUntilEveryAnswerNamesTheRelease(t *testing.T) {
	h, edge := visibleHarness(t)
	h.promote(t, "v1")
	edge.mu.Lock()
	edge.stale, edge.old, edge.asked = 6, "v1", 0
	edge.mu.Unlock()

	var notes []string
	var finished releases.Deploy
	out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, func(e releases.Event) {
		switch {
		case e.Type == releases.EventPhaseNote && e.Phase == releases.PhaseVisible:
			notes = append(notes, e.Title)
		case e.Type == releases.EventPhaseFinished && e.Phase == releases.PhaseVisible:
			finished = e.Deploy
		}
	})
	if err != nil {
		t.Fatal(err)
	}
	d := out.Deploy
	if got := strings.Join(phasesOf(d), ","); got != "flip,wait,visible" {
		t.Fatalf("phases %s, want the visible phase after the strategy's steps", got)
	}
	// 6 stale answers over rounds of 4: the first round is all stale, the
	// second half stale, the third names v2 everywhere.
	edge.mu.Lock()
	asked := edge.asked
	edge.mu.Unlock()
	if asked != 3*releases.VisibleProbes {
		t.Fatalf("the edge was asked %d times, want %d (three rounds)", asked, 3*releases.VisibleProbes)
	}
	if len(notes) != 2 || !strings.Contains(notes[0], "0 of 4 answers name v2; 4 name v1") || !strings.Contains(notes[1], "2 of 4 answers name v2; 2 name v1") {
		t.Fatalf("notes %q", notes)
	}
	vis := d.Phases[2]
	if d.VisibleAt.IsZero() || d.VisibleAt.Before(vis.Started) || d.VisibleAt.After(vis.Ended) || d.FlippedAt.IsZero() || !d.VisibleAt.After(d.FlippedAt) {
		t.Fatalf("visible at %v, flipped at %v, phase %v..%v", d.VisibleAt, d.FlippedAt, vis.Started, vis.Ended)
	}
	if !finished.VisibleAt.Equal(d.VisibleAt) {
		t.Fatalf("the phase_finished event carries visible_at %v, want %v", finished.VisibleAt, d.VisibleAt)
	}
	stored, err := h.db.Deploy(context.Background(), "www", d.ID)
	if err != nil || !stored.VisibleAt.Equal(d.VisibleAt) || !stored.FlippedAt.Equal(d.FlippedAt) {
		t.Fatalf("stored %+v %v", stored, err)
	}
}

func TestVisiblePhaseTakesThePlaceOfAFixedWaitKeptAsItsFloor(t *testing.T) {
	h, edge := visibleHarness(t)
	h.cdn.propagation = 5 * time.Second
	h.promote(t, "v1")
	edge.mu.Lock()
	edge.asked = 0
	edge.mu.Unlock()
	out := h.promote(t, "v2")
	d := out.Deploy
	if got := strings.Join(phasesOf(d), ","); got != "flip,visible" {
		t.Fatalf("phases %s, want the fixed wait replaced", got)
	}
	// Every answer names v2 from the first round, but the phase lasts the
	// floor: the harness clock moves a second per reading.
	vis := d.Phases[1]
	if vis.Ended.Sub(vis.Started) < 5*time.Second {
		t.Fatalf("visible lasted %v, want at least the 5s floor", vis.Ended.Sub(vis.Started))
	}
	edge.mu.Lock()
	asked := edge.asked
	edge.mu.Unlock()
	if asked < 2*releases.VisibleProbes {
		t.Fatalf("asked %d times: the floor should be spent watching, not sleeping", asked)
	}
}

func TestVisiblePhaseTimesOutAndSaysWhatVisitorsGet(t *testing.T) {
	for _, tc := range []struct {
		name, header, want string
	}{
		{"stale edge", "v1", "0 of 4 answers name v2; 4 name v1"},
		{"no header", "none", "4 name no release"},
		{"hostile header", "../../etc/passwd\r\nx", "4 failed"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			h, edge := visibleHarness(t)
			h.svc.VisibleTimeout = 10 * time.Second
			h.promote(t, "v1")
			edge.mu.Lock()
			edge.header = tc.header
			edge.mu.Unlock()
			out, err := h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
			if err == nil || releases.ErrorCode(err) != releases.EINTERNAL {
				t.Fatalf("err %v, want EINTERNAL", err)
			}
			msg := releases.ErrorMessage(err)
			if !strings.Contains(msg, "do not all get v2") || !strings.Contains(msg, tc.want) || !strings.Contains(msg, "live now: v2") {
				t.Fatalf("message %q lacks %q", msg, tc.want)
			}
			if out.Deploy.Phase != releases.PhaseFailed || !out.Deploy.VisibleAt.IsZero() {
				t.Fatalf("deploy %+v", out.Deploy)
			}
			// Flipped: the store follows what the CDN points at.
			if live, _, _ := h.db.Live(context.Background(), "www"); live.Version != "v2" {
				t.Fatalf("live %q", live.Version)
			}
		})
	}
}

func TestNoVisiblePhaseWithoutAURLOrAStamp(t *testing.T) {
	t.Run("unstamped release", func(t *testing.T) {
		h, _ := visibleHarness(t)
		h.bucket.manifests["v2"].Stamped = false
		if got := strings.Join(phasesOf(h.promote(t, "v2").Deploy), ","); got != "flip,wait" {
			t.Fatalf("phases %s", got)
		}
	})
	t.Run("no url", func(t *testing.T) {
		h, _ := visibleHarness(t)
		h.svc.Sites[0].URL = ""
		h.cdn.propagation = 5 * time.Second
		if got := strings.Join(phasesOf(h.promote(t, "v2").Deploy), ","); got != "flip,wait" {
			t.Fatalf("phases %s: without a url the fixed wait stays", got)
		}
	})
}

func TestRecoverWatchesAgainADeployInterruptedWhileVisible(t *testing.T) {
	h, _ := visibleHarness(t)
	h.promote(t, "v1")
	h.cdn.mu.Lock()
	h.cdn.path = "/www/v2" // the flip had happened
	h.cdn.mu.Unlock()
	d := releases.Deploy{ID: "zz-crashed", Site: "www", Kind: releases.KindPromote, Actor: "a", From: "v1", FromPath: "/www/v1", To: "v2",
		Phase: releases.PhaseVisible, Phases: []releases.PhaseRecord{{Phase: releases.PhaseVisible, Started: h.now}}}
	if err := h.db.StartDeploy(context.Background(), d, releases.Lock{Site: "www", Holder: "a", DeployID: d.ID}); err != nil {
		t.Fatal(err)
	}
	recovered, err := h.svc.Recover(context.Background(), nil)
	if err != nil || len(recovered) != 1 {
		t.Fatalf("recover: %+v %v", recovered, err)
	}
	if r := recovered[0]; r.Phase != releases.PhaseDone || r.VisibleAt.IsZero() {
		t.Fatalf("deploy %+v", r)
	}
}

// An edge whose answers cannot be read fails the phase with a message of
// bounded length, however much of the answer the error quotes.
func TestVisiblePhaseBoundsWhatTheEdgeSaid(t *testing.T) {
	h, _ := visibleHarness(t)
	h.svc.VisibleTimeout = 3 * time.Second
	h.promote(t, "v1")
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				if _, err := http.ReadRequest(bufio.NewReader(c)); err != nil {
					return
				}
				io.WriteString(c, "HTTP/1.1 2"+strings.Repeat("Z", 20000)+" OK\r\nContent-Length: 0\r\n\r\n")
			}()
		}
	}()
	h.svc.Sites[0].URL = "http://" + ln.Addr().String()
	_, err = h.svc.Promote(context.Background(), releases.PromoteRequest{Site: "www", Version: "v2", Actor: "alice"}, nil)
	msg := releases.ErrorMessage(err)
	if !strings.Contains(msg, "4 failed (") || !strings.Contains(msg, "ZZZ") || len(msg) > 1000 {
		t.Fatalf("%d bytes: %.300s", len(msg), msg)
	}
	d, _ := h.db.Deploys(context.Background(), "www", 1)
	if len(d) != 1 || len(d[0].Error) > 1000 {
		t.Fatalf("the deploy's recorded error: %+v", d)
	}
}
