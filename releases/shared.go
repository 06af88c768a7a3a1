package releases

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"sync"
	"time"
)

// SharedStore is the Store every door and replica shares: a site's lock,
// its run-time freeze, its pins and its latest approval request are read
// from and changed in the site's bucket (Coordinator), by
// compare-and-swap, and written to the local store after, as its cache.
// Everything else (releases, deploy history, the audit log) is the local
// store's, mirrored to the bucket's history as before; the state objects
// are their own record there, so the local store's own checks and
// mirror are not run for them (a concurrent reader may have cached what
// this process just took). A lock taken
// by the command line on a laptop stops serve's promotes, and a freeze set
// in Slack stops CI's `deploybot promote`, because both read one object.
//
// Costs (S3 requests), per promote: the lock read twice and the freeze
// once before the deploy starts, one read and one write to take the lock
// and to free it, and one read and one write per heartbeat (every 10 s)
// while it runs. Nothing while idle.
type SharedStore struct {
	Store
	Cache StateCache
	State Coordinator
	Sites []Site
	// Process names this process as a site lease's holder (zero: the
	// process's random id); tests running two stores in one process set
	// it.
	Process string

	// last is each site's lock object as this process last read or wrote
	// it (a lockSeen): a change starts from it instead of a read, and if
	// another process wrote since, S3 refuses the write on the ETag and
	// the change starts again from a read. A deploy's phases cost a write
	// each, not a read and a write.
	last sync.Map
	// seeded remembers the sites whose state this process found seeded.
	seeded sync.Map
	// leases is each site's lease as this process last wrote it (a
	// leaseSeen), while it holds it.
	leases sync.Map
}

type lockSeen struct {
	st   lockState
	etag string
}

// StateCache is the local store's side of the shared state: it records
// what the bucket says, unconditionally.
type StateCache interface {
	CacheLock(ctx context.Context, site string, l *Lock) error
	CacheFreeze(ctx context.Context, site string, f *Freeze) error
	CacheApproval(ctx context.Context, a ApprovalRequest) error
	CachePins(ctx context.Context, site string, pins []Pin) error
	// RecordStart records a deploy whose lock was taken in the bucket,
	// and caches that lock.
	RecordStart(ctx context.Context, d Deploy, lock Lock) error
}

// NewSharedStore shares local's locks and freezes through state.
func NewSharedStore(local interface {
	Store
	StateCache
}, state Coordinator, sites []Site) *SharedStore {
	return &SharedStore{Store: local, Cache: local, State: state, Sites: sites}
}

// lockState is the body of a site's lock object.
type lockState struct {
	// Lock is the holder; nil when the site is free.
	Lock *Lock `json:"lock"`
	// Epoch counts the lock's acquisitions: each holder has its own, so
	// what an earlier holder writes late is told apart.
	Epoch int64 `json:"epoch"`
	// Deploy is the record of the deploy holding the lock, as of its
	// last phase change: what any process needs to finish it when its
	// runner is gone (nil for a person's lock or a prune).
	Deploy *Deploy `json:"deploy,omitempty"`
	// Live is what the site serves as the last deploy or reconcile that
	// moved it recorded it: written in the same write that frees the
	// lock, so every replica's `versions` and notices agree at once, at
	// no extra request. Nil: none recorded here yet (the local store's,
	// from before shared state, stands).
	Live  *Live  `json:"live,omitempty"`
	Write string `json:"write,omitempty"` // see stampWrite
}

// freezeState is the body of a site's freeze object.
type freezeState struct {
	Freeze *Freeze `json:"freeze"` // nil: not frozen at run time
	Write  string  `json:"write,omitempty"`
}

// SafeID reports whether id looks like one deploybot makes (NewDeployID):
// what a request's or a deploy's id read from outside must look like,
// since it becomes a store key, a history key and a button's value.
func SafeID(id string) bool {
	if id == "" || len(id) > 64 {
		return false
	}
	for _, c := range id {
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '.' || c == '_' || c == '-') {
			return false
		}
	}
	return true
}

// casTries bounds how often a read-and-write is tried again after losing
// a race: each loss means someone else wrote, and the next read says who.
const casTries = 5

func (s *SharedStore) site(name string) (Site, error) {
	for _, site := range s.Sites {
		if site.Name == name {
			return site, nil
		}
	}
	return Site{}, Errorf(EINVALID, "unknown site %q", name)
}

