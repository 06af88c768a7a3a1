//go:build !nostandin

package cli

import (
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestStandInClockAdvances(t *testing.T) {
	c := &standInClock{}
	h := c.handler(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { w.WriteHeader(http.StatusTeapot) }))
	do := func(method, path, body string) int {
		rec := httptest.NewRecorder()
		h.ServeHTTP(rec, httptest.NewRequest(method, path, strings.NewReader(body)))
		return rec.Code
	}
	if got := do(http.MethodGet, "/some-bucket/key", ""); got != http.StatusTeapot {
		t.Fatalf("another path answered %d, want the stand-in's", got)
	}
	for _, bad := range []struct{ method, body string }{
		{http.MethodGet, ""}, {http.MethodPut, `{"advance":"-1s"}`}, {http.MethodPut, `{"advance":"soon"}`}, {http.MethodPut, `not json`},
	} {
		if got := do(bad.method, "/_localaws/clock", bad.body); got < 400 {
			t.Errorf("%s %q answered %d, want a refusal", bad.method, bad.body, got)
		}
	}
	before := time.Now()
	if got := do(http.MethodPut, "/_localaws/clock", `{"advance":"1h"}`); got != http.StatusNoContent {
		t.Fatalf("advance answered %d", got)
	}
	if now := c.Now(); now.Before(before.Add(time.Hour)) || now.After(time.Now().Add(time.Hour+time.Minute)) {
		t.Fatalf("after advancing 1h the clock reads %s (wall %s)", now, time.Now())
	}
}
