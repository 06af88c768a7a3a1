package releases

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"golang.org/x/sync/errgroup"
)

// The bucket keeps the history. bbolt is the fast local index; every
// record only it could lose (a finished deploy, an audit entry, a release's
// record with its pruned flag, the pins, a person's lock, a freeze) is
// also written to the site's bucket under <prefix>.deploybot/history/, so a
// lost volume, a botched restore or a second cluster rebuilds the store
// from AWS alone (Rebuild).
//
// The store writes each record to an outbox in the transaction that
// records it, and PushHistory copies the outbox to the bucket afterwards:
// a deploy never waits for S3, a process killed between the two loses
// nothing (the next push sends it), and a push that fails is tried again.
// Records are immutable objects written with If-None-Match: * under keys
// that sort by time and end in a hash of their content, so pushing one
// twice is harmless; state (pins, lock, freeze, a release's record) is one
// object per thing, replaced with If-Match on the ETag read. Retention
// never deletes anything under .deploybot/.

// MirrorRecord is one object to write under a site's history prefix.
type MirrorRecord struct {
	Site string `json:"site"`
	// Key is relative to the site's history prefix: audit/..., deploys/...,
	// releases/..., state/....
	Key string `json:"key"`
	// Replace: the object is the current state of something, replaced as
	// it changes; else an immutable record, written once.
	Replace bool   `json:"replace,omitempty"`
	Body    []byte `json:"body"`
}

// Keys of the mirrored history, relative to Site.HistoryPrefix.
const (
	HistoryAudit    = "audit/"
	HistoryDeploys  = "deploys/"
	HistoryReleases = "releases/"
	HistoryPins     = "state/pins.json"
	HistoryLock     = "state/lock.json"
	HistoryFreeze   = "state/freeze.json"
)

// HistoryPrefix is where the site's mirrored history lives in its bucket.
func (s Site) HistoryPrefix() string { return s.Prefix + ".deploybot/history/" }

// AuditKey is an audit entry's key, in the store and in the bucket: its
// time (nanoseconds, UTC), then a hash of its JSON, so keys sort by time
// and an entry written twice is one entry.
func AuditKey(e AuditEntry, body []byte) string {
	sum := sha256.Sum256(body)
	return e.Time.UTC().Format("20060102T150405.000000000Z") + "-" + hex.EncodeToString(sum[:6])
}

// PinsState, LockState and FreezeState are the state objects' bodies.
type PinsState struct {
	Pins []Pin `json:"pins"`
}

type LockState struct {
	Lock *Lock `json:"lock"` // a person's lock; nil when free
}

type FreezeState struct {
	Freeze *Freeze `json:"freeze"` // the run-time freeze; nil when none
}

// MaxPushBatch bounds one push round: a few seconds of S3 writes.
const MaxPushBatch = 200

// PushHistory copies what the store has not yet mirrored to the sites'
// buckets, oldest first, in rounds of MaxPushBatch until nothing is left
// or a write fails (which stops the push: the record stays pending and
// the next push tries again). It returns how many objects it wrote.
func (s *Service) PushHistory(ctx context.Context) (int, error) {
	pushed := 0
	for {
		recs, err := s.Store.MirrorPending(ctx, MaxPushBatch)
		if err != nil || len(recs) == 0 {
			return pushed, err
		}
		for _, r := range recs {
			site, err := s.Site(r.Site)
			if err != nil {
				// A site no longer configured: nowhere to write; drop it
				// rather than hold the queue forever.
				s.logger().WarnContext(ctx, "history of a site no longer configured is not mirrored", "site", r.Site, "key", r.Key)
				if err := s.Store.MirrorDone(ctx, r); err != nil {
					return pushed, err
				}
				continue
			}
			if err := s.Bucket.PutHistory(ctx, site, r.Key, r.Body, r.Replace); err != nil {
				return pushed, fmt.Errorf("mirroring %s of %s to the bucket: %w", r.Key, site.Name, err)
			}
			if err := s.Store.MirrorDone(ctx, r); err != nil {
				return pushed, err
			}
			pushed++
		}
		if len(recs) < MaxPushBatch {
			return pushed, nil
		}
	}
}

// HistoryPending is how many records wait to be mirrored.
func (s *Service) HistoryPending(ctx context.Context) (int, error) { return s.Store.MirrorCount(ctx) }

