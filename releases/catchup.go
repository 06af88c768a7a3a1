package releases

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"time"
)

// Catching up: every replica and command line keeps its own store, an
// index of the bucket. The shared state objects are read where they are
// needed; the history (deploys and audit entries other processes
// recorded) reaches this store from the bucket's mirror of it. PullHistory
// lists what was mirrored in the last CatchUpWindow, after the last key
// already read, and reads only what this store lacks: two LISTs and a GET
// per new record. Rollback, history and status ask for it before they
// answer; serve's watch asks when the live release was moved by a deploy
// this store does not know ended.

// CatchUpWindow is how far back a catch-up looks: deploys are keyed by
// when they started, and one approved hours after it was asked for (its
// id is the request's) or a long one is mirrored late, under an old key.
const CatchUpWindow = 24 * time.Hour

// pulled remembers, per Service and site, the audit keys read and the
// deploy keys skipped as not deploybot's (within the window) so that each
// catch-up reads only new ones, and what the watch last caught up for.
type pulled struct {
	mu      sync.Mutex
	audit   map[string]map[string]bool // site -> key
	bad     map[string]map[string]bool // site -> key of a deploy skipped
	watched map[string]watchedPull     // site -> the watch's last catch-up
}

// watchedPull is a catch-up the watch made for a live release moved by a
// deploy this store did not know ended, and when it may try again.
type watchedPull struct {
	id    string
	next  time.Time
	after time.Duration
}

// Watch catch-ups for one deploy record that has not come back off: the
// first again after watchRetry, then twice as long each time up to
// watchRetryMax (a record lost with its pod never comes).
const (
	watchRetry    = 15 * time.Second
	watchRetryMax = 10 * time.Minute
)

func (p *pulled) seen(set map[string]map[string]bool, site, key string) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	return set[site][key]
}

// mark remembers key in *set for site.
func (p *pulled) mark(set *map[string]map[string]bool, site, key string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	if *set == nil {
		*set = map[string]map[string]bool{}
	}
	m := (*set)[site]
	if m == nil {
		m = map[string]bool{}
		(*set)[site] = m
	}
	m[key] = true
}

// forget drops from set the keys of site below floor: out of the window,
// never listed again. Once per catch-up, not per key.
func (p *pulled) forget(set map[string]map[string]bool, site, floor string) {
	p.mu.Lock()
	defer p.mu.Unlock()
	for k := range set[site] {
		if k < floor {
			delete(set[site], k)
		}
	}
}

// watchDue reports whether the watch should catch up now for deploy id,
// and records that it does.
func (p *pulled) watchDue(site, id string, now time.Time) bool {
	p.mu.Lock()
	defer p.mu.Unlock()
	w, ok := p.watched[site]
	if ok && w.id == id && now.Before(w.next) {
		return false
	}
	after := watchRetry
	if ok && w.id == id {
		after = min(2*w.after, watchRetryMax)
	}
	if p.watched == nil {
		p.watched = map[string]watchedPull{}
	}
	p.watched[site] = watchedPull{id: id, next: now.Add(after), after: after}
	return true
}

// historyKeyFormat is the time an audit entry's key starts with (a
// deploy's, its id, has microseconds).
const historyKeyFormat = "20060102T150405.000000000Z"

// catchUpAhead is how far past now a mirrored key may be dated (clocks of
// processes that disagree): what is keyed later was not mirrored by a
// deploybot, is never read, and is not even listed where the bucket can
// stop (HistoryRanger).
const catchUpAhead = time.Hour

// HistoryRanger is a Bucket that lists a part of the history: the keys
// under dir after after and before before.
type HistoryRanger interface {
	ListHistoryRange(ctx context.Context, site Site, dir, after, before string) ([]string, error)
}

// listWindow lists the keys under dir after after that sort before
// before.
func (s *Service) listWindow(ctx context.Context, site Site, dir, after, before string) ([]string, error) {
	if r, ok := s.Bucket.(HistoryRanger); ok {
		return r.ListHistoryRange(ctx, site, dir, after, before)
	}
	keys, err := s.Bucket.ListHistory(ctx, site, dir, after)
	out := keys[:0]
	for _, k := range keys {
		if k < before {
			out = append(out, k)
		}
	}
	return out, err
}

