package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/releases"
)

// A site's run-time freeze is one JSON value under the site's name in the
// freezes bucket; a new freeze replaces it.

// SetFreeze records the site's run-time freeze.
func (s *DB) SetFreeze(ctx context.Context, f releases.Freeze) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		if err := enqueue(tx, f.Site, releases.HistoryFreeze, true, releases.FreezeState{Freeze: &f}); err != nil {
			return err
		}
		return putJSON(tx.Bucket(bucketFreezes), f.Site, f)
	})
}

// SwapFreeze replaces the site's run-time freeze with f (nil: removes it)
// while it is still was, in one transaction.
func (s *DB) SwapFreeze(ctx context.Context, site string, was, f *releases.Freeze) (*releases.Freeze, error) {
	var before *releases.Freeze
	err := s.with(ctx, true, func(tx *bolt.Tx) error {
		var cur releases.Freeze
		ok, err := getJSON(tx.Bucket(bucketFreezes), site, &cur)
		if err != nil {
			return err
		}
		if ok {
			before = &cur
		}
		if !releases.SameFreeze(before, was) {
			return releases.FreezeChanged(site, before)
		}
		if releases.SameFreeze(before, f) {
			return nil
		}
		if err := enqueue(tx, site, releases.HistoryFreeze, true, releases.FreezeState{Freeze: f}); err != nil {
			return err
		}
		if f == nil {
			return tx.Bucket(bucketFreezes).Delete([]byte(site))
		}
		return putJSON(tx.Bucket(bucketFreezes), site, *f)
	})
	if err != nil {
		return nil, err
	}
	return before, nil
}

// Freeze returns the site's run-time freeze, nil when none.
func (s *DB) Freeze(ctx context.Context, site string) (*releases.Freeze, error) {
	var f releases.Freeze
	var ok bool
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		var err error
		ok, err = getJSON(tx.Bucket(bucketFreezes), site, &f)
		return err
	})
	if err != nil || !ok {
		return nil, err
	}
	return &f, nil
}

// DeleteFreeze removes the site's run-time freeze and returns it.
func (s *DB) DeleteFreeze(ctx context.Context, site string) (*releases.Freeze, error) {
	var f releases.Freeze
	var ok bool
	err := s.with(ctx, true, func(tx *bolt.Tx) error {
		var err error
		if ok, err = getJSON(tx.Bucket(bucketFreezes), site, &f); err != nil || !ok {
			return err
		}
		if err := enqueue(tx, site, releases.HistoryFreeze, true, releases.FreezeState{}); err != nil {
			return err
		}
		return tx.Bucket(bucketFreezes).Delete([]byte(site))
	})
	if err != nil || !ok {
		return nil, err
	}
	return &f, nil
}

// Approval requests live per site under their id, which sorts by time
// (the deploy ids' format), so the newest are read first.

// CreateApproval records a new request unless another of the site is
// pending and unexpired at a.Requested. Finding that one reads every
// request of the site (about 500 bytes each; one per promote asked on an
// approval site), which costs milliseconds at tens of thousands.
func (s *DB) CreateApproval(ctx context.Context, a releases.ApprovalRequest) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b, err := siteBucket(tx, bucketApproval, a.Site, true)
		if err != nil {
			return err
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var p releases.ApprovalRequest
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("store: decoding approval %s: %w", k, err)
			}
			if p.Pending(a.Requested) {
				return &releases.PendingError{Request: p}
			}
		}
		if b.Get([]byte(a.ID)) != nil {
			return releases.Errorf(releases.ECONFLICT, "approval request %s exists", a.ID)
		}
		return putJSON(b, a.ID, a)
	})
}

// UpdateApproval changes one request in one transaction.
func (s *DB) UpdateApproval(ctx context.Context, site, id string, fn func(*releases.ApprovalRequest) error) (releases.ApprovalRequest, error) {
	var a releases.ApprovalRequest
	err := s.with(ctx, true, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketApproval, site, false)
		ok, err := getJSON(b, id, &a)
		if err != nil {
			return err
		}
		if !ok {
			return releases.Errorf(releases.ENOTFOUND, "site %s has no approval request %q", site, id)
		}
		if err := fn(&a); err != nil {
			return err
		}
		return putJSON(b, id, a)
	})
	return a, err
}

// Approval returns one request.
func (s *DB) Approval(ctx context.Context, site, id string) (releases.ApprovalRequest, error) {
	var a releases.ApprovalRequest
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketApproval, site, false)
		ok, err := getJSON(b, id, &a)
		if err == nil && !ok {
			err = releases.Errorf(releases.ENOTFOUND, "site %s has no approval request %q", site, id)
		}
		return err
	})
	return a, err
}

