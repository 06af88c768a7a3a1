// Package store keeps deploybot's records in a bbolt file: releases,
// deploys, live pointers and locks. It implements releases.Store.
package store

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/deploybot/deploybot/releases"
)

// Bucket names. Releases and deploys are nested per site so a site's
// records are one cursor walk; deploy ids sort by time.
var (
	bucketMeta     = []byte("meta")
	bucketReleases = []byte("releases")
	bucketDeploys  = []byte("deploys")
	bucketLive     = []byte("live")
	bucketLocks    = []byte("locks")
	bucketAudit    = []byte("audit")
	bucketLinks    = []byte("links")
	bucketPins     = []byte("pins")
	bucketFreezes  = []byte("freezes")
	bucketApproval = []byte("approvals")
	bucketMirror   = []byte("mirror")
	// bucketMirrorSeq orders the outbox: sequence (8 bytes, big-endian)
	// -> outbox key. Rebuilt from the outbox at every Open (see
	// indexOutbox), so it is not part of the schema version.
	bucketMirrorSeq = []byte("mirror-seq")

	keySchema = []byte("schema")
)

// SchemaVersion is the layout this code reads and writes. A file written by
// a newer deploybot is refused rather than misread.
//
// 2: the history mirror's outbox; a store of version 1 queues all it
// holds for the bucket once, when it is first opened as version 2.
const SchemaVersion = 2

// Options tune Open.
type Options struct {
	// Timeout is how long Open waits for the file lock another process
	// holds. Zero: 2 seconds.
	Timeout time.Duration
	// Transient opens the file for each operation and closes it after, so
	// that several command-line processes can share a store and see each
	// other's locks. A long-running server keeps it open instead.
	Transient bool
}

// DB is the bbolt store.
type DB struct {
	path string
	opts Options
	db   *bolt.DB // nil in transient mode
}

var _ releases.Store = (*DB)(nil)

// Open opens (creating if needed) the store at path.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
	}
	if dir := filepath.Dir(path); dir != "" {
		if err := os.MkdirAll(dir, 0o750); err != nil {
			return nil, fmt.Errorf("store: %w", err)
		}
	}
	s := &DB{path: path, opts: opts}
	db, err := s.open()
	if err != nil {
		return nil, err
	}
	if err := initSchema(db); err != nil {
		db.Close()
		return nil, err
	}
	if opts.Transient {
		if err := db.Close(); err != nil {
			return nil, fmt.Errorf("store: closing %s: %w", path, err)
		}
		return s, nil
	}
	s.db = db
	return s, nil
}

func (s *DB) open() (*bolt.DB, error) {
	db, err := bolt.Open(s.path, 0o600, &bolt.Options{Timeout: s.opts.Timeout})
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, releases.Errorf(releases.ECONFLICT,
			"store %s is held by another deploybot process: if `deploybot serve` runs, go through it with --server URL (or DEPLOYBOT_SERVER) and DEPLOYBOT_API_TOKEN: %w", s.path, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	return db, nil
}

func initSchema(db *bolt.DB) error {
	return db.Update(func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketMeta, bucketReleases, bucketDeploys, bucketLive, bucketLocks, bucketAudit, bucketLinks, bucketPins, bucketFreezes, bucketApproval, bucketMirror, bucketMirrorSeq} {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("store: creating bucket %s: %w", name, err)
			}
		}
		meta := tx.Bucket(bucketMeta)
		if v := meta.Get(keySchema); v != nil {
			var n int
			if _, err := fmt.Sscan(string(v), &n); err != nil || n > SchemaVersion {
				return fmt.Errorf("store: schema version %q is newer than this deploybot understands (%d)", v, SchemaVersion)
			}
			if n < 2 {
				if err := backfillMirror(tx); err != nil {
					return fmt.Errorf("store: queueing the history for the bucket: %w", err)
				}
			}
		}
		if err := indexOutbox(tx); err != nil {
			return fmt.Errorf("store: ordering the history outbox: %w", err)
		}
		return meta.Put(keySchema, []byte(fmt.Sprint(SchemaVersion)))
	})
}

// Close closes the file.
func (s *DB) Close() error {
	if s.db == nil {
		return nil
	}
	return s.db.Close()
}

// Path is the file the store lives in.
func (s *DB) Path() string { return s.path }

func (s *DB) with(ctx context.Context, write bool, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	db := s.db
	if db == nil {
		var err error
		if db, err = s.open(); err != nil {
			return err
		}
		defer db.Close()
	}
	if write {
		return db.Update(fn)
	}
	return db.View(fn)
}

// siteBucket returns the per-site sub-bucket of parent, created when write.
func siteBucket(tx *bolt.Tx, parent []byte, site string, write bool) (*bolt.Bucket, error) {
	p := tx.Bucket(parent)
	if b := p.Bucket([]byte(site)); b != nil || !write {
		return b, nil
	}
	return p.CreateBucket([]byte(site))
}

func getJSON(b *bolt.Bucket, key string, v any) (bool, error) {
	if b == nil {
		return false, nil
	}
	raw := b.Get([]byte(key))
	if raw == nil {
		return false, nil
	}
	// json.Unmarshal copies what it keeps, so nothing refers to the mmap
	// after the transaction ends.
	if err := json.Unmarshal(raw, v); err != nil {
		return false, fmt.Errorf("store: decoding %s: %w", key, err)
	}
	return true, nil
}