// ErrNoHistory is wrapped by Bucket.GetHistory for a key that is not there.
var ErrNoHistory = errors.New("no such history object")

// RebuildReport is what Rebuild found in the bucket and the distribution.
type RebuildReport struct {
	Site     string  `json:"site"`
	Releases int     `json:"releases"` // release records (pruned ones included)
	Deploys  int     `json:"deploys"`
	Audit    int     `json:"audit"`
	Pins     int     `json:"pins"`
	Lock     *Lock   `json:"lock"`
	Freeze   *Freeze `json:"freeze"`
	Live     string  `json:"live"`
	Seconds  float64 `json:"seconds"`
	// Skipped are the mirrored objects left out, each with why: what does
	// not decode, or says what deploybot would not have written (the
	// bucket is outside input). One bad object never stops the rest.
	Skipped []SkippedObject `json:"skipped"`
}

// SkippedObject is a mirrored object a rebuild left out.
type SkippedObject struct {
	Key string `json:"key"`
	Why string `json:"why"`
}

func (r *RebuildReport) skip(key, why string) {
	r.Skipped = append(r.Skipped, SkippedObject{Key: key, Why: shorten(why, 300)})
}

// ActionRebuild is the audit record of a rebuild of the store from the
// bucket, written after it, so it is not among what it counts. It is the
// one record a rebuilt store holds that the lost one cannot have held:
// comparisons of the two (history field by field) leave it out by this
// action, and everything else must be identical.
const ActionRebuild = "rebuild"

// Rebuild fills the store with what the bucket and the distribution know
// of site: release records (mirrored ones, with what retention pruned, then
// any manifest not yet among them), finished deploys, the audit log, pins,
// a person's lock and the run-time freeze from the mirrored history, and
// the live pointer from the distribution, dated by the deploy that made
// it live. It adds what the store lacks and changes nothing it has, so it
// may run on a store that is not empty. It is recorded, ok or failed, for
// whoever asked.
func (s *Service) Rebuild(ctx context.Context, siteName string) (*RebuildReport, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	rep, err := s.rebuild(ctx, site)
	if err != nil {
		// Part of it may be in: failed, never refused.
		s.auditAs(ctx, site.Name, "", ActionRebuild, ResultFailed, "", err)
		return nil, err
	}
	s.auditAs(ctx, site.Name, "", ActionRebuild, ResultOK, rebuiltDetail(rep), nil)
	return rep, nil
}

// RebuildLost is Rebuild of a store found empty (a lost volume, a new
// machine), which serve and every command that opens the store run before
// anything reads it. It is deploybot's, recorded only when it brought
// back history (deploys or audit records): the first command of a new
// install indexes the releases the bucket holds, as sync does, and
// restores nothing; and a failure is not recorded, since a record would
// make the store not empty and keep the next command from trying again
// (the door says it failed).
func (s *Service) RebuildLost(ctx context.Context, siteName string) (*RebuildReport, error) {
	site, err := s.Site(siteName)
	if err != nil {
		return nil, err
	}
	rep, err := s.rebuild(ctx, site)
	if err != nil || rep.Deploys+rep.Audit == 0 {
		return rep, err
	}
	s.auditAs(ownJob(ctx), site.Name, AutoActor, ActionRebuild, ResultOK, "the store was empty: "+rebuiltDetail(rep), nil)
	return rep, nil
}

// rebuiltDetail is what a rebuild brought back, for its audit record.
func rebuiltDetail(rep *RebuildReport) string {
	d := fmt.Sprintf("%d release(s), %d deploy(s), %d audit record(s), %d pin(s), live %s", rep.Releases, rep.Deploys, rep.Audit, rep.Pins, orNone(rep.Live))
	if rep.Lock != nil {
		d += ", locked by " + rep.Lock.Holder
	}
	if rep.Freeze != nil {
		d += ", frozen by " + rep.Freeze.By
	}
	if n := len(rep.Skipped); n > 0 {
		d += fmt.Sprintf(", %d object(s) skipped", n)
	}
	return d
}