// PullHistory reads into this store the deploys and audit entries other
// processes mirrored to the bucket in the last CatchUpWindow (deploys:
// since a window before the newest this store knows, when that is
// earlier) that it lacks, and the final record of deploys it knew only as running. It
// returns how many records it read. A store that shares nothing (no
// SharedStore) has nothing to catch up on. One bad object is skipped and
// logged, never trusted.
func (s *Service) PullHistory(ctx context.Context, siteName string) (int, error) {
	if _, ok := s.Store.(*SharedStore); !ok {
		return 0, nil
	}
	site, err := s.Site(siteName)
	if err != nil {
		return 0, err
	}
	from := s.now().Add(-CatchUpWindow).UTC()
	// A store that fell further behind (a command line used weekly, a
	// replica down for a weekend with its volume kept) reads every deploy
	// since the newest it knows, once: a rollback walks back through
	// them all, and prune keeps what they made live.
	deploysFrom := from
	if ds, err := s.Store.Deploys(ctx, site.Name, 1); err != nil {
		return 0, err
	} else if len(ds) > 0 && ds[0].StartedAt.Add(-CatchUpWindow).Before(deploysFrom) {
		deploysFrom = ds[0].StartedAt.Add(-CatchUpWindow).UTC()
	}
	n, err := s.pullDeploys(ctx, site, deploysFrom)
	if err != nil {
		return n, err
	}
	m, err := s.pullAudit(ctx, site, from)
	return n + m, err
}

func (s *Service) pullDeploys(ctx context.Context, site Site, from time.Time) (int, error) {
	after := HistoryDeploys + from.Format("20060102T150405.000000Z")
	keys, err := s.listWindow(ctx, site, HistoryDeploys, after, HistoryDeploys+s.now().Add(catchUpAhead).UTC().Format("20060102T150405.000000Z"))
	if err != nil {
		return 0, err
	}
	s.pulled.forget(s.pulled.bad, site.Name, after)
	var news []Deploy
	read := 0
	for _, k := range keys {
		id, ok := strings.CutSuffix(strings.TrimPrefix(k, HistoryDeploys), ".json")
		if !ok || !SafeID(id) {
			continue
		}
		if _, here := running.Load(id); here || s.pulled.seen(s.pulled.bad, site.Name, k) {
			continue
		}
		have, err := s.Store.Deploy(ctx, site.Name, id)
		known := err == nil
		if known && have.Phase.Final() {
			continue
		} else if err != nil && ErrorCode(err) != ENOTFOUND {
			return read, err
		}
		var d Deploy
		if err := s.readHistory(ctx, site, k, &d); err != nil {
			if errors.Is(err, ErrNoHistory) || ErrorCode(err) == EINVALID {
				s.logger().WarnContext(ctx, "catching up: a mirrored deploy was skipped", "site", site.Name, "key", site.HistoryPrefix()+k, "err", err)
				s.pulled.mark(&s.pulled.bad, site.Name, k)
				continue
			}
			return read, err
		}
		if why := badDeploy(site, d); why != "" || d.ID != id {
			s.logger().WarnContext(ctx, "catching up: a mirrored deploy was skipped", "site", site.Name, "key", site.HistoryPrefix()+k, "why", why)
			s.pulled.mark(&s.pulled.bad, site.Name, k)
			continue
		}
		read++
		if known {
			// Known here as running (imported while another process ran
			// it): its final record replaces it, in this store only (the
			// bucket's lock is its runner's to write, and a read writes
			// nothing there).
			local := s.Store
			if sh, ok := s.Store.(*SharedStore); ok {
				local = sh.Store
			}
			if err := local.SaveDeploy(ctx, d); err != nil {
				return read, err
			}
			continue
		}
		news = append(news, d)
	}
	return read, s.Store.ImportDeploys(ctx, news)
}

