package server

import (
	"testing"
	"time"

	"github.com/deploybot/deploybot/hook"
	"github.com/deploybot/deploybot/internal/testclock"
)

// The replay cache holds each notice until its timestamp leaves the
// window, and no more than its cap; full, it refuses rather than forgets.
func TestReplayCacheIsBoundedAndExpiresInTimeOrder(t *testing.T) {
	now := testclock.At(10, 0)
	c := &replayCache{max: 3}
	key := func(ts time.Time, b byte) hook.Signed { return hook.Signed{Timestamp: ts.Unix(), MAC: [32]byte{b}} }
	a, b, d := key(now.Add(-4*time.Minute), 1), key(now, 2), key(now.Add(2*time.Minute), 3)
	for _, k := range []hook.Signed{a, b, d} {
		if got := c.add(k, now); got != replayNew {
			t.Fatalf("first sight of %v: %v", k.MAC[0], got)
		}
	}
	if got := c.add(b, now); got != replaySeen {
		t.Fatalf("a replay: %v", got)
	}
	if got := c.add(key(now, 4), now); got != replayFull {
		t.Fatalf("a fourth notice with room for three: %v", got)
	}
	// Two minutes on, a's timestamp is out of the window: it is forgotten
	// (it would be refused as stale anyway) and there is room again.
	later := now.Add(2*time.Minute + 2*time.Second)
	if got := c.add(key(later, 5), later); got != replayNew || c.size() != 3 {
		t.Fatalf("after a expired: %v, %d entries", got, c.size())
	}
	if got := c.add(d, later); got != replaySeen {
		t.Fatalf("d is still in its window: %v", got)
	}
}
