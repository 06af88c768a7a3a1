package releases_test

import (
	"context"
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
)

// A deploy's runner is gone when its process is dead (known at once on its
// own host) or its heartbeat is older than two intervals and the clock
// skew allowed (elsewhere, seen once); a person's lock never has a
// runner.
func TestRunnerGone(t *testing.T) {
	now := testclock.At(10, 0)
	alive := map[int]bool{100: true}
	svc := &releases.Service{Host: "here", PID: 42, Heartbeat: 10 * time.Second, Now: func() time.Time { return now },
		ProcessAlive: func(pid int) bool { return alive[pid] }}
	deploy := func(host string, pid int, beat time.Duration) releases.Lock {
		return releases.Lock{Site: "www", Holder: "alice", DeployID: "d1", Since: now.Add(-time.Hour), Host: host, PID: pid, Process: "other", Heartbeat: now.Add(-beat)}
	}
	cases := []struct {
		name string
		lock releases.Lock
		gone bool
	}{
		{"a person's lock", releases.Lock{Site: "www", Holder: "bob", Reason: "freeze", Since: now.Add(-24 * time.Hour)}, false},
		{"written by a deploybot that named no runner", releases.Lock{Site: "www", Holder: "alice", DeployID: "d1", Since: now}, true},
		{"this host, live pid, fresh heartbeat", deploy("here", 100, time.Second), false},
		{"this host, dead pid, fresh heartbeat", deploy("here", 101, time.Second), true},
		{"this host, our own pid in an earlier process", deploy("here", 42, time.Second), true},
		{"another host, fresh heartbeat", deploy("there", 7, 19*time.Second), false},
		// Seen once: its clock may be behind this one's.
		{"another host, two heartbeats missed, not watched", deploy("there", 7, 21*time.Second), false},
		{"another host, heartbeat older than two intervals and the clock skew", deploy("there", 7, 2*time.Minute+21*time.Second), true},
		{"this host, live pid, heartbeat long stale (paused, or a reused pid)", deploy("here", 100, time.Hour), true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := svc.RunnerGone(c.lock); got != c.gone {
				t.Fatalf("RunnerGone = %v, want %v", got, c.gone)
			}
		})
	}
}

// checkingStore asks, the moment a deploy's lock is written, whether its
// runner looks gone: the window in which another door of the same process
// could take a starting deploy for abandoned.
type checkingStore struct {
	*store.DB
	svc  *releases.Service
	gone []bool
}

func (c *checkingStore) StartDeploy(ctx context.Context, d releases.Deploy, l releases.Lock) error {
	if err := c.DB.StartDeploy(ctx, d, l); err != nil {
		return err
	}
	held, _ := c.DB.Lock(ctx, d.Site)
	c.gone = append(c.gone, c.svc.RunnerGone(*held))
	return nil
}

func TestAStartingDeployIsNeverTakenForAbandoned(t *testing.T) {
	h := newHarness(t)
	h.publish("v1")
	cs := &checkingStore{DB: h.db, svc: h.svc}
	h.svc.Store = cs
	h.promote(t, "v1")
	if len(cs.gone) != 1 || cs.gone[0] {
		t.Fatalf("RunnerGone right after the lock was written: %v", cs.gone)
	}
}

// A heartbeat watched by this process is judged on this process's clock:
// the same heartbeat seen for two intervals is a dead runner's, however
// fresh it looks by the runner's clock, and a heartbeat that moves on is
// a live runner's, however old it looks.
func TestRunnerGoneByAHeartbeatWatched(t *testing.T) {
	now := testclock.At(10, 0)
	svc := &releases.Service{Host: "here", PID: 42, Heartbeat: 10 * time.Second, Now: func() time.Time { return now }}
	// The runner's clock is a minute behind this one.
	l := releases.Lock{Site: "www", Holder: "alice", DeployID: "d1", Since: now.Add(-time.Hour), Host: "there", PID: 7, Process: "other", Heartbeat: now.Add(-time.Minute)}
	for range 6 {
		now = now.Add(10 * time.Second)
		l.Heartbeat = l.Heartbeat.Add(10 * time.Second)
		if svc.RunnerGone(l) {
			t.Fatalf("a runner beating every 10 s (its clock a minute behind) was taken for gone at %s", now)
		}
	}
	// It stops beating: gone once this process has seen the same
	// heartbeat for two intervals.
	now = now.Add(19 * time.Second)
	if svc.RunnerGone(l) {
		t.Fatal("gone after 19 s of the same heartbeat")
	}
	now = now.Add(2 * time.Second)
	if !svc.RunnerGone(l) {
		t.Fatal("not gone after 21 s of the same heartbeat")
	}
}
