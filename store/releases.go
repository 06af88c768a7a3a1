package store

import (
	"context"
	"encoding/json"
	"fmt"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/releases"
)

// PutRelease records r unless that release is recorded (see putRelease).
func (s *DB) PutRelease(ctx context.Context, r releases.Release) (created bool, err error) {
	err = s.with(ctx, true, func(tx *bolt.Tx) error {
		created, err = putRelease(tx, r)
		return err
	})
	return created, err
}

// PutReleases records the releases not yet recorded, in one transaction.
func (s *DB) PutReleases(ctx context.Context, rs []releases.Release) ([]bool, error) {
	created := make([]bool, len(rs))
	if len(rs) == 0 {
		return created, nil
	}
	err := s.with(ctx, true, func(tx *bolt.Tx) error {
		for i, r := range rs {
			ok, err := putRelease(tx, r)
			if err != nil {
				return err
			}
			created[i] = ok
		}
		return nil
	})
	if err != nil {
		return nil, err
	}
	return created, nil
}

// reusedName reports whether r, read from a manifest now, is another
// release than old, the record of the same version. A pruned record read
// again from the very manifest it was read from (a prune stopped before it
// deleted the manifest) is the same release; without ETags to compare, a
// pruned name that has a manifest can only have been published again.
func reusedName(old, r releases.Release) bool {
	if old.Pruned {
		return old.ManifestETag == "" || old.ManifestETag != r.ManifestETag
	}
	return !old.SameAs(r)
}

// putRelease records r unless its version is recorded as the same release.
// A version name that retention pruned, or whose manifest is another
// object than the recorded one (releases.Release.SameAs), was published
// again: the new content gets a fresh record, and what belonged to the old
// one (its pin, its chat notice) goes with it, so nothing the old release
// earned (pruned, pinned, once live) carries over to a build nobody chose.
func putRelease(tx *bolt.Tx, r releases.Release) (created bool, err error) {
	b, err := siteBucket(tx, bucketReleases, r.Site, true)
	if err != nil {
		return false, err
	}
	var old releases.Release
	had, err := getJSON(b, r.Version, &old)
	if err != nil {
		return false, err
	}
	if had {
		if !reusedName(old, r) {
			return false, nil
		}
		r.Reused = true
		if pins, _ := siteBucket(tx, bucketPins, r.Site, false); pins != nil && pins.Get([]byte(r.Version)) != nil {
			if err := pins.Delete([]byte(r.Version)); err != nil {
				return false, err
			}
			if err := enqueuePins(tx, r.Site); err != nil {
				return false, err
			}
		}
		if links, _ := siteBucket(tx, bucketLinks, r.Site, false); links != nil {
			if err := links.Delete([]byte(releaseLinkKey + r.Version)); err != nil {
				return false, err
			}
		}
	}
	if err := putJSON(b, r.Version, r); err != nil {
		return false, err
	}
	return true, enqueue(tx, r.Site, releases.HistoryReleases+r.Version+".json", true, r)
}

// AnnotateRelease fills an empty commit and message of a release.
func (s *DB) AnnotateRelease(ctx context.Context, site, version, commit, message string) (releases.Release, error) {
	var r releases.Release
	err := s.with(ctx, true, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketReleases, site, false)
		ok, err := getJSON(b, version, &r)
		if err != nil {
			return err
		}
		if !ok {
			return releases.Errorf(releases.ENOTFOUND, "site %s has no recorded release %s", site, version)
		}
		if r.Commit == "" {
			r.Commit = commit
		}
		if r.Message == "" {
			r.Message = message
		}
		if err := putJSON(b, version, r); err != nil {
			return err
		}
		return enqueue(tx, site, releases.HistoryReleases+version+".json", true, r)
	})
	return r, err
}

// Release returns one recorded release.
func (s *DB) Release(ctx context.Context, site, version string) (releases.Release, error) {
	var r releases.Release
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketReleases, site, false)
		ok, err := getJSON(b, version, &r)
		if err == nil && !ok {
			err = releases.Errorf(releases.ENOTFOUND, "site %s has no recorded release %s", site, version)
		}
		return err
	})
	return r, err
}

// Releases returns the site's releases, newest first.
func (s *DB) Releases(ctx context.Context, site string) ([]releases.Release, error) {
	var out []releases.Release
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketReleases, site, false)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var r releases.Release
			if err := json.Unmarshal(v, &r); err != nil {
				return fmt.Errorf("store: decoding release %s: %w", k, err)
			}
			out = append(out, r)
			return nil
		})
	})
	releases.SortReleases(out)
	return out, err
}

// Live returns the site's live pointer.
func (s *DB) Live(ctx context.Context, site string) (live releases.Live, ok bool, err error) {
	err = s.with(ctx, false, func(tx *bolt.Tx) error {
		ok, err = getJSON(tx.Bucket(bucketLive), site, &live)
		return err
	})
	return live, ok, err
}

// SetLive moves the live pointer.
func (s *DB) SetLive(ctx context.Context, site string, live releases.Live) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		return putJSON(tx.Bucket(bucketLive), site, live)
	})
}

// MarkPruned flags a release as deleted by retention; it stays in history.
func (s *DB) MarkPruned(ctx context.Context, site, version string, at time.Time) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketReleases, site, false)
		var r releases.Release
		ok, err := getJSON(b, version, &r)
		if err != nil {
			return err
		}
		if !ok {
			return releases.Errorf(releases.ENOTFOUND, "site %s has no recorded release %s", site, version)
		}
		r.Pruned, r.PrunedAt = true, at
		if err := putJSON(b, version, r); err != nil {
			return err
		}
		return enqueue(tx, site, releases.HistoryReleases+version+".json", true, r)
	})
}

// SetPin pins a release.
func (s *DB) SetPin(ctx context.Context, p releases.Pin) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b, err := siteBucket(tx, bucketPins, p.Site, true)
		if err != nil {
			return err
		}
		if err := putJSON(b, p.Version, p); err != nil {
			return err
		}
		return enqueuePins(tx, p.Site)
	})
}

// DeletePin releases a pin.
func (s *DB) DeletePin(ctx context.Context, site, version string) (bool, error) {
	var had bool
	err := s.with(ctx, true, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketPins, site, false)
		if b == nil || b.Get([]byte(version)) == nil {
			return nil
		}
		had = true
		if err := b.Delete([]byte(version)); err != nil {
			return err
		}
		return enqueuePins(tx, site)
	})
	return had, err
}

// Pins lists a site's pins by version.
func (s *DB) Pins(ctx context.Context, site string) (map[string]releases.Pin, error) {
	out := map[string]releases.Pin{}
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketPins, site, false)
		if b == nil {
			return nil
		}
		return b.ForEach(func(k, v []byte) error {
			var p releases.Pin
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("store: decoding pin %s: %w", k, err)
			}
			out[string(k)] = p
			return nil
		})
	})
	return out, err
}