// Approvals returns the newest requests first.
func (s *DB) Approvals(ctx context.Context, site string, limit int) ([]releases.ApprovalRequest, error) {
	var out []releases.ApprovalRequest
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketApproval, site, false)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var a releases.ApprovalRequest
			if err := json.Unmarshal(v, &a); err != nil {
				return fmt.Errorf("store: decoding approval %s: %w", k, err)
			}
			out = append(out, a)
			if limit > 0 && len(out) == limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// SyncedAt is when the site was last synced with its bucket.
func (s *DB) SyncedAt(ctx context.Context, site string) (time.Time, error) {
	var at time.Time
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		_, err := getJSON(tx.Bucket(bucketMeta), "synced/"+site, &at)
		return err
	})
	return at, err
}

// SetSyncedAt records when the site was synced.
func (s *DB) SetSyncedAt(ctx context.Context, site string, at time.Time) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketMeta), "synced/"+site, at)
	})
}

// CacheFreeze records the site's run-time freeze as the bucket holds it
// (nil: none), unconditionally: the shared state is the truth and this is
// its cache (releases.SharedStore). Nothing is mirrored: the bucket has it.
func (s *DB) CacheFreeze(ctx context.Context, site string, f *releases.Freeze) error {
	var raw []byte
	if f != nil {
		var err error
		if raw, err = json.Marshal(f); err != nil {
			return err
		}
	}
	return s.cache(ctx, bucketFreezes, site, raw)
}

// CacheLock records the site's lock as the bucket holds it (nil: free),
// unconditionally; see CacheFreeze.
func (s *DB) CacheLock(ctx context.Context, site string, l *releases.Lock) error {
	var raw []byte
	if l != nil {
		var err error
		if raw, err = json.Marshal(l); err != nil {
			return err
		}
	}
	return s.cache(ctx, bucketLocks, site, raw)
}

// cache sets key of bucket to want (nil deletes it). Every read of the
// shared state lands here, so the value is compared in a read transaction
// first and written, with its fsync, only when it changed.
func (s *DB) cache(ctx context.Context, bucket []byte, key string, want []byte) error {
	same := false
	if err := s.with(ctx, false, func(tx *bolt.Tx) error {
		have := tx.Bucket(bucket).Get([]byte(key))
		same = bytes.Equal(have, want) && (have == nil) == (want == nil)
		return nil
	}); err != nil || same {
		return err
	}
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		if want == nil {
			return tx.Bucket(bucket).Delete([]byte(key))
		}
		return tx.Bucket(bucket).Put([]byte(key), want)
	})
}

var _ releases.StateCache = (*DB)(nil)

// CacheApproval records a request as the bucket holds it, replacing what
// the store had under its id; see CacheFreeze.
func (s *DB) CacheApproval(ctx context.Context, a releases.ApprovalRequest) error {
	raw, err := json.Marshal(a)
	if err != nil {
		return err
	}
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b, err := siteBucket(tx, bucketApproval, a.Site, true)
		if err != nil {
			return err
		}
		if bytes.Equal(b.Get([]byte(a.ID)), raw) {
			return nil
		}
		return b.Put([]byte(a.ID), raw)
	})
}

// CachePins records the site's pins as the bucket holds them, replacing
// what the store had; see CacheFreeze. Compared first, written only when
// they differ (every listing of versions reads them).
func (s *DB) CachePins(ctx context.Context, site string, pins []releases.Pin) error {
	want := map[string][]byte{}
	for _, p := range pins {
		raw, err := json.Marshal(p)
		if err != nil {
			return err
		}
		want[p.Version] = raw
	}
	have := map[string][]byte{}
	if err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketPins, site, false)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			have[string(k)] = append([]byte(nil), v...)
			return nil
		})
	}); err != nil {
		return err
	}
	if len(have) == len(want) {
		same := true
		for k, v := range want {
			same = same && bytes.Equal(have[k], v)
		}
		if same {
			return nil
		}
	}
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b, err := siteBucket(tx, bucketPins, site, true)
		if err != nil {
			return err
		}
		for k := range have {
			if _, ok := want[k]; !ok {
				if err := b.Delete([]byte(k)); err != nil {
					return err
				}
			}
		}
		for k, v := range want {
			if err := b.Put([]byte(k), v); err != nil {
				return err
			}
		}
		return nil
	})
}