// badDeploy says why a mirrored deploy record is not one deploybot
// writes ("" when it is): the bucket is outside input, and a deploy's id
// becomes a store key and an object key, its versions origin paths.
func badDeploy(site Site, d Deploy) string {
	if d.Site != site.Name || !d.Phase.Final() || !versionRE.MatchString(d.ID) || ValidateVersion(d.To) != nil ||
		d.From != "" && ValidateVersion(d.From) != nil {
		return fmt.Sprintf("deploy %q names another site, is not finished, or has an id or version deploybot would not write", d.ID)
	}
	return ""
}

func (s *Service) pullAudit(ctx context.Context, site Site, from time.Time) (int, error) {
	floor := HistoryAudit + from.Format(historyKeyFormat)
	keys, err := s.listWindow(ctx, site, HistoryAudit, floor, HistoryAudit+s.now().Add(catchUpAhead).UTC().Format(historyKeyFormat))
	if err != nil {
		return 0, err
	}
	s.pulled.forget(s.pulled.audit, site.Name, floor)
	var news []AuditEntry
	for _, k := range keys {
		if s.pulled.seen(s.pulled.audit, site.Name, k) {
			continue
		}
		var e AuditEntry
		if err := s.readHistory(ctx, site, k, &e); err != nil {
			if errors.Is(err, ErrNoHistory) || ErrorCode(err) == EINVALID {
				s.logger().WarnContext(ctx, "catching up: a mirrored audit entry was skipped", "site", site.Name, "key", site.HistoryPrefix()+k, "err", err)
				s.pulled.mark(&s.pulled.audit, site.Name, k)
				continue
			}
			return len(news), err
		}
		s.pulled.mark(&s.pulled.audit, site.Name, k)
		if e.Site != site.Name {
			s.logger().WarnContext(ctx, "catching up: a mirrored audit entry was skipped", "site", site.Name, "key", site.HistoryPrefix()+k, "why", "another site's")
			continue
		}
		news = append(news, e)
	}
	return len(news), s.Store.ImportAudit(ctx, news)
}

// catchUp is PullHistory for a read that should see what other
// processes did: a failure is logged, and the read answers from what
// this store has.
func (s *Service) catchUp(ctx context.Context, site string) {
	if _, err := s.PullHistory(ctx, site); err != nil && ctx.Err() == nil {
		s.logger().WarnContext(ctx, "catching up with the bucket's history; answering from this store", "site", site, "err", err)
	}
}

// Watch is what serve asks of each site every few seconds, on every
// replica: a deploy whose runner is gone is finished (of replicas
// finishing it at once, the one whose claim in the lock wins), and when
// a deploy this store does not know ended moved the live release, the
// history is caught up so that rollbacks here walk back through it.
func (s *Service) Watch(ctx context.Context, siteName string, progress Progress) ([]Deploy, error) {
	sh, shared := s.Store.(*SharedStore)
	if !shared {
		l, err := s.Store.Lock(ctx, siteName)
		if err != nil || l == nil || l.DeployID == "" || !s.RunnerGone(*l) {
			return nil, err
		}
		return s.RecoverSite(ctx, siteName, progress)
	}
	// One read of the lock object says both who runs and what is live.
	site, err := sh.site(siteName)
	if err != nil {
		return nil, err
	}
	st, _, err := sh.readLock(ctx, site)
	if err != nil {
		return nil, err
	}
	if l := st.Lock; l != nil && l.DeployID != "" && s.RunnerGone(*l) {
		return s.RecoverSite(ctx, siteName, progress)
	}
	live := st.Live
	if live == nil || live.DeployID == "" {
		return nil, nil
	}
	if d, err := s.Store.Deploy(ctx, siteName, live.DeployID); err == nil && d.Phase.Final() {
		return nil, nil
	}
	// A record that did not come (lost with its pod, or never written)
	// is looked for again less and less often, not every few seconds.
	if !s.pulled.watchDue(siteName, live.DeployID, s.now()) {
		return nil, nil
	}
	_, err = s.PullHistory(ctx, siteName)
	return nil, err
}
