package store

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/releases"
)

// The outbox of the history mirror (releases/mirror.go): one entry per
// object to write, keyed "<site>\x00<key>", written in the transaction that
// records what it mirrors. A state (pins, lock, freeze, a release's
// record) written again before it was pushed replaces its entry, so only
// the latest is sent; a record is written once. Entries are pushed in
// insertion order, which bbolt's sequence keeps in the value.

type outboxEntry struct {
	Seq uint64 `json:"seq"`
	releases.MirrorRecord
}

func outboxKey(site, key string) []byte { return []byte(site + "\x00" + key) }

// enqueue adds v, as JSON, to the outbox.
func enqueue(tx *bolt.Tx, site, key string, replace bool, v any) error {
	body, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return enqueueRaw(tx, releases.MirrorRecord{Site: site, Key: key, Replace: replace, Body: body})
}

func enqueueRaw(tx *bolt.Tx, r releases.MirrorRecord) error {
	b, idx := tx.Bucket(bucketMirror), tx.Bucket(bucketMirrorSeq)
	k := outboxKey(r.Site, r.Key)
	// A replaced entry leaves its place in the order.
	var old outboxEntry
	if ok, err := getJSON(b, string(k), &old); err != nil {
		return err
	} else if ok {
		if err := idx.Delete(seqKey(old.Seq)); err != nil {
			return err
		}
	}
	seq, err := b.NextSequence()
	if err != nil {
		return err
	}
	if err := putJSON(b, string(k), outboxEntry{Seq: seq, MirrorRecord: r}); err != nil {
		return err
	}
	return idx.Put(seqKey(seq), k)
}

func seqKey(seq uint64) []byte { return binary.BigEndian.AppendUint64(nil, seq) }

// indexOutbox rebuilds the outbox's order from its entries. Open runs it
// every time: it costs one pass over what waits (normally nothing), and
// it mends an order a deploybot from before it left behind (one that
// queued entries without the index, after a downgrade).
func indexOutbox(tx *bolt.Tx) error {
	if err := tx.DeleteBucket(bucketMirrorSeq); err != nil {
		return err
	}
	idx, err := tx.CreateBucket(bucketMirrorSeq)
	if err != nil {
		return err
	}
	return tx.Bucket(bucketMirror).ForEach(func(k, v []byte) error {
		var e outboxEntry
		if err := json.Unmarshal(v, &e); err != nil {
			return fmt.Errorf("store: decoding mirror entry %q: %w", k, err)
		}
		return idx.Put(seqKey(e.Seq), bytes.Clone(k))
	})
}

// enqueuePins mirrors the site's pins as they are in tx.
func enqueuePins(tx *bolt.Tx, site string) error {
	st := releases.PinsState{Pins: []releases.Pin{}}
	if b, _ := siteBucket(tx, bucketPins, site, false); b != nil {
		if err := b.ForEach(func(k, v []byte) error {
			var p releases.Pin
			if err := json.Unmarshal(v, &p); err != nil {
				return fmt.Errorf("store: decoding pin %s: %w", k, err)
			}
			st.Pins = append(st.Pins, p)
			return nil
		}); err != nil {
			return err
		}
	}
	return enqueue(tx, site, releases.HistoryPins, true, st)
}

// enqueueLock mirrors a person's lock (nil: the site is free of one).
func enqueueLock(tx *bolt.Tx, site string, l *releases.Lock) error {
	if l != nil && l.DeployID != "" {
		l = nil // a deploy's lock ends with its deploy
	}
	return enqueue(tx, site, releases.HistoryLock, true, releases.LockState{Lock: l})
}

// MirrorPending returns the oldest entries first, at most limit (<= 0:
// all). It reads them in order from the index, so a long backlog (the
// bucket out of reach for a while) costs limit entries a call, not the
// whole outbox.
func (s *DB) MirrorPending(ctx context.Context, limit int) ([]releases.MirrorRecord, error) {
	var out []releases.MirrorRecord
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMirror)
		c := tx.Bucket(bucketMirrorSeq).Cursor()
		for sk, k := c.First(); sk != nil && (limit <= 0 || len(out) < limit); sk, k = c.Next() {
			v := b.Get(k)
			if v == nil {
				continue
			}
			var e outboxEntry
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("store: decoding mirror entry %q: %w", k, err)
			}
			if !bytes.Equal(seqKey(e.Seq), sk) {
				continue // an older place of a replaced entry
			}
			out = append(out, e.MirrorRecord)
		}
		return nil
	})
	return out, err
}

// MirrorDone removes r's entry unless a newer state replaced it.
func (s *DB) MirrorDone(ctx context.Context, r releases.MirrorRecord) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		b := tx.Bucket(bucketMirror)
		k := outboxKey(r.Site, r.Key)
		var e outboxEntry
		ok, err := getJSON(b, string(k), &e)
		if err != nil || !ok {
			return err
		}
		if !bytes.Equal(e.Body, r.Body) {
			return nil
		}
		if err := tx.Bucket(bucketMirrorSeq).Delete(seqKey(e.Seq)); err != nil {
			return err
		}
		return b.Delete(k)
	})
}

