package releases

import (
	"context"
	"errors"
)

// The shared truth: what every door and every replica must agree on (a
// site's lock, its run-time freeze) lives in the site's bucket under
// StatePrefix, each thing one object, created only if absent
// (If-None-Match: *) and changed only if unchanged since it was read
// (If-Match: its ETag). S3 is strongly consistent for reads after writes,
// so a read sees the last write, and of two writers racing from one read
// exactly one wins; the other is told, reads again, and names who holds
// it. The local store is the index and cache of it, written after.

// State object keys, relative to Site.StatePrefix.
const (
	StateLock     = "lock.json"
	StateFreeze   = "freeze.json"
	StateApproval = "approval.json" // the site's latest approval request
	StatePins     = "pins.json"
)

// StatePrefix is where the site's shared state lives in its bucket.
// Nothing under .deploybot/ is pruned, and the CI role may not write
// here.
func (s Site) StatePrefix() string { return s.Prefix + ".deploybot/state/" }

// ErrNoState is wrapped by Coordinator errors for an object that is not
// there.
var ErrNoState = errors.New("no such state object")

// ErrStateChanged is wrapped by Coordinator errors when a conditional
// write lost: the object was created, changed or removed since it was
// read. It is an answer, not a failure: read again.
var ErrStateChanged = errors.New("the shared state changed since it was read")

// Coordinator reads and writes a site's shared state objects.
type Coordinator interface {
	// GetState reads key; an error wrapping ErrNoState when absent. An
	// object larger than MaxStateBytes is not read: an EINVALID error,
	// with the object's ETag (so that it can still be replaced by
	// compare-and-swap).
	GetState(ctx context.Context, site Site, key string) (body []byte, etag string, err error)
	// PutState writes key if it is as read: etag "" creates it only if
	// absent, else it must still have that ETag. It returns the new
	// ETag; a lost race wraps ErrStateChanged.
	PutState(ctx context.Context, site Site, key string, body []byte, etag string) (string, error)
}

// MaxStateBytes bounds a state object as read: the bucket is outside
// input (anyone with write access to it can put anything there), and a
// lock or a freeze is a few hundred bytes.
const MaxStateBytes = 64 << 10
