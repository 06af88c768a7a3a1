package releases

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"time"
)

// The site lease: which one of the replicas sharing a site runs the jobs
// that must run once per site and are not a deploy (the deploy's own lock
// says who runs it): the release notices reconcile finds, drift found by
// reconcile reaching the chat, approval expiry, scheduled prunes (each
// also claimed per run, see ClaimRun). One object per site,
// StatePrefix/lease.json, holding the holder's process id and when the
// lease expires. It is taken with If-None-Match: * (none yet) or with
// If-Match on an expired one, its epoch raised; renewed with If-Match a
// third of the way through; given up by writing it expired. Of replicas
// racing for a lapsed lease, one write wins; the others read the winner.
//
// A holder that stalls (a paused process, a partition) past its expiry
// still believes it holds the lease until its own clock says otherwise:
// Holds answers from the expiry this process last wrote, minus a margin
// for clocks that disagree. What a late holder then does anyway is fenced
// where it matters: a deploy by the lock, a flip by the distribution's
// ETag or the key's, a prune by its run claim and the lock.

// StateLease is the site lease's object key, under Site.StatePrefix.
const StateLease = "lease.json"

// DefaultLease is how long a lease holds without renewal: a replica that
// dies leaves its sites' notices, drift reports and approval expiries
// undone this long at most (none is urgent: a deploy's own work is the
// lock's, taken over within seconds). Renewal is a third of it: 60
// writes an hour per site while held, and 60 reads by each replica
// waiting for it.
const DefaultLease = 3 * time.Minute

// leaseState is the body of a site's lease object.
type leaseState struct {
	Holder  string    `json:"holder"` // the holding process's id
	Host    string    `json:"host,omitempty"`
	PID     int       `json:"pid,omitempty"`
	Epoch   int64     `json:"epoch"`
	Expires time.Time `json:"expires"`
	Write   string    `json:"write,omitempty"`
}

// Lease says who holds a site's lease, for logs and status.
type Lease struct {
	Site    string
	Holder  string
	Host    string
	PID     int
	Epoch   int64
	Expires time.Time
	Mine    bool
}

// leaseSeen is what this process last wrote of a site's lease.
type leaseSeen struct {
	st   leaseState
	etag string
	ttl  time.Duration
}

// HoldLease takes the site's lease for this process if it is free or has
// lapsed, renews it if this process holds it, and otherwise says who
// does. now is the caller's clock; ttl the lease's length (zero:
// DefaultLease). A lost race is an answer: the winner is read and named.
func (s *SharedStore) HoldLease(ctx context.Context, siteName string, now time.Time, ttl time.Duration) (Lease, error) {
	site, err := s.site(siteName)
	if err != nil {
		return Lease{}, err
	}
	if ttl <= 0 {
		ttl = DefaultLease
	}
	for try := 1; ; try++ {
		var st leaseState
		var etag string
		if seen, ok := s.leases.Load(site.Name); ok && try == 1 && seen.(leaseSeen).st.Holder == s.me() {
			// Renewing what this process wrote: no read. If anyone
			// wrote since, S3 refuses on the ETag and the loop reads.
			st, etag = seen.(leaseSeen).st, seen.(leaseSeen).etag
		} else if st, etag, err = s.readLease(ctx, site); err != nil {
			return Lease{}, err
		}
		// A lease that expires further ahead than a lease lasts was not
		// written by a holder whose clock agrees with this one's (or by
		// deploybot): it holds nothing, or no replica would ever hold
		// the site's jobs again.
		if st.Holder != "" && st.Holder != s.me() && now.Before(st.Expires) && !st.Expires.After(now.Add(2*ttl)) {
			s.leases.Delete(site.Name)
			return st.lease(site.Name, s.me()), nil
		}
		next := st
		if st.Holder != s.me() || !now.Before(st.Expires) {
			next.Epoch++ // a new tenure: what the last one writes late is told apart
		}
		host, _ := os.Hostname()
		pid := os.Getpid()
		next.Holder, next.Host, next.PID, next.Expires = s.me(), host, pid, now.Add(ttl).UTC()
		next.Write = ""
		body, err := stampWrite(next)
		if err != nil {
			return Lease{}, err
		}
		newETag, err := s.put(ctx, site, StateLease, body, etag)
		if err == nil {
			s.leases.Store(site.Name, leaseSeen{st: next, etag: newETag, ttl: ttl})
			return next.lease(site.Name, s.me()), nil
		}
		s.leases.Delete(site.Name)
		if !errors.Is(err, ErrStateChanged) || try == casTries {
			return Lease{}, fmt.Errorf("site %s: taking the site lease: %w", site.Name, err)
		}
	}
}

