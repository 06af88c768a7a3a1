package releases

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Freeze stops promotes of the site (or every site) until req.Until; a
// new freeze replaces the site's earlier run-time one. Each site's freeze
// is one audit record.
//
// Every site is decided before any is written: a freeze of all sites
// that one site refuses (its deployers do not include the actor, or
// someone else's freeze holds it) freezes none, and says which sites
// refused and why, rather than leaving the sites after the refusing one
// unfrozen in the middle of an incident while the earlier ones are. A
// write that fails does not stop the other sites' writes.
func (s *Service) Freeze(ctx context.Context, req FreezeRequest) ([]Freeze, error) {
	sites, err := s.sitesOf(req.Site, req.All)
	if err == nil {
		err = checkReason("the reason", req.Reason)
	}
	if err != nil {
		s.audit(ctx, req.Site, req.Actor, "freeze", req.Reason, err)
		return nil, err
	}
	now := s.now()
	until, err := ParseUntil(req.Until, now)
	// When it ends, not what was typed: "2h" says nothing a day later.
	end := req.Until
	if !until.IsZero() {
		end = until.UTC().Format(time.RFC3339)
	}
	detail := joinDetail("until "+end, req.Reason)
	if err != nil {
		// One mistyped time is one refusal, recorded where the first
		// site's would be.
		s.audit(ctx, sites[0].Name, req.Actor, "freeze", detail, err)
		return nil, err
	}
	freezes := make([]Freeze, len(sites))
	decided := make([]*Freeze, len(sites))
	err = s.decideEach(ctx, sites, "freeze", detail, func(i int, site Site) (string, error) {
		actor, cur, err := s.mayFreeze(ctx, site, req.Actor)
		decided[i] = cur
		freezes[i] = Freeze{Site: site.Name, From: now, Until: until, Reason: req.Reason, By: actor, At: now}
		if err == nil {
			err = s.checkFreeze(freezes[i], now)
		}
		return actor, err
	})
	if err != nil {
		return nil, err
	}
	var out []Freeze
	var failed siteErrors
	for i, f := range freezes {
		_, err := s.Store.SwapFreeze(ctx, f.Site, decided[i], &f)
		s.audit(ctx, f.Site, f.By, "freeze", detail, err)
		if err != nil {
			failed.add(f.Site, err)
			continue
		}
		s.logger().InfoContext(ctx, "site frozen", "site", f.Site, "actor", f.By, "until", until, "reason", req.Reason)
		out = append(out, f)
	}
	return out, failed.err("froze", len(out))
}

func (s *Service) checkFreeze(f Freeze, now time.Time) error {
	switch {
	case f.Reason == "":
		return Errorf(EINVALID, "say why site %s is frozen", f.Site)
	case f.By == "":
		return Errorf(EINVALID, "a freeze needs an actor")
	case !f.Until.After(now):
		return Errorf(EINVALID, "a freeze ends in the future (got %s)", f.Until.UTC().Format(time.RFC3339))
	case f.Until.Sub(now) > MaxFreeze:
		return Errorf(EINVALID, "a freeze from chat or the command line lasts at most %d days (got until %s); put longer ones in the configuration's freezes",
			int(MaxFreeze.Hours()/24), f.Until.UTC().Format(time.RFC3339))
	}
	return nil
}