// readState reads and strictly decodes one state object into v; a missing
// object leaves v as it is and returns etag "". An object that does not
// decode, or names another site, is refused rather than trusted: whoever
// can write to the bucket could have put it there.
func (s *SharedStore) readState(ctx context.Context, site Site, key string, v any, check func() string) (string, error) {
	body, etag, err := s.State.GetState(ctx, site, key)
	if errors.Is(err, ErrNoState) {
		return "", nil
	}
	if err != nil {
		return "", err
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		return "", Errorf(EINTERNAL, "site %s: %s%s is not what deploybot writes (%v); nothing was changed: restore it from the history or remove it", site.Name, site.StatePrefix(), key, err)
	}
	if what := check(); what != "" {
		return "", Errorf(EINTERNAL, "site %s: %s%s %s; nothing was changed: restore it from the history or remove it", site.Name, site.StatePrefix(), key, what)
	}
	return etag, nil
}

func (s *SharedStore) readLock(ctx context.Context, site Site) (lockState, string, error) {
	var st lockState
	etag, err := s.readState(ctx, site, StateLock, &st, func() string {
		switch {
		case st.Lock != nil && st.Lock.Site != site.Name:
			return fmt.Sprintf("names site %q", st.Lock.Site)
		case st.Deploy != nil && (st.Deploy.Site != site.Name || st.Lock == nil || st.Deploy.ID != st.Lock.DeployID):
			return "holds a deploy that is not the lock's, or another site's"
		case st.Live != nil && (st.Live.Version != "" && ValidateVersion(st.Live.Version) != nil || st.Live.DeployID != "" && !SafeID(st.Live.DeployID)):
			return "names a live release or deploy deploybot would not write"
		}
		return ""
	})
	if err == nil && etag == "" && ctx.Value(seedingKey{}) == nil {
		return seed(ctx, s, site, st, s.readLock)
	}
	return st, etag, err
}

// seed fills, once per site and ever, the state objects a deploybot from
// before shared state kept only in its store: the first process to find
// the site unseeded writes each object that is absent from what its store
// holds (its lock, freeze, pins, latest approval request), then the marker
// StateSeeded; from then on an absent object means "none" (a lock object
// removed by hand is a free site), and no cache is ever taken for the
// truth. Of processes seeding at once, each object is created by one.
// read is called again, without seeding, for what is there now.
func seed[T any](ctx context.Context, s *SharedStore, site Site, empty T, read func(context.Context, Site) (T, string, error)) (T, string, error) {
	if _, done := s.seeded.Load(site.Name); done {
		return empty, "", nil // seeded: absent is none
	}
	if err := s.seedSite(ctx, site); err != nil {
		return empty, "", err
	}
	return read(context.WithValue(ctx, seedingKey{}, true), site)
}

type seedingKey struct{}

// StateSeeded marks a site whose state objects were seeded (see seed).
const StateSeeded = "seeded.json"

func (s *SharedStore) seedSite(ctx context.Context, site Site) error {
	if _, done := s.seeded.Load(site.Name); done {
		return nil
	}
	if _, _, err := s.State.GetState(ctx, site, StateSeeded); err == nil {
		s.seeded.Store(site.Name, true)
		return nil
	} else if !errors.Is(err, ErrNoState) {
		return err
	}
	l, err := s.Store.Lock(ctx, site.Name)
	if err != nil {
		return err
	}
	f, err := s.Store.Freeze(ctx, site.Name)
	if err != nil {
		return err
	}
	pins, err := s.Store.Pins(ctx, site.Name)
	if err != nil {
		return err
	}
	as, err := s.Store.Approvals(ctx, site.Name, 1)
	if err != nil {
		return err
	}
	var live *Live
	if lv, ok, err := s.Store.Live(ctx, site.Name); err != nil {
		return err
	} else if ok {
		live = &lv
	}
	var ps pinsState
	for _, p := range pins {
		ps.Pins = append(ps.Pins, p)
	}
	var ap approvalState
	if len(as) > 0 {
		ap.Request = &as[0]
	}
	for _, o := range []struct {
		key  string
		has  bool
		body any
	}{{StateLock, l != nil || live != nil, lockState{Lock: l, Live: live}}, {StateFreeze, f != nil, freezeState{Freeze: f}},
		{StatePins, len(ps.Pins) > 0, ps}, {StateApproval, ap.Request != nil, ap}} {
		if !o.has {
			continue
		}
		// Created only if absent: one written since (by this version,
		// in another process) is the truth.
		if err := s.writeState(ctx, site, o.key, o.body, ""); err != nil && !errors.Is(err, ErrStateChanged) {
			return err
		}
	}
	if err := s.writeState(ctx, site, StateSeeded, map[string]any{"seeded_at": time.Now().UTC()}, ""); err != nil && !errors.Is(err, ErrStateChanged) {
		return err
	}
	s.seeded.Store(site.Name, true)
	return nil
}

