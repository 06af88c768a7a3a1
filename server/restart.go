package server

import (
	"context"
	"log/slog"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws/retry"
)

// restartMaxDelay bounds the pause before a stopped worker is started
// again; a worker that ran this long before it stopped starts over from
// the shortest pause.
const restartMaxDelay = 5 * time.Minute

// Restarting runs run until ctx ends, starting it again whenever it stops
// with an error: the Slack socket gives up when Slack refuses to open a
// connection for a while (an outage, a token being rotated), and a
// replica without it still takes the hook and the API but answers no
// command until it is back. The pauses grow with jittered exponential
// back-off (the AWS SDK's, up to five minutes), so a lasting refusal
// costs a call every few minutes, not a busy loop. delay, when set,
// replaces that back-off (tests); restarted is told of every restart.
func Restarting(name string, log *slog.Logger, run func(context.Context) error, delay func(attempt int, err error) time.Duration, restarted func()) func(context.Context) error {
	if delay == nil {
		b := retry.NewExponentialJitterBackoff(restartMaxDelay)
		delay = func(attempt int, err error) time.Duration {
			d, _ := b.BackoffDelay(attempt, err)
			return d
		}
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return func(ctx context.Context) error {
		attempt := 0
		for {
			started := time.Now()
			err := run(ctx)
			if ctx.Err() != nil {
				return nil
			}
			if time.Since(started) > restartMaxDelay {
				attempt = 0
			}
			attempt++
			d := delay(attempt, err)
			log.Error(name+" stopped; starting it again", "err", err, "attempt", attempt, "in", d.Round(time.Millisecond).String())
			if restarted != nil {
				restarted()
			}
			t := time.NewTimer(d)
			select {
			case <-ctx.Done():
				t.Stop()
				return nil
			case <-t.C:
			}
		}
	}
}
