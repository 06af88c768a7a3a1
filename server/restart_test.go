package server_test

import (
	"context"
	"errors"
	"sync/atomic"
	"testing"
	"time"

	"github.com/deploybot/deploybot/server"
)

// A worker that stops with an error is started again, with growing
// pauses, until the context ends; one that ends with the context is not.
func TestAStoppedWorkerIsStartedAgain(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	var runs, restarts atomic.Int32
	var attempts []int
	run := func(ctx context.Context) error {
		if runs.Add(1) < 4 {
			return errors.New("slack: socket mode stopped: connections.open: service unavailable")
		}
		<-ctx.Done()
		return nil
	}
	done := make(chan error, 1)
	w := server.Restarting("slack", nil, run, func(attempt int, _ error) time.Duration {
		attempts = append(attempts, attempt)
		return time.Millisecond
	}, func() { restarts.Add(1) })
	go func() { done <- w(ctx) }()
	deadline := time.Now().Add(10 * time.Second)
	for runs.Load() < 4 {
		if time.Now().After(deadline) {
			t.Fatalf("ran %d times", runs.Load())
		}
		time.Sleep(time.Millisecond)
	}
	cancel()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if restarts.Load() != 3 || len(attempts) != 3 || attempts[0] != 1 || attempts[2] != 3 {
		t.Fatalf("restarts %d, attempts %v", restarts.Load(), attempts)
	}
}