func (s *SharedStore) writeState(ctx context.Context, site Site, key string, v any, etag string) error {
	body, err := stampWrite(v)
	if err != nil {
		return err
	}
	_, err = s.put(ctx, site, key, body, etag)
	return err
}

// stampWrite encodes a state object with a random "write" of its own, so
// that no two writes are the same bytes: what put needs to tell its own
// write, resent, from another process's.
func stampWrite(v any) ([]byte, error) {
	body, err := json.Marshal(v)
	if err != nil {
		return nil, err
	}
	fields := map[string]json.RawMessage{}
	if err := json.Unmarshal(body, &fields); err != nil {
		return nil, err
	}
	var b [8]byte
	_, _ = rand.Read(b[:])
	fields["write"] = json.RawMessage(`"` + hex.EncodeToString(b[:]) + `"`)
	return json.Marshal(fields)
}

// put is PutState that knows its own write: when the answer to a write
// that S3 made was lost and the SDK sent it again, the second try is
// refused (the object is no longer as read), and the object holds exactly
// this body. That is this write's success, not someone else's change.
func (s *SharedStore) put(ctx context.Context, site Site, key string, body []byte, etag string) (string, error) {
	newETag, err := s.State.PutState(ctx, site, key, body, etag)
	if !errors.Is(err, ErrStateChanged) {
		return newETag, err
	}
	if got, gotETag, gerr := s.State.GetState(ctx, site, key); gerr == nil && bytes.Equal(got, body) {
		return gotETag, nil
	}
	return "", err
}

// updateLock reads the site's lock and writes what change makes of it,
// again from a new read when another writer won; change returns false to
// write nothing.
func (s *SharedStore) updateLock(ctx context.Context, site Site, change func(st *lockState) (bool, error)) (lockState, error) {
	for try := 1; ; try++ {
		var st lockState
		var etag string
		cached := false
		if seen, ok := s.last.LoadAndDelete(site.Name); ok && try == 1 {
			st, etag, cached = seen.(lockSeen).st.clone(), seen.(lockSeen).etag, true
		} else {
			var err error
			if st, etag, err = s.readLock(ctx, site); err != nil {
				return st, err
			}
		}
		was := st.clone()
		if ok, err := change(&st); err != nil || !ok {
			if cached {
				// Nothing to write, or a refusal: decided on what this
				// process last saw, which another may have changed
				// since. Only a fresh read may answer that.
				continue
			}
			if etag != "" {
				s.last.Store(site.Name, lockSeen{st: was, etag: etag})
			}
			return was, err
		}
		st.Write = ""
		body, err := stampWrite(st)
		if err != nil {
			return was, err
		}
		newETag, err := s.put(ctx, site, StateLock, body, etag)
		if err == nil {
			s.last.Store(site.Name, lockSeen{st: st.clone(), etag: newETag})
			return was, nil
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return was, err
		}
	}
}

// clone copies st deeply enough that a change to the copy leaves st alone.
func (st lockState) clone() lockState {
	if st.Lock != nil {
		l := *st.Lock
		st.Lock = &l
	}
	if st.Deploy != nil {
		d := st.Deploy.clone()
		st.Deploy = &d
	}
	return st
}

// take acquires the site's lock for l, or names who holds it.
func (s *SharedStore) take(ctx context.Context, site Site, l Lock) error {
	return s.takeFor(ctx, site, l, nil)
}

// takeFor is take for deploy d, whose record goes with the lock.
func (s *SharedStore) takeFor(ctx context.Context, site Site, l Lock, d *Deploy) error {
	_, err := s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock != nil {
			if err := s.Cache.CacheLock(ctx, site.Name, st.Lock); err != nil {
				return false, err
			}
			return false, &LockedError{Lock: *st.Lock}
		}
		st.Lock, st.Epoch, st.Deploy = &l, st.Epoch+1, d
		return true, nil
	})
	return err
}

// SaveDeploy implements Store: recorded locally, then, while d holds the
// site's lock, in the bucket with it: one write per phase, so that any
// process can finish d if its runner dies.
func (s *SharedStore) SaveDeploy(ctx context.Context, d Deploy) error {
	if err := s.Store.SaveDeploy(ctx, d); err != nil {
		return err
	}
	site, err := s.site(d.Site)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != d.ID {
			return false, nil
		}
		if !runsHere(*st.Lock) {
			return false, fencedError(*st.Lock)
		}
		st.Deploy = &d
		return true, nil
	})
	return err
}