// readLease reads the site's lease. One that does not decode as
// deploybot writes it, or names a holder deploybot would not, is taken
// for a lapsed lease (its ETag kept, so that taking it is still a
// compare-and-swap) rather than refused: the lease guards nothing a
// refusal would protect (what a holder does is fenced elsewhere), and a
// refused lease would stop the site's notices, drift reports and approval
// expiry on every replica until someone removed it by hand.
func (s *SharedStore) readLease(ctx context.Context, site Site) (leaseState, string, error) {
	body, etag, err := s.State.GetState(ctx, site, StateLease)
	if errors.Is(err, ErrNoState) {
		return leaseState{}, "", nil
	}
	if err != nil {
		return leaseState{}, "", err
	}
	var st leaseState
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.DisallowUnknownFields()
	if dec.Decode(&st) != nil || st.Holder != "" && !SafeID(st.Holder) || len(st.Host) > 255 {
		return leaseState{}, etag, nil
	}
	return st, etag, nil
}

// HoldsLease reports whether this process holds the site's lease as of
// now, by what it last wrote, with a margin of a tenth of the lease for
// clocks that disagree: no request.
func (s *SharedStore) HoldsLease(siteName string, now time.Time) bool {
	seen, ok := s.leases.Load(siteName)
	if !ok {
		return false
	}
	l := seen.(leaseSeen)
	return l.st.Holder == s.me() && now.Before(l.st.Expires.Add(-l.ttl/10))
}

// ReleaseLease gives up the site's lease if this process holds it (at
// shutdown), so another replica takes the jobs over at its next renewal
// instead of after the expiry.
func (s *SharedStore) ReleaseLease(ctx context.Context, siteName string, now time.Time) error {
	site, err := s.site(siteName)
	if err != nil {
		return err
	}
	seen, ok := s.leases.LoadAndDelete(siteName)
	if !ok || seen.(leaseSeen).st.Holder != s.me() {
		return nil
	}
	st := seen.(leaseSeen).st
	st.Expires, st.Write = now.UTC(), ""
	body, err := stampWrite(st)
	if err != nil {
		return err
	}
	if _, err := s.put(ctx, site, StateLease, body, seen.(leaseSeen).etag); err != nil && !errors.Is(err, ErrStateChanged) {
		return err
	}
	return nil
}

func (st leaseState) lease(site, me string) Lease {
	return Lease{Site: site, Holder: st.Holder, Host: st.Host, PID: st.PID, Epoch: st.Epoch, Expires: st.Expires, Mine: st.Holder == me}
}

// me names this process as a lease holder.
func (s *SharedStore) me() string {
	if s.Process != "" {
		return s.Process
	}
	return processID
}

// lease is the site lease's length for this service.
func (s *Service) lease() time.Duration {
	if s.Lease > 0 {
		return s.Lease
	}
	return DefaultLease
}

// HoldLease takes or renews the site's lease (see SharedStore.HoldLease);
// a store of one process holds every lease.
func (s *Service) HoldLease(ctx context.Context, site string) (Lease, error) {
	if sh, ok := s.Store.(*SharedStore); ok {
		return sh.HoldLease(ctx, site, s.now(), s.lease())
	}
	return Lease{Site: site, Mine: true}, nil
}

// HoldsLease reports, without a request, whether this process holds the
// site's lease now: whether it should run the site's once-per-site jobs.
func (s *Service) HoldsLease(site string) bool {
	if sh, ok := s.Store.(*SharedStore); ok {
		return sh.HoldsLease(site, s.now())
	}
	return true
}

// ReleaseLeases gives up every lease this process holds (at shutdown).
func (s *Service) ReleaseLeases(ctx context.Context) error {
	sh, ok := s.Store.(*SharedStore)
	if !ok {
		return nil
	}
	var errs []error
	for _, site := range s.Sites {
		errs = append(errs, sh.ReleaseLease(ctx, site.Name, s.now()))
	}
	return errors.Join(errs...)
}

// LeaseRenewal is how often a holder renews its lease: a third of it.
func (s *Service) LeaseRenewal() time.Duration { return s.lease() / 3 }
