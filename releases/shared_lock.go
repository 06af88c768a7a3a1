package releases

import (
	"context"
	"errors"
	"fmt"
	"time"
)

// updateLock reads the site's lock and writes what change makes of it,
// again from a new read when another writer won; change returns false to
// write nothing.
func (s *SharedStore) updateLock(ctx context.Context, site Site, change func(st *lockState) (bool, error)) (lockState, error) {
	for try := 1; ; try++ {
		var st lockState
		var etag string
		cached := false
		if seen, ok := s.last.LoadAndDelete(site.Name); ok && try == 1 {
			st, etag, cached = seen.(lockSeen).st.clone(), seen.(lockSeen).etag, true
		} else {
			var err error
			if st, etag, err = s.readLock(ctx, site); err != nil {
				return st, err
			}
		}
		was := st.clone()
		if ok, err := change(&st); err != nil || !ok {
			if cached {
				// Nothing to write, or a refusal: decided on what this
				// process last saw, which another may have changed
				// since. Only a fresh read may answer that.
				continue
			}
			if etag != "" {
				s.last.Store(site.Name, lockSeen{st: was, etag: etag})
			}
			return was, err
		}
		st.Write = ""
		body, err := stampWrite(st)
		if err != nil {
			return was, err
		}
		newETag, err := s.put(ctx, site, StateLock, body, etag)
		if err == nil {
			s.last.Store(site.Name, lockSeen{st: st.clone(), etag: newETag})
			return was, nil
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return was, err
		}
	}
}

// clone copies st deeply enough that a change to the copy leaves st alone.
func (st lockState) clone() lockState {
	if st.Lock != nil {
		l := *st.Lock
		st.Lock = &l
	}
	if st.Deploy != nil {
		d := st.Deploy.clone()
		st.Deploy = &d
	}
	return st
}

// take acquires the site's lock for l, or names who holds it.
func (s *SharedStore) take(ctx context.Context, site Site, l Lock) error {
	return s.takeFor(ctx, site, l, nil)
}

// takeFor is take for deploy d, whose record goes with the lock.
func (s *SharedStore) takeFor(ctx context.Context, site Site, l Lock, d *Deploy) error {
	_, err := s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock != nil {
			if err := s.Cache.CacheLock(ctx, site.Name, st.Lock); err != nil {
				return false, err
			}
			return false, &LockedError{Lock: *st.Lock}
		}
		st.Lock, st.Epoch, st.Deploy = &l, st.Epoch+1, d
		return true, nil
	})
	return err
}

// SaveDeploy implements Store: recorded locally, then, while d holds the
// site's lock, in the bucket with it: one write per phase, so that any
// process can finish d if its runner dies.
func (s *SharedStore) SaveDeploy(ctx context.Context, d Deploy) error {
	if err := s.Store.SaveDeploy(ctx, d); err != nil {
		return err
	}
	site, err := s.site(d.Site)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != d.ID {
			return false, nil
		}
		if !runsHere(*st.Lock) {
			return false, fencedError(*st.Lock)
		}
		st.Deploy = keepControl(d, st.Deploy)
		return true, nil
	})
	return err
}

// keepControl is d with the rollout control as stored (people write it,
// from any process; the runner's copy never does), so that the runner's
// save does not undo a pause or an abort it has not read yet.
func keepControl(d Deploy, stored *Deploy) *Deploy {
	if d.Rollout != nil && stored != nil && stored.ID == d.ID && stored.Rollout != nil {
		ro := *d.Rollout
		ro.Control = stored.Rollout.Control
		d.Rollout = &ro
	}
	return &d
}

var _ RolloutStore = (*SharedStore)(nil)

// RunningDeploy implements RolloutStore: the deploy recorded with the
// site's lock, read from the bucket (one GET).
func (s *SharedStore) RunningDeploy(ctx context.Context, siteName string) (*Deploy, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readLock(ctx, site)
	if err != nil || st.Lock == nil || st.Deploy == nil || st.Deploy.ID != st.Lock.DeployID {
		return nil, err
	}
	d := *st.Deploy
	// Outside input (the bucket): a rollout's plan is checked as the
	// configuration's is before anything acts on it.
	if !d.Rollout.valid() || ValidateVersion(d.To) != nil || !SafeID(d.ID) {
		return nil, Errorf(EINTERNAL, "site %s: the rollout recorded with the lock in %s%s is not one deploybot writes; nothing was changed", site.Name, site.StatePrefix(), StateLock)
	}
	return &d, nil
}

