package releases

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"sync"
	"time"
)

// Who runs a deploy. A deploy runs in one process (serve, or a command
// line promote); if that process dies, the deploy stays in its phase with
// the site locked until someone finishes it from the truth in AWS
// (Recover). To tell a deploy that is slow from one whose runner is gone,
// the lock names the runner (host and pid) and carries a heartbeat the
// runner refreshes while the deploy runs.

var (
	// running holds the ids of the deploys and prunes this process runs,
	// whichever Service runs them, so that nothing here takes a live one
	// for abandoned.
	running sync.Map
	// processID tells this process from every other that ever ran, which
	// a pid cannot: a restarted container is pid 1 again.
	processID = newProcessID()
)

func newProcessID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// DefaultHeartbeat is how often a running deploy refreshes its lock's
// heartbeat: one small store write per site every ten seconds while a
// deploy runs, nothing otherwise.
const DefaultHeartbeat = 10 * time.Second

// staleAfter is how many heartbeats may be missed before the runner is
// taken for gone (20 s by default): long enough for a slow disk or a GC
// pause, short enough that another replica finishes a killed replica's
// deploy within half a minute. A runner that was only paused and comes
// back finds its lock taken over and stops (fencing, ErrFenced), so a
// short wait costs no double flip.
const staleAfter = 2

func (s *Service) heartbeat() time.Duration {
	if s.Heartbeat > 0 {
		return s.Heartbeat
	}
	return DefaultHeartbeat
}

// runner is this process as a lock names it.
func (s *Service) runner() (host string, pid int) {
	host, pid = s.Host, s.PID
	if host == "" {
		host, _ = os.Hostname()
	}
	if pid == 0 {
		pid = os.Getpid()
	}
	return host, pid
}

// RunnerGone reports whether the process that runs the deploy holding l is
// gone, so the deploy will not finish by itself. A lock with no deploy is
// a person's and never gone. On the runner's own host a dead pid is
// certain; a runner that stopped says so (Left). Elsewhere (another pod,
// another machine) the heartbeat decides, read against this process's
// own clock, never against the runner's: a heartbeat this process has
// watched stay the same for two intervals (20 s) is a dead runner's,
// whatever the two clocks say. One it has not watched (a command line
// asking once) is judged by its age, with clockSkew to spare, so a
// runner whose clock is behind is not taken for dead. A lock written by
// a deploybot too old to name its runner is taken for gone: such a
// process could not have shared the store with this one.
func (s *Service) RunnerGone(l Lock) bool {
	if l.DeployID == "" {
		return false
	}
	if _, alive := running.Load(l.DeployID); alive {
		return false
	}
	if l.Host == "" || l.Process == processID || l.Left {
		return true // an older deploybot's, or interrupted in this very process
	}
	host, pid := s.runner()
	if l.Host == host {
		if l.PID == pid {
			return true // an earlier process with this pid (a restarted container)
		}
		if s.ProcessAlive != nil && !s.ProcessAlive(l.PID) {
			return true
		}
	}
	now, stale := s.now(), staleAfter*s.heartbeat()
	if s.unchangedFor(l, now) > stale {
		return true
	}
	return now.Sub(l.lastAlive()) > stale+clockSkew
}

// clockSkew is how far the clocks of two processes may disagree before
// one that has not watched the other's heartbeat takes it for dead.
const clockSkew = 2 * time.Minute

// beatSeen is a runner's heartbeat as this process first saw it.
type beatSeen struct {
	heartbeat time.Time // as the runner wrote it
	process   string
	since     time.Time // this process's clock when it first saw it
}