func (s *Service) rebuild(ctx context.Context, site Site) (*RebuildReport, error) {
	start := time.Now()
	rep := &RebuildReport{Site: site.Name, Skipped: []SkippedObject{}}
	var rels []Release
	if err := readAll(ctx, s, site, HistoryReleases, &rels, rep, func(r Release) string {
		if r.Site != site.Name || ValidateVersion(r.Version) != nil {
			return fmt.Sprintf("a release record of site %q, version %q", r.Site, r.Version)
		}
		return ""
	}); err != nil {
		return nil, err
	}
	if err := s.Store.ImportReleases(ctx, rels); err != nil {
		return nil, err
	}
	rep.Releases = len(rels)
	added, err := s.Sync(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	rep.Releases += len(added)
	var deploys []Deploy
	if err := readAll(ctx, s, site, HistoryDeploys, &deploys, rep, func(d Deploy) string { return badDeploy(site, d) }); err != nil {
		return nil, err
	}
	var lastDone *Deploy
	for i, d := range deploys {
		if d.Phase == PhaseDone && (lastDone == nil || d.FinishedAt.After(lastDone.FinishedAt)) {
			lastDone = &deploys[i]
		}
	}
	if err := s.Store.ImportDeploys(ctx, deploys); err != nil {
		return nil, err
	}
	rep.Deploys = len(deploys)
	var audit []AuditEntry
	if err := readAll(ctx, s, site, HistoryAudit, &audit, rep, func(e AuditEntry) string {
		if e.Site != site.Name {
			return fmt.Sprintf("an audit entry of site %q", e.Site)
		}
		return ""
	}); err != nil {
		return nil, err
	}
	if err := s.Store.ImportAudit(ctx, audit); err != nil {
		return nil, err
	}
	rep.Audit = len(audit)
	if shared, ok := s.Store.(*SharedStore); ok {
		// Locks, freezes and pins are the bucket's state objects, not the
		// history's copies of them (which a store that shares them stops
		// writing). The copies go to the local store only, where they
		// serve once, to seed a site that never had state objects (an
		// upgrade whose old store is gone); then what the bucket's state
		// says is read, and cached over them.
		if err := s.rebuildStateFromHistory(ctx, site, rep, shared.Store); err != nil {
			return nil, err
		}
		if err := shared.rebuildState(ctx, site, rep); err != nil {
			return nil, err
		}
	} else if err := s.rebuildStateFromHistory(ctx, site, rep, s.Store); err != nil {
		return nil, err
	}
	// What is live is the distribution's to say; the deploy that made it
	// live says since when.
	_, cur, err := s.current(ctx, site)
	if err != nil {
		return nil, err
	}
	rep.Live = cur.Version
	if _, ok, err := s.Store.Live(ctx, site.Name); err != nil {
		return nil, err
	} else if !ok && cur.Version != "" {
		live := Live{Version: cur.Version, Since: s.now()}
		if lastDone != nil && lastDone.To == cur.Version {
			live = Live{Version: cur.Version, Since: lastDone.FinishedAt, DeployID: lastDone.ID}
		}
		if err := s.Store.SetLive(ctx, site.Name, live); err != nil {
			return nil, err
		}
	}
	rep.Seconds = time.Since(start).Seconds()
	s.logger().InfoContext(ctx, "store rebuilt from the bucket", "site", site.Name, "releases", rep.Releases, "deploys", rep.Deploys,
		"audit", rep.Audit, "pins", rep.Pins, "live", rep.Live)
	return rep, nil
}

// rebuildReaders is how many history objects Rebuild reads at once: S3
// answers a GET in some 10-30 ms, so a year of hourly deploys (about
// 17,500 objects) takes seconds, not minutes.
const rebuildReaders = 16

// readAll reads every object under dir into *out (a slice of the records'
// type), in key order, rebuildReaders at a time.
// readAll reads every mirrored record under dir. A record that does not
// decode, or that check refuses (it says why), is left out and reported
// in rep; only a bucket that does not answer stops the reading.
func readAll[T any](ctx context.Context, s *Service, site Site, dir string, out *[]T, rep *RebuildReport, check func(T) string) error {
	keys, err := s.Bucket.ListHistory(ctx, site, dir, "")
	if err != nil {
		return err
	}
	recs := make([]T, len(keys))
	bad := make([]string, len(keys))
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(rebuildReaders)
	for i, k := range keys {
		g.Go(func() error {
			err := s.readHistory(gctx, site, k, &recs[i])
			if ErrorCode(err) == EINVALID {
				bad[i] = ErrorMessage(err)
				return nil
			}
			if err == nil {
				bad[i] = check(recs[i])
			}
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	kept := recs[:0]
	for i, r := range recs {
		if bad[i] != "" {
			rep.skip(site.HistoryPrefix()+keys[i], bad[i])
			continue
		}
		kept = append(kept, r)
	}
	*out = kept
	return nil
}

// readHistory reads one mirrored record; anything that does not decode is
// refused, naming it (the bucket is outside input).
func (s *Service) readHistory(ctx context.Context, site Site, key string, v any) error {
	raw, err := s.Bucket.GetHistory(ctx, site, key)
	if err != nil {
		return err
	}
	if err := decodeStrict(raw, v); err != nil {
		return Errorf(EINVALID, "mirrored history %s%s is not valid: %v", site.HistoryPrefix(), key, err)
	}
	return nil
}

// readState reads a state object; one that is not there is the empty
// state.
func (s *Service) readState(ctx context.Context, site Site, key string, v any) error {
	err := s.readHistory(ctx, site, key, v)
	if errors.Is(err, ErrNoHistory) {
		return nil
	}
	return err
}

// maxHistoryObject bounds one mirrored object: a deploy with its phases, a
// release record and an audit entry are a few KB; the pins of a site a
// few hundred bytes each.
const maxHistoryObject = 4 << 20

func decodeStrict(raw []byte, v any) error {
	if len(raw) > maxHistoryObject {
		return fmt.Errorf("larger than %d bytes", maxHistoryObject)
	}
	dec := json.NewDecoder(bytes.NewReader(raw))
	if err := dec.Decode(v); err != nil {
		return err
	}
	if dec.More() {
		return errors.New("data after the JSON value")
	}
	return nil
}

// rebuildStateFromHistory fills a store that keeps its own state (no
// SharedStore) with the pins, lock and freeze the history last mirrored.
func (s *Service) rebuildStateFromHistory(ctx context.Context, site Site, rep *RebuildReport, into Store) error {
	var pins PinsState
	if err := s.readState(ctx, site, HistoryPins, &pins); ErrorCode(err) == EINVALID {
		rep.skip(site.HistoryPrefix()+HistoryPins, ErrorMessage(err))
	} else if err != nil {
		return err
	}
	for _, p := range pins.Pins {
		if p.Site != site.Name || ValidateVersion(p.Version) != nil {
			rep.skip(site.HistoryPrefix()+HistoryPins, fmt.Sprintf("a pin of site %q, version %q", p.Site, p.Version))
			continue
		}
		if err := into.SetPin(ctx, p); err != nil {
			return err
		}
		rep.Pins++
	}
	var lock LockState
	if err := s.readState(ctx, site, HistoryLock, &lock); ErrorCode(err) == EINVALID {
		rep.skip(site.HistoryPrefix()+HistoryLock, ErrorMessage(err))
	} else if err != nil {
		return err
	}
	if l := lock.Lock; l != nil && l.Site == site.Name && l.DeployID == "" {
		var le *LockedError
		if err := into.AcquireLock(ctx, *l); err != nil && !errors.As(err, &le) {
			return err
		}
		rep.Lock = l
	}
	var freeze FreezeState
	if err := s.readState(ctx, site, HistoryFreeze, &freeze); ErrorCode(err) == EINVALID {
		rep.skip(site.HistoryPrefix()+HistoryFreeze, ErrorMessage(err))
	} else if err != nil {
		return err
	}
	if f := freeze.Freeze; f != nil && f.Site == site.Name && f.Active(s.now()) {
		if err := into.SetFreeze(ctx, *f); err != nil {
			return err
		}
		rep.Freeze = f
	}
	return nil
}

// rebuildState reads the site's shared state into the report, which also
// fills the store's cache of it; nothing is written to the bucket.
func (s *SharedStore) rebuildState(ctx context.Context, site Site, rep *RebuildReport) error {
	pins, err := s.Pins(ctx, site.Name)
	if err != nil {
		return err
	}
	rep.Pins = len(pins)
	if rep.Lock, err = s.Lock(ctx, site.Name); err != nil {
		return err
	}
	rep.Freeze, err = s.Freeze(ctx, site.Name)
	return err
}