// ControlRollout implements RolloutStore, by compare-and-swap of the lock
// object that holds the running deploy.
func (s *SharedStore) ControlRollout(ctx context.Context, siteName, deployID string, fn func(*RolloutControl) error) (Deploy, error) {
	site, err := s.site(siteName)
	if err != nil {
		return Deploy{}, err
	}
	var out Deploy
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Deploy == nil || st.Lock.DeployID != deployID || st.Deploy.ID != deployID || st.Deploy.Rollout == nil {
			return false, Errorf(ENOTFOUND, "site %s: the rollout %s no longer runs", site.Name, deployID)
		}
		if _, inRollout := rolloutIndex(*st.Deploy); !inRollout {
			return false, Errorf(ECONFLICT, "site %s: the rollout of %s has passed its last step and is making it live for everyone (phase %s); roll back once it ends", site.Name, st.Deploy.To, st.Deploy.Phase)
		}
		d := *st.Deploy
		ro := *d.Rollout
		if err := fn(&ro.Control); err != nil {
			return false, err
		}
		d.Rollout = &ro
		st.Deploy, out = &d, d
		return true, nil
	})
	return out, err
}

// runsHere reports whether this process runs the deploy or prune holding
// l: the one that took it, or took it over. A lock from a deploybot too
// old to name its process is anyone's.
func runsHere(l Lock) bool { return l.Process == "" || l.Process == processID }

// fencedError is the refusal of a write by a runner that lost l to
// another process.
func fencedError(l Lock) error {
	return Errorf(ECONFLICT, "%s of %s is run by %s now; this process no longer runs it: %w", lockWhat(l), l.Site, runnerText(l), ErrFenced)
}

// ImportRunning records locally the deploy holding the site's lock in the
// bucket, when this store lacks it or has fewer of its phases: a deploy
// another process started, which recovery here may have to finish.
func (s *SharedStore) ImportRunning(ctx context.Context, siteName string) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	st, _, err := s.readLock(ctx, site)
	if err != nil || st.Deploy == nil || st.Lock == nil || st.Deploy.ID != st.Lock.DeployID || st.Deploy.Site != site.Name {
		return err
	}
	d := *st.Deploy
	// The record is outside input (the bucket): recovery acts on its
	// versions, so they are checked as every door checks them.
	if d.Kind != KindPromote && d.Kind != KindRollback || ValidateVersion(d.To) != nil || d.From != "" && ValidateVersion(d.From) != nil || !SafeID(d.ID) || !d.Rollout.valid() {
		return Errorf(EINTERNAL, "site %s: the deploy recorded with the lock in %s%s is not one deploybot writes; nothing was recovered: remove the lock object once the site is checked", site.Name, site.StatePrefix(), StateLock)
	}
	if err := s.importLinks(ctx, site, d.ID); err != nil {
		return err
	}
	have, err := s.Store.Deploy(ctx, siteName, d.ID)
	switch {
	case ErrorCode(err) == ENOTFOUND:
		return s.Store.ImportDeploys(ctx, []Deploy{d})
	case err != nil:
		return err
	case len(have.Phases) < len(d.Phases) && !have.Phase.Final():
		return s.Store.SaveDeploy(ctx, d)
	}
	return nil
}

// free releases the site's lock if owns says it may, and returns the lock
// that was held (nil when none).
func (s *SharedStore) free(ctx context.Context, site Site, owns func(l Lock) (bool, error), after *Lock) (*Lock, error) {
	was, err := s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil {
			return false, nil
		}
		if ok, err := owns(*st.Lock); !ok || err != nil {
			return false, err
		}
		st.Lock, st.Deploy = after, nil
		return true, nil
	})
	return was.Lock, err
}

// Lock implements Store: the bucket's lock, cached locally.
func (s *SharedStore) Lock(ctx context.Context, siteName string) (*Lock, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readLock(ctx, site)
	if err != nil {
		return nil, err
	}
	if err := s.Cache.CacheLock(ctx, siteName, st.Lock); err != nil {
		return nil, err
	}
	return st.Lock, nil
}

// AcquireLock implements Store: a person's lock, taken in the bucket.
func (s *SharedStore) AcquireLock(ctx context.Context, l Lock) error {
	site, err := s.site(l.Site)
	if err != nil {
		return err
	}
	if err := s.take(ctx, site, l); err != nil {
		return err
	}
	return s.Cache.CacheLock(ctx, l.Site, &l)
}

