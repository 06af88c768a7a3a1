package slackbot

import (
	"sync"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// eventQueue holds a deploy's events between the deploy, which must never
// wait for Slack, and the view that posts them, which may wait minutes
// behind a rate limit. Nothing is dropped: the phases, the start and the
// end are each posted, in order, however far behind Slack is. What keeps
// it small is that notes (a phase saying what it waits for, the visible
// phase's tally every round) replace the note queued before them in the
// same phase: only the latest is worth posting. A deploy has a dozen
// phases, so the queue holds a few dozen events at most.
type eventQueue struct {
	mu     sync.Mutex
	items  []releases.Event
	closed bool
	ready  chan struct{} // one token: something was pushed or it closed
}

func newEventQueue() *eventQueue { return &eventQueue{ready: make(chan struct{}, 1)} }

func (q *eventQueue) push(e releases.Event) {
	q.mu.Lock()
	if n := len(q.items); n > 0 && e.Type == releases.EventPhaseNote {
		if last := q.items[n-1]; last.Type == releases.EventPhaseNote && last.Phase == e.Phase && last.Deploy.ID == e.Deploy.ID {
			q.items[n-1] = e
			q.mu.Unlock()
			return
		}
	}
	q.items = append(q.items, e)
	q.mu.Unlock()
	q.wake()
}

func (q *eventQueue) close() {
	q.mu.Lock()
	q.closed = true
	q.mu.Unlock()
	q.wake()
}

func (q *eventQueue) wake() {
	select {
	case q.ready <- struct{}{}:
	default:
	}
}

// pop returns the next event, waiting for one; false once the queue is
// closed and empty.
func (q *eventQueue) pop() (releases.Event, bool) {
	e, got, _ := q.popWithin(-1)
	return e, got
}

// popWithin returns the next event, waiting at most wait for one (a
// negative wait: for ever). got is false when none came in time or the
// queue is closed and empty (closed says which).
func (q *eventQueue) popWithin(wait time.Duration) (e releases.Event, got, closed bool) {
	var timeout <-chan time.Time
	if wait >= 0 {
		t := time.NewTimer(wait)
		defer t.Stop()
		timeout = t.C
	}
	for {
		q.mu.Lock()
		if len(q.items) > 0 {
			e := q.items[0]
			q.items[0] = releases.Event{}
			q.items = q.items[1:]
			q.mu.Unlock()
			return e, true, false
		}
		closed := q.closed
		q.mu.Unlock()
		if closed {
			return releases.Event{}, false, true
		}
		select {
		case <-q.ready:
		case <-timeout:
			return releases.Event{}, false, false
		}
	}
}
