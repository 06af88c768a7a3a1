package store

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"

	bolt "go.etcd.io/bbolt"

	"github.com/deploybot/deploybot/releases"
)

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