// ReleaseLock implements Store: a person's lock, freed in the bucket; a
// running deploy's is not.
func (s *SharedStore) ReleaseLock(ctx context.Context, siteName string) (*Lock, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	held, err := s.free(ctx, site, func(l Lock) (bool, error) {
		if l.DeployID != "" {
			return false, Errorf(ECONFLICT, "site %s is locked by %s, which releases it when it ends", siteName, lockWhat(l))
		}
		return true, nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return held, s.Cache.CacheLock(ctx, siteName, nil)
}

// ReleaseLockOf implements Store.
func (s *SharedStore) ReleaseLockOf(ctx context.Context, siteName, owner string) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	held, err := s.free(ctx, site, func(l Lock) (bool, error) { return l.DeployID == owner, nil }, nil)
	if err != nil {
		return err
	}
	if held != nil && held.DeployID != owner {
		return s.Cache.CacheLock(ctx, siteName, held)
	}
	return s.Cache.CacheLock(ctx, siteName, nil)
}

// StartDeploy implements Store: the lock is taken in the bucket, then the
// deploy is recorded locally with it.
func (s *SharedStore) StartDeploy(ctx context.Context, d Deploy, lock Lock) error {
	site, err := s.site(d.Site)
	if err != nil {
		return err
	}
	if err := s.takeFor(ctx, site, lock, &d); err != nil {
		return err
	}
	err = s.Cache.RecordStart(ctx, d, lock)
	if err != nil {
		// Not recorded: the lock goes back, or it would name a deploy no
		// store knows.
		_, _ = s.free(context.WithoutCancel(ctx), site, func(l Lock) (bool, error) { return l.DeployID == d.ID, nil }, nil)
	}
	return err
}

// TouchLock implements Store: the heartbeat goes to the bucket, where
// other replicas judge whether the runner is alive.
func (s *SharedStore) TouchLock(ctx context.Context, l Lock) error {
	if err := s.Store.TouchLock(ctx, l); err != nil {
		return err
	}
	site, err := s.site(l.Site)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != l.DeployID {
			// Freed or taken by someone else: whoever freed it took
			// this runner for gone (recovery), so it must stop.
			held := "nobody"
			if st.Lock != nil {
				held = lockWhat(*st.Lock)
			}
			return false, Errorf(ECONFLICT, "%s no longer holds the lock of %s (held by %s now); this process stops it: %w", lockWhat(l), l.Site, held, ErrFenced)
		}
		// The runner claiming the lock it took a moment ago says nothing
		// new: no write.
		if h := st.Lock; h.Host == l.Host && h.PID == l.PID && h.Process == l.Process && l.Heartbeat.Sub(h.Heartbeat) < time.Second {
			return false, nil
		}
		// Another runner whose heartbeat is fresh holds the deploy (it
		// took it over, or this one was taken for gone while it was
		// cut off): this one is fenced out, not let back in.
		if h := st.Lock; h.Process != "" && h.Process != l.Process && l.Heartbeat.Sub(h.Heartbeat) < staleAfter*DefaultHeartbeat {
			return false, Errorf(ECONFLICT, "deploy %s of %s is run by %s now (alive %s ago); this process no longer runs it: %w",
				l.DeployID, l.Site, runnerText(*h), l.Heartbeat.Sub(h.Heartbeat).Round(time.Second), ErrFenced)
		}
		st.Lock.Host, st.Lock.PID, st.Lock.Process, st.Lock.Heartbeat, st.Lock.Left = l.Host, l.PID, l.Process, l.Heartbeat, false
		return true, nil
	})
	return err
}

// TakeOver names l's runner (this process) as the runner of the deploy
// holding the site's lock, in place of from, the runner recovery judged
// gone (a dead pid on this host, or stale heartbeats). Of processes
// taking over at once, one write wins; the others then find a runner
// other than from and are fenced (ErrFenced).
func (s *SharedStore) TakeOver(ctx context.Context, l, from Lock) error {
	site, err := s.site(l.Site)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		h := st.Lock
		switch {
		case h == nil || h.DeployID != l.DeployID:
			return false, Errorf(ECONFLICT, "deploy %s no longer holds the lock of %s; nothing to take over: %w", l.DeployID, l.Site, ErrFenced)
		case h.Process == l.Process && h.Host == l.Host && h.PID == l.PID:
			return false, nil // this process's already
		case h.Process != from.Process || h.Host != from.Host || h.PID != from.PID:
			return false, fencedError(*h)
		}
		st.Lock.Host, st.Lock.PID, st.Lock.Process, st.Lock.Heartbeat, st.Lock.Left = l.Host, l.PID, l.Process, l.Heartbeat, false
		return true, nil
	})
	if err != nil {
		return err
	}
	return s.Store.TouchLock(ctx, l)
}