// runsHere reports whether this process runs the deploy or prune holding
// l: the one that took it, or took it over. A lock from a deploybot too
// old to name its process is anyone's.
func runsHere(l Lock) bool { return l.Process == "" || l.Process == processID }

// fencedError is the refusal of a write by a runner that lost l to
// another process.
func fencedError(l Lock) error {
	return Errorf(ECONFLICT, "%s of %s is run by %s now; this process no longer runs it: %w", lockWhat(l), l.Site, runnerText(l), ErrFenced)
}

// ImportRunning records locally the deploy holding the site's lock in the
// bucket, when this store lacks it or has fewer of its phases: a deploy
// another process started, which recovery here may have to finish.
func (s *SharedStore) ImportRunning(ctx context.Context, siteName string) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	st, _, err := s.readLock(ctx, site)
	if err != nil || st.Deploy == nil || st.Lock == nil || st.Deploy.ID != st.Lock.DeployID || st.Deploy.Site != site.Name {
		return err
	}
	d := *st.Deploy
	// The record is outside input (the bucket): recovery acts on its
	// versions, so they are checked as every door checks them.
	if d.Kind != KindPromote && d.Kind != KindRollback || ValidateVersion(d.To) != nil || d.From != "" && ValidateVersion(d.From) != nil || !SafeID(d.ID) {
		return Errorf(EINTERNAL, "site %s: the deploy recorded with the lock in %s%s is not one deploybot writes; nothing was recovered: remove the lock object once the site is checked", site.Name, site.StatePrefix(), StateLock)
	}
	have, err := s.Store.Deploy(ctx, siteName, d.ID)
	switch {
	case ErrorCode(err) == ENOTFOUND:
		return s.Store.ImportDeploys(ctx, []Deploy{d})
	case err != nil:
		return err
	case len(have.Phases) < len(d.Phases) && !have.Phase.Final():
		return s.Store.SaveDeploy(ctx, d)
	}
	return nil
}

// free releases the site's lock if owns says it may, and returns the lock
// that was held (nil when none).
func (s *SharedStore) free(ctx context.Context, site Site, owns func(l Lock) (bool, error), after *Lock) (*Lock, error) {
	was, err := s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil {
			return false, nil
		}
		if ok, err := owns(*st.Lock); !ok || err != nil {
			return false, err
		}
		st.Lock, st.Deploy = after, nil
		return true, nil
	})
	return was.Lock, err
}

// Lock implements Store: the bucket's lock, cached locally.
func (s *SharedStore) Lock(ctx context.Context, siteName string) (*Lock, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readLock(ctx, site)
	if err != nil {
		return nil, err
	}
	if err := s.Cache.CacheLock(ctx, siteName, st.Lock); err != nil {
		return nil, err
	}
	return st.Lock, nil
}

// AcquireLock implements Store: a person's lock, taken in the bucket.
func (s *SharedStore) AcquireLock(ctx context.Context, l Lock) error {
	site, err := s.site(l.Site)
	if err != nil {
		return err
	}
	if err := s.take(ctx, site, l); err != nil {
		return err
	}
	return s.Cache.CacheLock(ctx, l.Site, &l)
}

// ReleaseLock implements Store: a person's lock, freed in the bucket; a
// running deploy's is not.
func (s *SharedStore) ReleaseLock(ctx context.Context, siteName string) (*Lock, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	held, err := s.free(ctx, site, func(l Lock) (bool, error) {
		if l.DeployID != "" {
			return false, Errorf(ECONFLICT, "site %s is locked by %s, which releases it when it ends", siteName, lockWhat(l))
		}
		return true, nil
	}, nil)
	if err != nil {
		return nil, err
	}
	return held, s.Cache.CacheLock(ctx, siteName, nil)
}

// ReleaseLockOf implements Store.
func (s *SharedStore) ReleaseLockOf(ctx context.Context, siteName, owner string) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	held, err := s.free(ctx, site, func(l Lock) (bool, error) { return l.DeployID == owner, nil }, nil)
	if err != nil {
		return err
	}
	if held != nil && held.DeployID != owner {
		return s.Cache.CacheLock(ctx, siteName, held)
	}
	return s.Cache.CacheLock(ctx, siteName, nil)
}

