package slackbot

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"sync/atomic"
	"testing"
	"time"
)

// A 429 on a method holds every later call of that method in the
// process, from any sender, for the whole Retry-After (45 s here: no cap
// cuts it short); other methods go on.
func TestA429HoldsTheMethodForEverySender(t *testing.T) {
	var calls atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if calls.Add(1) == 1 {
			w.Header().Set("Retry-After", "45")
			w.WriteHeader(http.StatusTooManyRequests)
			return
		}
		_, _ = w.Write([]byte(`{"ok":true}`))
	}))
	defer srv.Close()
	c := &gatedClient{next: srv.Client(), gates: &gates{}}
	call := func(ctx context.Context, method string) error {
		req, err := http.NewRequestWithContext(ctx, http.MethodPost, srv.URL+"/api/"+method, nil)
		if err != nil {
			return err
		}
		resp, err := c.Do(req)
		if err == nil {
			resp.Body.Close()
		}
		return err
	}
	if err := call(context.Background(), "chat.update"); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 300*time.Millisecond)
	defer cancel()
	if err := call(ctx, "chat.update"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("another chat.update went out during the Retry-After: %v", err)
	}
	if calls.Load() != 1 {
		t.Fatalf("%d calls reached Slack, want 1", calls.Load())
	}
	if err := call(context.Background(), "chat.postMessage"); err != nil || calls.Load() != 2 {
		t.Fatalf("another method was held too: %v (%d calls)", err, calls.Load())
	}
}

func TestRetryAfterIsReadAsSlackSendsIt(t *testing.T) {
	for in, want := range map[string]time.Duration{"45": 45 * time.Second, " 3 ": 3 * time.Second, "": time.Second, "0": time.Second, "soon": time.Second, "-4": time.Second} {
		if got := retryAfter(in); got != want {
			t.Errorf("retryAfter(%q) = %s, want %s", in, got, want)
		}
	}
}