// LeaveRun marks the runner of deploy id in the site's lock as gone (this
// process stops: a shutdown), so another replica resumes it at once
// rather than after the missed heartbeats. The lock stays the deploy's.
func (s *SharedStore) LeaveRun(ctx context.Context, siteName, id string) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != id || !runsHere(*st.Lock) || st.Lock.Left {
			return false, nil
		}
		st.Lock.Left = true
		return true, nil
	})
	return err
}

// FinishDeploy implements Store: recorded locally first (the truth of
// what happened is never lost to a bucket that does not answer), then the
// bucket's lock is freed, or handed over to d.LockAfter.
//
// A runner another process took over since its last heartbeat must not
// record an end at all: its record would say done (or failed) while the
// other still runs the deploy, and, mirrored first, it would be the
// history's (a record is written once) whatever the other decides. So
// the bucket's lock is read first, and a fenced runner records nothing:
// one whose lock names another runner, or no longer names d at all
// (whoever freed it took this runner for gone, as TouchLock says). What
// is left is a takeover landing between that read and the local write
// (the free after it is still refused, and says so). A bucket that does
// not answer the read does not keep the end from being recorded.
func (s *SharedStore) FinishDeploy(ctx context.Context, d Deploy, live *Live) error {
	site, err := s.site(d.Site)
	if err != nil {
		return err
	}
	if st, _, err := s.readLock(ctx, site); err == nil {
		switch h := st.Lock; {
		case h == nil || h.DeployID != d.ID:
			held := "nobody"
			if h != nil {
				held = lockWhat(*h)
			}
			return Errorf(ECONFLICT, "deploy %s no longer holds the lock of %s (held by %s now); this process records no end of it: %w", d.ID, d.Site, held, ErrFenced)
		case !runsHere(*h):
			return fencedError(*h)
		}
	}
	if err := s.Store.FinishDeploy(ctx, d, live); err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != d.ID {
			return false, nil
		}
		if !runsHere(*st.Lock) {
			return false, fencedError(*st.Lock)
		}
		st.Lock, st.Deploy = d.LockAfter, nil
		if live != nil {
			st.Live = live
		}
		return true, nil
	})
	if errors.Is(err, ErrFenced) {
		return err
	}
	if err != nil {
		return fmt.Errorf("deploy %s is recorded, but freeing the site's lock in the bucket failed (deploybot recover frees it): %w", d.ID, err)
	}
	return nil
}

// Live implements Store: the live pointer the bucket's lock object
// carries (one read), cached locally; the local store's when the bucket
// has none yet.
func (s *SharedStore) Live(ctx context.Context, siteName string) (Live, bool, error) {
	site, err := s.site(siteName)
	if err != nil {
		return Live{}, false, err
	}
	st, _, err := s.readLock(ctx, site)
	if err != nil {
		return Live{}, false, err
	}
	local, ok, err := s.Store.Live(ctx, siteName)
	if err != nil || st.Live == nil {
		return local, ok, err
	}
	if !ok || !local.same(*st.Live) {
		if err := s.Store.SetLive(ctx, siteName, *st.Live); err != nil {
			return Live{}, false, err
		}
	}
	return *st.Live, true, nil
}

// SetLive implements Store: a live pointer moved outside a deploy
// (reconcile found drift) is shared like a deploy's.
func (s *SharedStore) SetLive(ctx context.Context, siteName string, live Live) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	if _, err := s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Live != nil && st.Live.same(live) {
			return false, nil
		}
		st.Live = &live
		return true, nil
	}); err != nil {
		return err
	}
	return s.Store.SetLive(ctx, siteName, live)
}

// same reports whether l and o say the same (times compared as instants:
// one read back from JSON has another location).
func (l Live) same(o Live) bool {
	return l.Version == o.Version && l.DeployID == o.DeployID && l.Since.Equal(o.Since)
}
