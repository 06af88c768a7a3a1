package server

import (
	"container/heap"
	"sync"
	"time"

	"github.com/deploybot/deploybot/hook"
)

// MaxReplayEntries bounds the replay cache. Each entry is a verified
// notice (a correct signature, so from a holder of the secret) still
// inside its timestamp window: 100,000 is about 170 notices a second for
// ten minutes, far past any CI, in some 10 MiB. When it is full, new
// notices are refused (503, counted) rather than an old one forgotten,
// which would let that one be replayed.
const MaxReplayEntries = 100_000

// replayCache remembers the notices accepted while their timestamp is
// inside the window, keyed by what was signed (timestamp and MAC), so a
// captured notice cannot be accepted twice. Expiry is time-ordered (a
// heap of expiry times); add and lookup cost O(log n) and O(1).
type replayCache struct {
	mu     sync.Mutex
	max    int // 0: MaxReplayEntries
	seen   map[hook.Signed]struct{}
	expiry expiryHeap
}

type expiring struct {
	key hook.Signed
	at  time.Time
}

type expiryHeap []expiring

func (h expiryHeap) Len() int           { return len(h) }
func (h expiryHeap) Less(i, j int) bool { return h[i].at.Before(h[j].at) }
func (h expiryHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *expiryHeap) Push(x any)        { *h = append(*h, x.(expiring)) }
func (h *expiryHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// replayResult is what add found.
type replayResult int

const (
	replayNew replayResult = iota
	replaySeen
	replayFull
)

// add records a verified notice. A notice can be accepted only while
// |now - timestamp| <= hook.Window, so it is forgotten once its timestamp
// is more than the window in the past.
func (c *replayCache) add(k hook.Signed, now time.Time) replayResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.seen == nil {
		c.seen = map[hook.Signed]struct{}{}
	}
	for len(c.expiry) > 0 && now.After(c.expiry[0].at) {
		delete(c.seen, heap.Pop(&c.expiry).(expiring).key)
	}
	if _, ok := c.seen[k]; ok {
		return replaySeen
	}
	limit := c.max
	if limit <= 0 {
		limit = MaxReplayEntries
	}
	if len(c.seen) >= limit {
		return replayFull
	}
	c.seen[k] = struct{}{}
	heap.Push(&c.expiry, expiring{key: k, at: time.Unix(k.Timestamp, 0).Add(hook.Window + time.Second)})
	return replayNew
}

// size is how many notices the cache holds.
func (c *replayCache) size() int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return len(c.seen)
}