// MirrorCount is how many entries wait.
func (s *DB) MirrorCount(ctx context.Context) (int, error) {
	n := 0
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		n = tx.Bucket(bucketMirror).Stats().KeyN
		return nil
	})
	return n, err
}

// ImportReleases records the releases the store lacks, in one transaction.
func (s *DB) ImportReleases(ctx context.Context, rs []releases.Release) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		for _, r := range rs {
			b, err := siteBucket(tx, bucketReleases, r.Site, true)
			if err != nil {
				return err
			}
			if b.Get([]byte(r.Version)) == nil {
				if err := putJSON(b, r.Version, r); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ImportDeploys records the finished deploys the store lacks.
func (s *DB) ImportDeploys(ctx context.Context, ds []releases.Deploy) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		for _, d := range ds {
			b, err := siteBucket(tx, bucketDeploys, d.Site, true)
			if err != nil {
				return err
			}
			if b.Get([]byte(d.ID)) == nil {
				if err := putJSON(b, d.ID, d); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// ImportAudit records the entries the store lacks, each under its key.
func (s *DB) ImportAudit(ctx context.Context, es []releases.AuditEntry) error {
	return s.with(ctx, true, func(tx *bolt.Tx) error {
		for _, e := range es {
			if _, _, _, err := putAudit(tx, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// Empty reports whether no site has a release, a deploy or an audit entry.
func (s *DB) Empty(ctx context.Context) (bool, error) {
	empty := true
	err := s.with(ctx, false, func(tx *bolt.Tx) error {
		for _, name := range [][]byte{bucketReleases, bucketDeploys, bucketAudit} {
			if err := tx.Bucket(name).ForEachBucket(func(k []byte) error {
				if sb := tx.Bucket(name).Bucket(k); sb != nil {
					if k, _ := sb.Cursor().First(); k != nil {
						empty = false
					}
				}
				return nil
			}); err != nil {
				return err
			}
		}
		return nil
	})
	return empty, err
}

// backfillMirror queues everything a store written before the mirror
// holds (schema 1): release records, finished deploys, audit entries,
// pins, a person's lock and the freeze of every site, so the bucket has
// the history from before the upgrade too. It runs once, in the
// transaction that moves the file to schema 2.
func backfillMirror(tx *bolt.Tx) error {
	sites := map[string]bool{}
	for _, name := range [][]byte{bucketReleases, bucketDeploys, bucketAudit, bucketPins} {
		if err := tx.Bucket(name).ForEachBucket(func(k []byte) error { sites[string(k)] = true; return nil }); err != nil {
			return err
		}
	}
	for site := range sites {
		if b := tx.Bucket(bucketReleases).Bucket([]byte(site)); b != nil {
			if err := b.ForEach(func(k, v []byte) error {
				return enqueueRaw(tx, releases.MirrorRecord{Site: site, Key: releases.HistoryReleases + string(k) + ".json", Replace: true, Body: bytes.Clone(v)})
			}); err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketDeploys).Bucket([]byte(site)); b != nil {
			if err := b.ForEach(func(k, v []byte) error {
				var d releases.Deploy
				if err := json.Unmarshal(v, &d); err != nil || !d.Phase.Final() {
					return err
				}
				return enqueueRaw(tx, releases.MirrorRecord{Site: site, Key: releases.HistoryDeploys + string(k) + ".json", Body: bytes.Clone(v)})
			}); err != nil {
				return err
			}
		}
		if b := tx.Bucket(bucketAudit).Bucket([]byte(site)); b != nil {
			if err := b.ForEach(func(_, v []byte) error {
				var e releases.AuditEntry
				if err := json.Unmarshal(v, &e); err != nil {
					return err
				}
				body, err := json.Marshal(e)
				if err != nil {
					return err
				}
				return enqueueRaw(tx, releases.MirrorRecord{Site: site, Key: releases.HistoryAudit + releases.AuditKey(e, body) + ".json", Body: body})
			}); err != nil {
				return err
			}
		}
		if err := enqueuePins(tx, site); err != nil {
			return err
		}
		var l releases.Lock
		if ok, err := getJSON(tx.Bucket(bucketLocks), site, &l); err != nil {
			return err
		} else if ok && l.DeployID == "" {
			if err := enqueueLock(tx, site, &l); err != nil {
				return err
			}
		}
		var f releases.Freeze
		if ok, err := getJSON(tx.Bucket(bucketFreezes), site, &f); err != nil {
			return err
		} else if ok {
			if err := enqueue(tx, site, releases.HistoryFreeze, true, releases.FreezeState{Freeze: &f}); err != nil {
				return err
			}
		}
	}
	return nil
}
