// Package store keeps deploybot's records in a bbolt file: releases,
// deploys, live pointers and locks. It implements releases.Store.
package store

import (
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
	// Timeout is how long Open (and, in transient mode, each operation)
	// waits for the file lock another process holds. Zero: 2 seconds for
	// a long-running holder; 30 seconds in transient mode, where the
	// holders are other command lines, each for milliseconds (sixteen
	// runners on one store queue for more than 2 seconds on a busy
	// disk). A transient operation does not wait at all while a
	// long-running process (serve) holds the store: that will not end.
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
	mark *holder  // nil in transient mode
}

var _ releases.Store = (*DB)(nil)

// Open opens (creating if needed) the store at path.
func Open(path string, opts Options) (*DB, error) {
	if opts.Timeout <= 0 {
		opts.Timeout = 2 * time.Second
		if opts.Transient {
			opts.Timeout = 30 * time.Second
		}
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
	// Held under the store's own lock, so two long-running processes
	// never both believe they mark it.
	s.mark = hold(path)
	s.db = db
	return s, nil
}

// markCheck is how often a command line waiting for the store looks
// again whether serve holds it (serve may start meanwhile).
const markCheck = time.Second

func (s *DB) open() (*bolt.DB, error) {
	deadline := time.Now().Add(s.opts.Timeout)
	var db *bolt.DB
	var err error
	for {
		if s.opts.Transient && heldLong(s.path) {
			return nil, releases.Errorf(releases.ECONFLICT,
				"store %s is held by a running deploybot serve (or dev): go through it with --server URL (or DEPLOYBOT_SERVER) and DEPLOYBOT_API_TOKEN: %w", s.path, bolterrors.ErrTimeout)
		}
		wait := time.Until(deadline)
		if s.opts.Transient {
			wait = min(wait, markCheck)
		}
		db, err = bolt.Open(s.path, 0o600, &bolt.Options{Timeout: max(wait, time.Millisecond)})
		if !errors.Is(err, bolterrors.ErrTimeout) || time.Now().After(deadline) {
			break
		}
	}
	if errors.Is(err, bolterrors.ErrTimeout) {
		return nil, s.heldError(err)
	}
	if err != nil {
		return nil, fmt.Errorf("store: opening %s: %w", s.path, err)
	}
	return db, nil
}

func (s *DB) heldError(err error) error {
	return releases.Errorf(releases.ECONFLICT,
		"store %s is held by another deploybot process: if `deploybot serve` runs, go through it with --server URL (or DEPLOYBOT_SERVER) and DEPLOYBOT_API_TOKEN: %w", s.path, err)
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
	// The mark goes first: a command line that then finds no mark waits
	// the moment it takes the file to come free, instead of giving up.
	_ = s.mark.release()
	s.mark = nil
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