// StartDeploy implements Store: the lock is taken in the bucket, then the
// deploy is recorded locally with it.
func (s *SharedStore) StartDeploy(ctx context.Context, d Deploy, lock Lock) error {
	site, err := s.site(d.Site)
	if err != nil {
		return err
	}
	if err := s.takeFor(ctx, site, lock, &d); err != nil {
		return err
	}
	err = s.Cache.RecordStart(ctx, d, lock)
	if err != nil {
		// Not recorded: the lock goes back, or it would name a deploy no
		// store knows.
		_, _ = s.free(context.WithoutCancel(ctx), site, func(l Lock) (bool, error) { return l.DeployID == d.ID, nil }, nil)
	}
	return err
}

// TouchLock implements Store: the heartbeat goes to the bucket, where
// other replicas judge whether the runner is alive.
func (s *SharedStore) TouchLock(ctx context.Context, l Lock) error {
	if err := s.Store.TouchLock(ctx, l); err != nil {
		return err
	}
	site, err := s.site(l.Site)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != l.DeployID {
			// Freed or taken by someone else: whoever freed it took
			// this runner for gone (recovery), so it must stop.
			held := "nobody"
			if st.Lock != nil {
				held = lockWhat(*st.Lock)
			}
			return false, Errorf(ECONFLICT, "%s no longer holds the lock of %s (held by %s now); this process stops it: %w", lockWhat(l), l.Site, held, ErrFenced)
		}
		// The runner claiming the lock it took a moment ago says nothing
		// new: no write.
		if h := st.Lock; h.Host == l.Host && h.PID == l.PID && h.Process == l.Process && l.Heartbeat.Sub(h.Heartbeat) < time.Second {
			return false, nil
		}
		// Another runner whose heartbeat is fresh holds the deploy (it
		// took it over, or this one was taken for gone while it was
		// cut off): this one is fenced out, not let back in.
		if h := st.Lock; h.Process != "" && h.Process != l.Process && l.Heartbeat.Sub(h.Heartbeat) < staleAfter*DefaultHeartbeat {
			return false, Errorf(ECONFLICT, "deploy %s of %s is run by %s now (alive %s ago); this process no longer runs it: %w",
				l.DeployID, l.Site, runnerText(*h), l.Heartbeat.Sub(h.Heartbeat).Round(time.Second), ErrFenced)
		}
		st.Lock.Host, st.Lock.PID, st.Lock.Process, st.Lock.Heartbeat, st.Lock.Left = l.Host, l.PID, l.Process, l.Heartbeat, false
		return true, nil
	})
	return err
}

// TakeOver names l's runner (this process) as the runner of the deploy
// holding the site's lock, in place of from, the runner recovery judged
// gone (a dead pid on this host, or stale heartbeats). Of processes
// taking over at once, one write wins; the others then find a runner
// other than from and are fenced (ErrFenced).
func (s *SharedStore) TakeOver(ctx context.Context, l, from Lock) error {
	site, err := s.site(l.Site)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		h := st.Lock
		switch {
		case h == nil || h.DeployID != l.DeployID:
			return false, Errorf(ECONFLICT, "deploy %s no longer holds the lock of %s; nothing to take over: %w", l.DeployID, l.Site, ErrFenced)
		case h.Process == l.Process && h.Host == l.Host && h.PID == l.PID:
			return false, nil // this process's already
		case h.Process != from.Process || h.Host != from.Host || h.PID != from.PID:
			return false, fencedError(*h)
		}
		st.Lock.Host, st.Lock.PID, st.Lock.Process, st.Lock.Heartbeat, st.Lock.Left = l.Host, l.PID, l.Process, l.Heartbeat, false
		return true, nil
	})
	if err != nil {
		return err
	}
	return s.Store.TouchLock(ctx, l)
}

// LeaveRun marks the runner of deploy id in the site's lock as gone (this
// process stops: a shutdown), so another replica resumes it at once
// rather than after the missed heartbeats. The lock stays the deploy's.
func (s *SharedStore) LeaveRun(ctx context.Context, siteName, id string) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != id || !runsHere(*st.Lock) || st.Lock.Left {
			return false, nil
		}
		st.Lock.Left = true
		return true, nil
	})
	return err
}