func putJSON(b *bolt.Bucket, key string, v any) error {
	raw, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return b.Put([]byte(key), raw)
}

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
		return recordStart(tx, d, lock)
	})
}

// RecordStart records a deploy started under a lock taken elsewhere (the
// shared state in the bucket): the deploy, and the lock as the cache of
// it, whatever the cache held (a reader may have cached this very lock a
// moment before).
func (s *DB) RecordStart(ctx context.Context, d releases.Deploy, lock releases.Lock) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error { return recordStart(tx, d, lock) })
}

// recordStart puts a new deploy and the lock it holds.
func recordStart(tx *bolt.Tx, d releases.Deploy, lock releases.Lock) error {
	b, err := siteBucket(tx, bucketDeploys, d.Site, true)
	if err != nil {
		return err
	}
	if b.Get([]byte(d.ID)) != nil {
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

// Ping checks the store answers a read.
func (s *DB) Ping(ctx context.Context) error {
	return s.with(ctx, false, func(tx *bolt.Tx) error {
		if tx.Bucket(bucketMeta) == nil {
			return errors.New("store: meta bucket missing")
		}
		return nil
	})
}

// Backup writes a consistent snapshot of the whole file to w from one read
// transaction, so writers carry on while it is copied.
func (s *DB) Backup(ctx context.Context, w io.Writer) (n int64, err error) {
	err = s.with(ctx, false, func(tx *bolt.Tx) error {
		n, err = tx.WriteTo(w)
		return err
	})
	return n, err
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

// AppendAudit adds an entry under a time-sortable key and queues it for
// the bucket.
func (s *DB) AppendAudit(ctx context.Context, e releases.AuditEntry) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		key, body, _, err := putAudit(tx, e)
		if err != nil {
			return err
		}
		return enqueueRaw(tx, releases.MirrorRecord{Site: e.Site, Key: releases.HistoryAudit + key + ".json", Body: body})
	})
}

// putAudit stores e under releases.AuditKey (time first, so keys sort by
// time; the hash keeps equal times apart and is the same in the bucket)
// unless it is there; added says whether it was not.
func putAudit(tx *bolt.Tx, e releases.AuditEntry) (key string, body []byte, added bool, err error) {
	b, err := siteBucket(tx, bucketAudit, e.Site, true)
	if err != nil {
		return "", nil, false, err
	}
	if body, err = json.Marshal(e); err != nil {
		return "", nil, false, err
	}
	key = releases.AuditKey(e, body)
	if b.Get([]byte(key)) != nil {
		return key, body, false, nil
	}
	return key, body, true, b.Put([]byte(key), body)
}

// Audit returns the newest entries first.
func (s *DB) Audit(ctx context.Context, site string, limit int) ([]releases.AuditEntry, error) {
	var out []releases.AuditEntry
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketAudit, site, false)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		for k, v := c.Last(); k != nil; k, v = c.Prev() {
			var e releases.AuditEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("store: decoding audit entry %s: %w", k, err)
			}
			out = append(out, e)
			if limit > 0 && len(out) == limit {
				break
			}
		}
		return nil
	})
	return out, err
}

// SetDeployLink records where a deploy is shown. Links live apart from the
// deploy record, which the running deploy rewrites at every phase.
func (s *DB) SetDeployLink(ctx context.Context, site, deployID, name, link string) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b, err := siteBucket(tx, bucketLinks, site, true)
		if err != nil {
			return err
		}
		links := map[string]string{}
		if _, err := getJSON(b, deployID, &links); err != nil {
			return err
		}
		links[name] = link
		return putJSON(b, deployID, links)
	})
}

// releaseLinkKey keeps release links apart from deploy links in one
// bucket: a version cannot hold "/", a deploy id does not start with it.
const releaseLinkKey = "release/"

// SetReleaseLink records where a release is shown (its notice).
func (s *DB) SetReleaseLink(ctx context.Context, site, version, name, link string) error {
	return s.SetDeployLink(ctx, site, releaseLinkKey+version, name, link)
}

// ReleaseLinks returns the links of every release of site that has one.
func (s *DB) ReleaseLinks(ctx context.Context, site string) (map[string]map[string]string, error) {
	out := map[string]map[string]string{}
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketLinks, site, false)
		if b == nil {
			return nil
		}
		c := b.Cursor()
		prefix := []byte(releaseLinkKey)
		for k, v := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, v = c.Next() {
			links := map[string]string{}
			if err := json.Unmarshal(v, &links); err != nil {
				return fmt.Errorf("release links %s: %w", k, err)
			}
			out[string(k[len(prefix):])] = links
		}
		return nil
	})
	return out, err
}

// DeployLinks returns the links of a deploy (empty when none).
func (s *DB) DeployLinks(ctx context.Context, site, deployID string) (map[string]string, error) {
	links := map[string]string{}
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b, _ := siteBucket(tx, bucketLinks, site, false)
		_, err := getJSON(b, deployID, &links)
		return err
	})
	return links, err
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