// unchangedFor is how long, by this process's clock, l's heartbeat has
// been what it is now (zero the first time it is seen).
func (s *Service) unchangedFor(l Lock, now time.Time) time.Duration {
	seen := beatSeen{heartbeat: l.Heartbeat, process: l.Process, since: now}
	v, loaded := s.beats.LoadOrStore(l.DeployID, seen)
	if !loaded {
		// A new deploy: forget those not seen for a day (a deploy lasts
		// minutes), so the map holds today's deploys at most.
		s.beats.Range(func(k, v any) bool {
			if now.Sub(v.(beatSeen).since) > 24*time.Hour {
				s.beats.Delete(k)
			}
			return true
		})
		return 0
	}
	old := v.(beatSeen)
	if old.heartbeat.Equal(l.Heartbeat) && old.process == l.Process {
		return now.Sub(old.since)
	}
	s.beats.Store(l.DeployID, seen)
	return 0
}

// lastAlive is when the lock's runner last said it was alive.
func (l Lock) lastAlive() time.Time {
	if l.Heartbeat.IsZero() {
		return l.Since
	}
	return l.Heartbeat
}

// lockError is the refusal for a held lock, saying when the deploy holding
// it has lost its runner and how to finish it.
func (s *Service) lockError(l Lock) *LockedError {
	return &LockedError{Lock: l, RunnerGone: s.RunnerGone(l)}
}

// claimRun names this process as the runner of d in the site's lock (a
// resumed deploy takes it over from from, its runner judged gone); an
// error wrapping
// ErrFenced when another live process runs d, which this one must then
// leave alone. Any other failure to record the runner is logged and the
// deploy goes on: the lock is still d's.
func (s *Service) claimRun(ctx context.Context, d *Deploy, from *Lock) (Lock, error) {
	host, pid := s.runner()
	claim := Lock{Site: d.Site, DeployID: d.ID, Host: host, PID: pid, Process: processID, Heartbeat: s.now()}
	var err error
	if sh, ok := s.Store.(*SharedStore); ok && from != nil {
		err = sh.TakeOver(context.WithoutCancel(ctx), claim, *from)
	} else {
		err = s.Store.TouchLock(context.WithoutCancel(ctx), claim)
	}
	if errors.Is(err, ErrFenced) {
		return claim, err
	}
	if err != nil {
		s.logger().WarnContext(ctx, "recording the deploy's runner", "site", d.Site, "deploy_id", d.ID, "err", err)
	}
	return claim, nil
}

// beat keeps the heartbeat of l fresh until ctx ends or stop is closed;
// when the lock turns out to be run by another process, fenced is called
// with the error (wrapping ErrFenced) and the beat stops. It ticks on the
// wall clock (a test's fast After would spin it) but records the
// service's clock, which RunnerGone compares against.
func (s *Service) beat(ctx context.Context, l Lock, stop <-chan struct{}, fenced func(error)) {
	t := time.NewTicker(s.heartbeat())
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-stop:
			return
		case <-t.C:
			l.Heartbeat = s.now()
			// Not cancelled with the deploy, but bounded: a write still
			// unanswered after a heartbeat (a stuck connection) is given
			// up, and the next beat tries again, on another.
			beatCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), s.heartbeat())
			err := s.Store.TouchLock(beatCtx, l)
			cancel()
			if errors.Is(err, ErrFenced) {
				select {
				case <-stop:
					return // it ended meanwhile and freed the lock itself
				default:
				}
				s.logger().ErrorContext(ctx, "the deploy's lock is run by another process now; stopping", "site", l.Site, "deploy_id", l.DeployID, "err", err)
				fenced(err)
				return
			}
			if err != nil {
				s.logger().WarnContext(ctx, "refreshing the deploy's heartbeat", "site", l.Site, "deploy_id", l.DeployID, "err", err)
			}
		}
	}
}

// runnerText names a lock's runner for people.
func runnerText(l Lock) string {
	if l.Host == "" {
		return "an older deploybot"
	}
	if l.Left {
		return fmt.Sprintf("host %s, pid %d, stopped", l.Host, l.PID)
	}
	return fmt.Sprintf("host %s, pid %d", l.Host, l.PID)
}

// recoverHint says what finishes a deploy whose runner is gone; the
// door names how (HintRecover).
func recoverHint() string {
	return "recovery finishes it from what AWS serves (deploybot serve does when it starts)"
}