// FinishDeploy implements Store: recorded locally first (the truth of
// what happened is never lost to a bucket that does not answer), then the
// bucket's lock is freed, or handed over to d.LockAfter.
//
// A runner another process took over since its last heartbeat must not
// record an end at all: its record would say done (or failed) while the
// other still runs the deploy, and, mirrored first, it would be the
// history's (a record is written once) whatever the other decides. So
// the bucket's lock is read first, and a fenced runner records nothing:
// one whose lock names another runner, or no longer names d at all
// (whoever freed it took this runner for gone, as TouchLock says). What
// is left is a takeover landing between that read and the local write
// (the free after it is still refused, and says so). A bucket that does
// not answer the read does not keep the end from being recorded.
func (s *SharedStore) FinishDeploy(ctx context.Context, d Deploy, live *Live) error {
	site, err := s.site(d.Site)
	if err != nil {
		return err
	}
	if st, _, err := s.readLock(ctx, site); err == nil {
		switch h := st.Lock; {
		case h == nil || h.DeployID != d.ID:
			held := "nobody"
			if h != nil {
				held = lockWhat(*h)
			}
			return Errorf(ECONFLICT, "deploy %s no longer holds the lock of %s (held by %s now); this process records no end of it: %w", d.ID, d.Site, held, ErrFenced)
		case !runsHere(*h):
			return fencedError(*h)
		}
	}
	if err := s.Store.FinishDeploy(ctx, d, live); err != nil {
		return err
	}
	_, err = s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Lock == nil || st.Lock.DeployID != d.ID {
			return false, nil
		}
		if !runsHere(*st.Lock) {
			return false, fencedError(*st.Lock)
		}
		st.Lock, st.Deploy = d.LockAfter, nil
		if live != nil {
			st.Live = live
		}
		return true, nil
	})
	if errors.Is(err, ErrFenced) {
		return err
	}
	if err != nil {
		return fmt.Errorf("deploy %s is recorded, but freeing the site's lock in the bucket failed (deploybot recover frees it): %w", d.ID, err)
	}
	return nil
}

// Live implements Store: the live pointer the bucket's lock object
// carries (one read), cached locally; the local store's when the bucket
// has none yet.
func (s *SharedStore) Live(ctx context.Context, siteName string) (Live, bool, error) {
	site, err := s.site(siteName)
	if err != nil {
		return Live{}, false, err
	}
	st, _, err := s.readLock(ctx, site)
	if err != nil {
		return Live{}, false, err
	}
	local, ok, err := s.Store.Live(ctx, siteName)
	if err != nil || st.Live == nil {
		return local, ok, err
	}
	if !ok || !local.same(*st.Live) {
		if err := s.Store.SetLive(ctx, siteName, *st.Live); err != nil {
			return Live{}, false, err
		}
	}
	return *st.Live, true, nil
}

// SetLive implements Store: a live pointer moved outside a deploy
// (reconcile found drift) is shared like a deploy's.
func (s *SharedStore) SetLive(ctx context.Context, siteName string, live Live) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	if _, err := s.updateLock(ctx, site, func(st *lockState) (bool, error) {
		if st.Live != nil && st.Live.same(live) {
			return false, nil
		}
		st.Live = &live
		return true, nil
	}); err != nil {
		return err
	}
	return s.Store.SetLive(ctx, siteName, live)
}

// same reports whether l and o say the same (times compared as instants:
// one read back from JSON has another location).
func (l Live) same(o Live) bool {
	return l.Version == o.Version && l.DeployID == o.DeployID && l.Since.Equal(o.Since)
}

func (s *SharedStore) readFreeze(ctx context.Context, site Site) (freezeState, string, error) {
	var st freezeState
	etag, err := s.readState(ctx, site, StateFreeze, &st, func() string {
		if st.Freeze != nil && st.Freeze.Site != site.Name {
			return fmt.Sprintf("names site %q", st.Freeze.Site)
		}
		return ""
	})
	if err == nil && etag == "" && ctx.Value(seedingKey{}) == nil {
		return seed(ctx, s, site, st, s.readFreeze)
	}
	return st, etag, err
}

// updateFreeze is updateLock for the freeze object.
func (s *SharedStore) updateFreeze(ctx context.Context, site Site, change func(st *freezeState) bool) (freezeState, error) {
	for try := 1; ; try++ {
		st, etag, err := s.readFreeze(ctx, site)
		if err != nil {
			return st, err
		}
		was := st
		if !change(&st) {
			return was, nil
		}
		err = s.writeState(ctx, site, StateFreeze, st, etag)
		if err == nil {
			return was, nil
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return was, err
		}
	}
}

// SetFreeze implements Store.
func (s *SharedStore) SetFreeze(ctx context.Context, f Freeze) error {
	site, err := s.site(f.Site)
	if err != nil {
		return err
	}
	if _, err := s.updateFreeze(ctx, site, func(st *freezeState) bool { st.Freeze = &f; return true }); err != nil {
		return err
	}
	return s.Cache.CacheFreeze(ctx, f.Site, &f)
}

