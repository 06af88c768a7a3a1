package store

import (
	"context"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/releases"
)

// A site's run-time freeze is one JSON value under the site's name in the
// freezes bucket; a new freeze replaces it.

// SetFreeze records the site's run-time freeze.
func (s *DB) SetFreeze(ctx context.Context, f releases.Freeze) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
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
		return tx.Bucket(bucketFreezes).Delete([]byte(site))
	})
	if err != nil || !ok {
		return nil, err
	}
	return &f, nil
}
