package store

import (
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/releases"
)

// StartDeploy takes the lock and records d, atomically.
func (s *DB) StartDeploy(ctx context.Context, d releases.Deploy, lock releases.Lock) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		var held releases.Lock
		ok, err := getJSON(tx.Bucket(bucketLocks), d.Site, &held)
		if err != nil {
			return err
		}
		if ok {
			return &releases.LockedError{Lock: held}
		}
		return recordStart(tx, d, lock, false)
	})
}

// RecordStart records a deploy started under a lock taken elsewhere (the
// shared state in the bucket): the deploy, and the lock as the cache of
// it, whatever the cache held. A reader sharing this store (status,
// recover) may have imported this very deploy from the bucket between
// the lock's write and this call; the lock there names this deploy, so
// the copy can only be its own start, and the runner's record replaces
// it instead of failing a deploy that holds the site.
func (s *DB) RecordStart(ctx context.Context, d releases.Deploy, lock releases.Lock) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error { return recordStart(tx, d, lock, true) })
}

// recordStart puts a new deploy and the lock it holds; an existing deploy
// of that id is a conflict unless imported says it is a copy of this one.
func recordStart(tx *bolt.Tx, d releases.Deploy, lock releases.Lock, imported bool) error {
	b, err := siteBucket(tx, bucketDeploys, d.Site, true)
	if err != nil {
		return err
	}
	if !imported && b.Get([]byte(d.ID)) != nil {
		return releases.Errorf(releases.ECONFLICT, "deploy %s exists", d.ID)
	}
	if err := putJSON(b, d.ID, d); err != nil {
		return err
	}
	return putJSON(tx.Bucket(bucketLocks), d.Site, lock)
}

// SaveDeploy records d's progress.
func (s *DB) SaveDeploy(ctx context.Context, d releases.Deploy) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketDeploys, d.Site, false)
		if b == nil || b.Get([]byte(d.ID)) == nil {
			return releases.Errorf(releases.ENOTFOUND, "deploy %s of site %s was never started", d.ID, d.Site)
		}
		return putJSON(b, d.ID, d)
	})
}

// FinishDeploy records the final deploy, the live pointer and frees the
// lock (or hands it over to d.LockAfter) in one transaction, so no reader
// sees one without the others.
func (s *DB) FinishDeploy(ctx context.Context, d releases.Deploy, live *releases.Live) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketDeploys, d.Site, false)
		if b == nil || b.Get([]byte(d.ID)) == nil {
			return releases.Errorf(releases.ENOTFOUND, "deploy %s of site %s was never started", d.ID, d.Site)
		}
		if err := putJSON(b, d.ID, d); err != nil {
			return err
		}
		if err := enqueue(tx, d.Site, releases.HistoryDeploys+d.ID+".json", false, d); err != nil {
			return err
		}
		if live != nil {
			if err := putJSON(tx.Bucket(bucketLive), d.Site, live); err != nil {
				return err
			}
		}
		locks := tx.Bucket(bucketLocks)
		var held releases.Lock
		ok, err := getJSON(locks, d.Site, &held)
		switch {
		case err != nil:
			return err
		case ok && held.DeployID != d.ID:
			return nil // someone else's lock (the deploy lost its own)
		case d.LockAfter != nil:
			if err := enqueueLock(tx, d.Site, d.LockAfter); err != nil {
				return err
			}
			return putJSON(locks, d.Site, d.LockAfter)
		case ok:
			return locks.Delete([]byte(d.Site))
		}
		return nil
	})
}

// Deploy returns one deploy.
func (s *DB) Deploy(ctx context.Context, site, id string) (releases.Deploy, error) {
	var d releases.Deploy
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketDeploys, site, false)
		ok, err := getJSON(b, id, &d)
		if err == nil && !ok {
			err = releases.Errorf(releases.ENOTFOUND, "site %s has no deploy %s", site, id)
		}
		return err
	})
	return d, err
}

// Deploys returns the newest deploys first, walking the time-sorted keys
// backwards so a limit reads only what it returns.
func (s *DB) Deploys(ctx context.Context, site string, limit int) ([]releases.Deploy, error) {
	var out []releases.Deploy
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketDeploys, site, false)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var d releases.Deploy
			if err := json.Unmarshal(v, &d); err != nil {
				return fmt.Errorf("store: decoding deploy %s: %w", k, err)
			}
			out = append(out, d)
			if limit > 0 && len(out) == limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// Lock returns the site's lock, nil when free.
func (s *DB) Lock(ctx context.Context, site string) (*releases.Lock, error) {
	var l releases.Lock
	var ok bool
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		var err error
		ok, err = getJSON(tx.Bucket(bucketLocks), site, &l)
		return err
	})
	if err != nil || !ok {
		return nil, err
	}
	return &l, nil
}

// TouchLock updates the runner and heartbeat of the lock l.DeployID holds.
func (s *DB) TouchLock(ctx context.Context, l releases.Lock) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		var held releases.Lock
		ok, err := getJSON(tx.Bucket(bucketLocks), l.Site, &held)
		if err != nil || !ok || held.DeployID == "" || held.DeployID != l.DeployID {
			return err
		}
		held.Host, held.PID, held.Process, held.Heartbeat = l.Host, l.PID, l.Process, l.Heartbeat
		return putJSON(tx.Bucket(bucketLocks), l.Site, held)
	})
}

// AcquireLock takes a person's lock.
func (s *DB) AcquireLock(ctx context.Context, l releases.Lock) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		var held releases.Lock
		if ok, err := getJSON(tx.Bucket(bucketLocks), l.Site, &held); err != nil {
			return err
		} else if ok {
			return &releases.LockedError{Lock: held}
		}
		if err := enqueueLock(tx, l.Site, &l); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketLocks), l.Site, l)
	})
}

// ReleaseLock frees a person's lock, never a running deploy's.
func (s *DB) ReleaseLock(ctx context.Context, site string) (*releases.Lock, error) {
	var held releases.Lock
	var ok bool
	err := s.with(ctx, true, func(tx *bolt.Tx) error {
		var err error
		if ok, err = getJSON(tx.Bucket(bucketLocks), site, &held); err != nil || !ok {
			return err
		}
		if held.DeployID != "" {
			return releases.Errorf(releases.ECONFLICT, "site %s is locked by deploy %s, which releases it when it ends", site, held.DeployID)
		}
		if err := enqueueLock(tx, site, nil); err != nil {
			return err
		}
		return tx.Bucket(bucketLocks).Delete([]byte(site))
	})
	if err != nil || !ok {
		return nil, err
	}
	return &held, nil
}

// ReleaseLockOf frees the site's lock if owner holds it.
func (s *DB) ReleaseLockOf(ctx context.Context, site, owner string) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		var held releases.Lock
		if ok, err := getJSON(tx.Bucket(bucketLocks), site, &held); err != nil || !ok {
			return err
		}
		if held.DeployID != owner {
			return nil
		}
		return tx.Bucket(bucketLocks).Delete([]byte(site))
	})
}