// Freeze implements Store: the bucket's, cached locally.
func (s *SharedStore) Freeze(ctx context.Context, siteName string) (*Freeze, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readFreeze(ctx, site)
	if err != nil {
		return nil, err
	}
	return st.Freeze, s.Cache.CacheFreeze(ctx, siteName, st.Freeze)
}

// DeleteFreeze implements Store.
func (s *SharedStore) DeleteFreeze(ctx context.Context, siteName string) (*Freeze, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	was, err := s.updateFreeze(ctx, site, func(st *freezeState) bool {
		if st.Freeze == nil {
			return false
		}
		st.Freeze = nil
		return true
	})
	if err != nil {
		return nil, err
	}
	return was.Freeze, s.Cache.CacheFreeze(ctx, siteName, nil)
}

// approvalState is the body of a site's approval object: its latest
// request. A site has one pending request at most, so the latest is the
// only one that can still change; earlier ones are history, kept by the
// stores that saw them.
type approvalState struct {
	Request *ApprovalRequest `json:"request"`
	Write   string           `json:"write,omitempty"`
}

func (s *SharedStore) readApproval(ctx context.Context, site Site) (approvalState, string, error) {
	var st approvalState
	etag, err := s.readState(ctx, site, StateApproval, &st, func() string {
		a := st.Request
		switch {
		case a == nil:
			return ""
		case a.Site != site.Name:
			return fmt.Sprintf("names site %q", a.Site)
		case ValidateVersion(a.Version) != nil || !SafeID(a.ID) || a.Required < 0 || a.Required > 5 || len(a.Approvals) > 5:
			return "holds a request deploybot would not have made"
		}
		return ""
	})
	if err == nil && etag == "" && ctx.Value(seedingKey{}) == nil {
		return seed(ctx, s, site, st, s.readApproval)
	}
	return st, etag, err
}

// CreateApproval implements Store: the request becomes the site's latest
// in the bucket, unless the latest still waits (a *PendingError naming
// it), whichever process asked.
func (s *SharedStore) CreateApproval(ctx context.Context, a ApprovalRequest) error {
	site, err := s.site(a.Site)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		st, etag, err := s.readApproval(ctx, site)
		if err != nil {
			return err
		}
		if p := st.Request; p != nil {
			if err := s.Cache.CacheApproval(ctx, *p); err != nil {
				return err
			}
			if p.Pending(a.Requested) {
				return &PendingError{Request: *p}
			}
		}
		err = s.writeState(ctx, site, StateApproval, approvalState{Request: &a}, etag)
		if err == nil {
			return s.Cache.CacheApproval(ctx, a)
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return err
		}
	}
}

// UpdateApproval implements Store: the site's latest request changes in
// the bucket, by compare-and-swap (fn runs again on a fresh read when
// another process decided meanwhile); an earlier one only in the local
// store, where fn finds it decided.
func (s *SharedStore) UpdateApproval(ctx context.Context, siteName, id string, fn func(*ApprovalRequest) error) (ApprovalRequest, error) {
	site, err := s.site(siteName)
	if err != nil {
		return ApprovalRequest{}, err
	}
	for try := 1; ; try++ {
		st, etag, err := s.readApproval(ctx, site)
		if err != nil {
			return ApprovalRequest{}, err
		}
		if st.Request == nil || st.Request.ID != id {
			return s.Store.UpdateApproval(ctx, siteName, id, fn)
		}
		a := *st.Request
		a.Approvals = append([]ApprovalVote(nil), a.Approvals...)
		if err := fn(&a); err != nil {
			return ApprovalRequest{}, err
		}
		err = s.writeState(ctx, site, StateApproval, approvalState{Request: &a}, etag)
		if err == nil {
			return a, s.Cache.CacheApproval(ctx, a)
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return ApprovalRequest{}, err
		}
	}
}

// Approval implements Store: the bucket's when it is the site's latest.
func (s *SharedStore) Approval(ctx context.Context, siteName, id string) (ApprovalRequest, error) {
	site, err := s.site(siteName)
	if err != nil {
		return ApprovalRequest{}, err
	}
	st, _, err := s.readApproval(ctx, site)
	if err != nil {
		return ApprovalRequest{}, err
	}
	if st.Request != nil && st.Request.ID == id {
		return *st.Request, s.Cache.CacheApproval(ctx, *st.Request)
	}
	return s.Store.Approval(ctx, siteName, id)
}

