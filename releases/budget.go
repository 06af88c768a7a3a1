package releases

import (
	"context"
	"sync"
	"sync/atomic"

	"golang.org/x/sync/semaphore"
)

// ManifestBudget bounds the manifest JSON read at once, in bytes, across
// every reader that shares it: Sync, diff, verify, a promote's read, the
// flip's carry, recovery, and the S3 adapter's own ReadManifest. Manifests
// are outside input (anyone who can write to the bucket or run CI writes
// them) and each may be up to MaxManifestBytes, so a count of readers
// bounds nothing: sixteen manifests of 46 MB read at once took serve past
// 1 GiB. A read is weighed by its object's size (a HEAD), capped at the
// budget, so a manifest larger than the whole budget is still read, alone.
//
// It lives here rather than in the S3 adapter because what it must span
// is the use of what was read, not only the GET: a diff holds one
// release's index while it streams the other, verify holds the listing of
// the folder it checks. The adapter holds the same budget around the
// plain ReadManifest it serves other callers.
//
// What a byte of budget costs in memory depends on the reader, measured on
// a manifest at the file limit as publish writes it (200,000 entries,
// 46.3 MB of JSON, some 230 bytes an entry): counting (Sync) keeps 0.15 of
// the JSON (what tells a path listed twice); a diff's index of the older
// release 0.7 (path, size, hash); a whole manifest (a promote's target,
// which the flip keeps) 1.3, more while its list grows.
type ManifestBudget struct {
	sem   *semaphore.Weighted
	bytes int64
	// waiting counts the readers waiting for room (see Waiting).
	waiting atomic.Int64
}

// DefaultManifestBudgetBytes is the budget of a process that sets none:
// 64 MiB of manifest JSON, one manifest at the limit (MaxManifestBytes).
// At the costs above that is at most about 85 MiB of live heap beyond
// serve's own, which the collector lets grow to about twice what is live
// (GOGC=100) before it collects: bench/memory measured serve at 133 MiB at most while its reconcile
// recorded twenty manifests of 46 MB and eight diffs of them ran at once
// (591 MiB before the budget), under the 200 MiB it aims at and the Helm
// chart's 256 MiB limit. The price: the first sync after many large
// publishes reads them one after another (about 0.4 s each for 46 MB on
// the stand-in) rather than sixteen at once.
const DefaultManifestBudgetBytes = MaxManifestBytes

// NewManifestBudget returns a budget of bytes (at least 1).
func NewManifestBudget(bytes int64) *ManifestBudget {
	bytes = max(bytes, 1)
	return &ManifestBudget{sem: semaphore.NewWeighted(bytes), bytes: bytes}
}

// processBudget is what every reader without a budget of its own shares,
// so one process holds one budget whatever builds its services.
var processBudget = NewManifestBudget(DefaultManifestBudgetBytes)

// DefaultManifestBudget is the process-wide budget (see ManifestBudget).
func DefaultManifestBudget() *ManifestBudget { return processBudget }

// Bytes is the budget's size.
func (b *ManifestBudget) Bytes() int64 { return b.or().bytes }

func (b *ManifestBudget) or() *ManifestBudget {
	if b == nil {
		return processBudget
	}
	return b
}

// Hold waits until n bytes fit in the budget (n is capped to the budget,
// so any read runs, alone if need be) or ctx ends, and returns what gives
// them back; calling it more than once gives them back once. A holder
// must not Hold again before giving back what it holds: two holds of the
// whole budget by one caller would wait for each other for ever.
func (b *ManifestBudget) Hold(ctx context.Context, n int64) (release func(), err error) {
	b = b.or()
	n = min(max(n, 1), b.bytes)
	if !b.sem.TryAcquire(n) {
		b.waiting.Add(1)
		err := b.sem.Acquire(ctx, n)
		b.waiting.Add(-1)
		if err != nil {
			return nil, err
		}
	}
	var once sync.Once
	return func() { once.Do(func() { b.sem.Release(n) }) }, nil
}

// Waiting says how many readers wait for room in the budget now.
func (b *ManifestBudget) Waiting() int64 { return b.or().waiting.Load() }
