package publish

import (
	"context"
	"sync/atomic"

	"golang.org/x/sync/errgroup"
)

// forEach runs fn for every file on conc workers, stopping at the first
// error. The workers live for the whole run instead of one goroutine per
// file: a call through the SDK's middleware grows a goroutine's stack to
// tens of KiB, and a fresh goroutine per file paid for that growth (stack
// copies, a tenth of publish's CPU) once per file. Each worker also owns
// one buffer, which fn may use until it returns. Reusing it for the next
// file is safe even though net/http may go on reading a request body
// after RoundTrip returns: the SDK wraps each attempt's body in a reader
// that it closes when the attempt ends and that answers EOF from then on
// (smithy-go's safe read closer), so nothing reads the buffer once
// PutObject has returned.
func forEach(ctx context.Context, files []file, conc int, fn func(ctx context.Context, buf []byte, i int, f file) error) error {
	var next atomic.Int64
	return forEachFrom(ctx, func() (int, file, bool) {
		i := int(next.Add(1) - 1)
		if i >= len(files) {
			return i, file{}, false
		}
		return i, files[i], true
	}, min(conc, len(files)), fn)
}

// chanSource hands out the files sent on ch, numbered in order, until it
// is closed.
func chanSource(ch <-chan file) func() (int, file, bool) {
	var n atomic.Int64
	return func() (int, file, bool) {
		f, ok := <-ch
		return int(n.Add(1) - 1), f, ok
	}
}

// forEachFrom is forEach over the files next hands out (false: no more),
// safe to call from conc workers at once.
func forEachFrom(ctx context.Context, next func() (int, file, bool), conc int, fn func(ctx context.Context, buf []byte, i int, f file) error) error {
	g, gctx := errgroup.WithContext(ctx)
	for range conc {
		g.Go(func() error {
			buf := make([]byte, smallFile+1)
			for {
				if err := gctx.Err(); err != nil {
					return err
				}
				i, f, ok := next()
				if !ok {
					return nil
				}
				if err := fn(gctx, buf, i, f); err != nil {
					return err
				}
			}
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	// Cancelled while the last files were in hand, every worker may have
	// found nothing left and returned nil: that is not a finished run.
	return ctx.Err()
}