// Approvals implements Store: the local store's, with the bucket's latest
// request in it as the bucket says (asked by another process, or decided
// there since).
func (s *SharedStore) Approvals(ctx context.Context, siteName string, limit int) ([]ApprovalRequest, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readApproval(ctx, site)
	if err != nil {
		return nil, err
	}
	if st.Request != nil {
		if err := s.Cache.CacheApproval(ctx, *st.Request); err != nil {
			return nil, err
		}
	}
	return s.Store.Approvals(ctx, siteName, limit)
}

// pinsState is the body of a site's pins object.
type pinsState struct {
	Pins  []Pin  `json:"pins"`
	Write string `json:"write,omitempty"`
}

func (s *SharedStore) readPins(ctx context.Context, site Site) (pinsState, string, error) {
	var st pinsState
	etag, err := s.readState(ctx, site, StatePins, &st, func() string {
		for _, p := range st.Pins {
			if p.Site != site.Name || ValidateVersion(p.Version) != nil {
				return fmt.Sprintf("holds a pin of site %q, version %q", p.Site, p.Version)
			}
		}
		return ""
	})
	if err == nil && etag == "" && ctx.Value(seedingKey{}) == nil {
		return seed(ctx, s, site, st, s.readPins)
	}
	return st, etag, err
}

// updatePins changes the site's pins object by compare-and-swap and
// caches the result.
func (s *SharedStore) updatePins(ctx context.Context, siteName string, change func(pins []Pin) ([]Pin, bool)) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	for try := 1; ; try++ {
		st, etag, err := s.readPins(ctx, site)
		if err != nil {
			return err
		}
		pins, ok := change(st.Pins)
		if !ok {
			return s.Cache.CachePins(ctx, siteName, st.Pins)
		}
		err = s.writeState(ctx, site, StatePins, pinsState{Pins: pins}, etag)
		if err == nil {
			return s.Cache.CachePins(ctx, siteName, pins)
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return err
		}
	}
}

// SetPin implements Store.
func (s *SharedStore) SetPin(ctx context.Context, p Pin) error {
	return s.updatePins(ctx, p.Site, func(pins []Pin) ([]Pin, bool) {
		out := []Pin{p}
		for _, q := range pins {
			if q.Version != p.Version {
				out = append(out, q)
			}
		}
		return out, true
	})
}

// DeletePin implements Store.
func (s *SharedStore) DeletePin(ctx context.Context, site, version string) (bool, error) {
	had := false
	if err := s.updatePins(ctx, site, func(pins []Pin) ([]Pin, bool) {
		var out []Pin
		for _, q := range pins {
			if q.Version == version {
				had = true
				continue
			}
			out = append(out, q)
		}
		return out, had
	}); err != nil {
		return false, err
	}
	return had, nil
}

// Pins implements Store: the bucket's, cached locally.
func (s *SharedStore) Pins(ctx context.Context, siteName string) (map[string]Pin, error) {
	site, err := s.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := s.readPins(ctx, site)
	if err != nil {
		return nil, err
	}
	if err := s.Cache.CachePins(ctx, siteName, st.Pins); err != nil {
		return nil, err
	}
	out := make(map[string]Pin, len(st.Pins))
	for _, p := range st.Pins {
		out[p.Version] = p
	}
	return out, nil
}

// runState is the body of a site's object for one scheduled job: the
// latest planned time a process claimed to run it for.
type runState struct {
	At    time.Time `json:"at"`
	Write string    `json:"write,omitempty"`
}

// runClaimAhead is how far past the run planned now a scheduled run's
// claim may be dated and still hold.
const runClaimAhead = 24 * time.Hour

// ClaimRun claims the run of job (a scheduled prune) that site's schedule
// planned for at: of all the processes whose timers fire for that time,
// exactly one gets true, and every other false. A process that is down
// claims nothing, so a run is lost only when none is up.
func (s *SharedStore) ClaimRun(ctx context.Context, siteName, job string, at time.Time) (bool, error) {
	site, err := s.site(siteName)
	if err != nil {
		return false, err
	}
	key := "runs/" + job + ".json"
	for try := 1; ; try++ {
		var st runState
		etag, err := s.readState(ctx, site, key, &st, func() string { return "" })
		if err != nil {
			return false, err
		}
		// A claim dated over a day past the run planned now was not
		// made by a process whose clock agrees (or by deploybot): it
		// holds nothing, or no planned run would ever run again.
		if !st.At.Before(at) && !st.At.After(at.Add(runClaimAhead)) {
			return false, nil
		}
		err = s.writeState(ctx, site, key, runState{At: at.UTC()}, etag)
		if err == nil {
			return true, nil
		}
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return false, err
		}
	}
}
