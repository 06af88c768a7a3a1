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
