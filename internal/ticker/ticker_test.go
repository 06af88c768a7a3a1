package ticker

import (
	"context"
	"testing"
	"time"
)

func TestEvery(t *testing.T) {
	ctx, cancel := context.WithCancel(context.Background())
	clock := NewManual()
	rounds := make(chan int, 10)
	n := 0
	var period time.Duration
	done := make(chan struct{})
	go func() {
		defer close(done)
		Every(ctx, func(d time.Duration) (<-chan time.Time, func()) { period = d; return clock.Clock(d) }, time.Hour, func(context.Context) {
			n++
			rounds <- n
		})
	}()
	wait, stop := context.WithTimeout(context.Background(), 10*time.Second)
	defer stop()
	if got := <-rounds; got != 1 {
		t.Fatalf("first round %d, want 1 at once", got)
	}
	for want := 2; want <= 3; want++ {
		if err := clock.Tick(wait); err != nil {
			t.Fatal(err)
		}
		if got := <-rounds; got != want {
			t.Fatalf("round %d after tick, want %d", got, want)
		}
	}
	if period != time.Hour {
		t.Errorf("ticker period %v, want 1h", period)
	}
	select {
	case got := <-rounds:
		t.Fatalf("round %d ran without a tick", got)
	default:
	}
	cancel()
	select {
	case <-done:
	case <-wait.Done():
		t.Fatal("Every did not return when its context ended")
	}
}

func TestWall(t *testing.T) {
	ticks, stop := Wall(time.Millisecond)
	defer stop()
	select {
	case <-ticks:
	case <-time.After(10 * time.Second):
		t.Fatal("the wall ticker never fired")
	}
}
