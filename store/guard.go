package store

import (
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
