// Package ticker runs the background loops (reconcile, lease renewals,
// the watch for orphaned deploys, approval expiry, the history mirror):
// each runs its work now, then once a period, until its context ends.
// The clock is injected so that tests move a loop on when they say, not
// after a sleep.
package ticker

import (
	"context"
	"time"
)

// Clock starts a ticker of period d: the channel it fires on, and the
// function that stops it.
type Clock func(d time.Duration) (ticks <-chan time.Time, stop func())

// Wall is the wall clock's ticker (time.NewTicker).
func Wall(d time.Duration) (<-chan time.Time, func()) {
	t := time.NewTicker(d)
	return t.C, t.Stop
}

// Every runs fn at once, then at every tick of clock (nil: Wall) with
// period d, until ctx ends. A round that outlasts d is followed by the
// next at once, not by a burst: a ticker holds one pending tick.
func Every(ctx context.Context, clock Clock, d time.Duration, fn func(context.Context)) {
	if clock == nil {
		clock = Wall
	}
	ticks, stop := clock(d)
	defer stop()
	for {
		fn(ctx)
		select {
		case <-ctx.Done():
			return
		case <-ticks:
		}
	}
}

// Manual is a clock for tests: every ticker it starts fires when Tick
// is called, whatever its period.
type Manual struct {
	ch chan time.Time
}

// NewManual returns a clock whose tickers fire only on Tick.
func NewManual() *Manual { return &Manual{ch: make(chan time.Time)} }

// Clock is the Clock to inject.
func (m *Manual) Clock(time.Duration) (<-chan time.Time, func()) { return m.ch, func() {} }

// Tick fires one ticker of the clock; it returns when a loop has taken
// the tick (so the round it starts has begun) or ctx ends.
func (m *Manual) Tick(ctx context.Context) error {
	select {
	case m.ch <- time.Time{}:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