// Unfreeze lifts the run-time freeze of the site (or every site); it
// returns the freezes lifted. A freeze of the configuration stays. As for
// Freeze, every site is decided before any freeze is lifted.
func (s *Service) Unfreeze(ctx context.Context, siteName string, all bool, actor string) ([]Freeze, error) {
	sites, err := s.sitesOf(siteName, all)
	if err != nil {
		s.audit(ctx, siteName, actor, "unfreeze", "", err)
		return nil, err
	}
	// whos[i] is who lifts site i's freeze; "" where all sites are asked
	// and this one has none to lift, so that a site where the actor may
	// not act, with nothing to lift, does not refuse the others.
	whos := make([]string, len(sites))
	decided := make([]*Freeze, len(sites))
	now := s.now()
	err = s.decideEach(ctx, sites, "unfreeze", "", func(i int, site Site) (string, error) {
		if all {
			if f, err := s.Store.Freeze(ctx, site.Name); err != nil || f == nil || !f.Active(now) {
				return actor, err
			}
		}
		who, cur, err := s.mayLiftFreeze(ctx, site, actor, "unfreeze")
		whos[i], decided[i] = who, cur
		return who, err
	})
	if err != nil {
		return nil, err
	}
	var out []Freeze
	var failed siteErrors
	for i, site := range sites {
		if whos[i] == "" {
			continue
		}
		if decided[i] == nil {
			continue // nothing to lift
		}
		f, err := s.Store.SwapFreeze(ctx, site.Name, decided[i], nil)
		// A site that was not frozen did not change: nothing to record.
		if f != nil || err != nil {
			detail := ""
			if f != nil {
				detail = "was frozen by " + f.By + ": " + f.Reason
			}
			s.audit(ctx, site.Name, whos[i], "unfreeze", detail, err)
		}
		if err != nil {
			failed.add(site.Name, err)
			continue
		}
		if f != nil {
			out = append(out, *f)
		}
	}
	return out, failed.err("unfroze", len(out))
}

// ErrFreezeChanged is wrapped by SwapFreeze's refusal: the site's freeze
// is no longer the one a permission was decided on.
var ErrFreezeChanged = errors.New("the freeze changed meanwhile")

// SameFreeze reports whether a and b are the same run-time freeze (both
// nil, or the same author, reason and times).
func SameFreeze(a, b *Freeze) bool {
	if a == nil || b == nil {
		return a == b
	}
	return a.Site == b.Site && a.By == b.By && a.Reason == b.Reason &&
		a.From.Equal(b.From) && a.Until.Equal(b.Until) && a.At.Equal(b.At)
}

// FreezeChanged is SwapFreeze's refusal when the site's freeze is now
// cur: the person is told what holds now, and to ask again.
func FreezeChanged(site string, cur *Freeze) error {
	now := "none"
	if cur != nil {
		now = "frozen by " + cur.By + " until " + cur.Until.UTC().Format("2006-01-02 15:04Z") + ": " + cur.Reason
	}
	return Errorf(ECONFLICT, "the freeze of %s changed while this was decided (now: %s); nothing changed there: ask again: %w", site, now, ErrFreezeChanged)
}

// decideEach runs decide for every site and, when any refuses, records
// each refusal and returns one error that names every refusing site:
// nothing was changed.
func (s *Service) decideEach(ctx context.Context, sites []Site, action, detail string, decide func(int, Site) (string, error)) error {
	var refused siteErrors
	whos := make([]string, 0, len(sites))
	for i, site := range sites {
		if who, err := decide(i, site); err != nil {
			refused.add(site.Name, err)
			whos = append(whos, who)
		}
	}
	for i, site := range refused.sites {
		s.audit(ctx, site, whos[i], action, detail, refused.errs[i])
	}
	if len(sites) == 1 {
		return refused.err("", 0)
	}
	return refused.err("nothing changed", -1)
}

// siteErrors gathers what went wrong site by site in an operation on
// several sites.
type siteErrors struct {
	sites []string
	errs  []error
}

func (e *siteErrors) add(site string, err error) {
	e.sites, e.errs = append(e.sites, site), append(e.errs, err)
}

// err is one error naming each site and its error, nil when there is
// none; its code is the first error's. It leads with what the operation
// did with how many other sites ("froze", 2), or with done alone when n
// is negative; a lone error, when nothing else was done, is itself.
func (e *siteErrors) err(done string, n int) error {
	if len(e.errs) == 0 {
		return nil
	}
	if len(e.errs) == 1 && n == 0 {
		return e.errs[0]
	}
	parts := make([]string, len(e.errs))
	for i, err := range e.errs {
		parts[i] = e.sites[i] + ": " + ErrorMessage(err)
	}
	lead := done
	if n >= 0 {
		lead = fmt.Sprintf("%s %d other site(s)", done, n)
	}
	return &Error{Code: ErrorCode(e.errs[0]), Message: lead + "; " + strings.Join(parts, "; "), Err: e.errs[0]}
}
