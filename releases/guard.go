package releases

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Guardrails on promotes: deploy windows (the times promotes are allowed)
// and freezes (times they are not). Both hold promotes only: a rollback is
// the way out of an incident and is always allowed, and so is the
// automatic rollback after failed health checks. An approver may promote
// anyway with a reason (PromoteRequest.Override), which the audit log
// keeps.

// Schedule says when something next happens after t (robfig/cron's
// Schedule has this method).
type Schedule interface {
	Next(t time.Time) time.Time
}

// Window is a time promotes are allowed in: it opens at each time Opens
// gives, read in Location, and stays open for Duration.
type Window struct {
	Spec     string // as configured ("0 9 * * 1-5"), for people
	Opens    Schedule
	Duration time.Duration
	Location *time.Location
}

func (w Window) loc() *time.Location {
	if w.Location == nil {
		return time.UTC
	}
	return w.Location
}

// openAt returns when the window opened and closes if t is inside it.
// The latest opening at or before t is the first one after t-Duration;
// t is inside when that opening is not after t (the window is half-open:
// it has closed at opening+Duration).
func (w Window) openAt(t time.Time) (opened, closes time.Time, ok bool) {
	t = t.In(w.loc())
	o := w.Opens.Next(t.Add(-w.Duration))
	if o.IsZero() || o.After(t) {
		return time.Time{}, time.Time{}, false
	}
	return o, o.Add(w.Duration), true
}

// WindowState says whether promotes are allowed now by a site's windows.
type WindowState struct {
	Open bool `json:"open"`
	// Closes is when the open window closes (Open), NextOpen when the next
	// one opens (not Open; nil when no window opens again).
	Closes   *time.Time `json:"closes,omitempty"`
	NextOpen *time.Time `json:"next_open,omitempty"`
	// Window is the spec of the window meant: the open one, or the next.
	Window   string `json:"window,omitempty"`
	TimeZone string `json:"time_zone,omitempty"`
}

// WindowAt reports a site's windows at t; nil when the site has none
// (promotes are allowed at any time).
func (site Site) WindowAt(t time.Time) *WindowState {
	if len(site.Windows) == 0 {
		return nil
	}
	var best *WindowState
	for _, w := range site.Windows {
		if _, closes, ok := w.openAt(t); ok {
			if best == nil || !best.Open || closes.After(*best.Closes) {
				c := closes
				best = &WindowState{Open: true, Closes: &c, Window: w.Spec, TimeZone: w.loc().String()}
			}
			continue
		}
		if best != nil && best.Open {
			continue
		}
		next := w.Opens.Next(t.In(w.loc()))
		if next.IsZero() {
			continue
		}
		if best == nil || best.NextOpen == nil || next.Before(*best.NextOpen) {
			n := next
			best = &WindowState{NextOpen: &n, Window: w.Spec, TimeZone: w.loc().String()}
		}
	}
	if best == nil {
		best = &WindowState{}
	}
	return best
}

// Freeze stops promotes of a site from From until Until.
type Freeze struct {
	Site   string    `json:"site"`
	From   time.Time `json:"from"`
	Until  time.Time `json:"until"`
	Reason string    `json:"reason"`
	// By is who froze the site; ConfigFreeze for a freeze of the
	// configuration, which only a configuration change lifts.
	By string    `json:"by"`
	At time.Time `json:"at"`
}

// ConfigFreeze is the By of a freeze written in the configuration.
const ConfigFreeze = "config"

// Active reports whether f holds at t.
func (f Freeze) Active(t time.Time) bool { return !t.Before(f.From) && t.Before(f.Until) }

// MaxFreeze bounds a run-time freeze, so a typo ("freeze 1000d") does not
// stop deploys for years; the configuration can freeze longer.
const MaxFreeze = 90 * 24 * time.Hour

// FreezeRequest freezes one site, or every site (All), until Until: a
// duration from now or a time, as ParseUntil reads it (read here, on the
// service's clock, whichever door it came through).
type FreezeRequest struct {
	Site   string
	All    bool
	Until  string
	Reason string
	Actor  string
}

// mayFreeze decides whether actor may freeze site now: a deployer may,
// unless it would replace someone else's freeze still in force, which is
// lifting it (it could then be shortened, or lifted as one's own) and
// needs what overriding it needs. It returns the actor to record and the
// run-time freeze the decision was made on (nil: none), which the write
// must still find (SwapFreeze).
func (s *Service) mayFreeze(ctx context.Context, site Site, actor string) (string, *Freeze, error) {
	who, err := s.authorizeActor(ctx, site, "freeze", actor)
	if err != nil {
		return who, nil, err
	}
	return s.mayLiftFreeze(ctx, site, who, "freeze")
}

// mayLiftFreeze decides whether actor may lift or replace the site's
// run-time freeze: its author may as a deployer, anyone else must be an
// approver (who may promote through it anyway). A freeze no longer in
// force is anyone's to clear. It returns the actor to record and the
// freeze decided on (nil: none).
func (s *Service) mayLiftFreeze(ctx context.Context, site Site, actor, action string) (string, *Freeze, error) {
	who, err := s.authorizeActor(ctx, site, action, actor)
	if err != nil {
		return who, nil, err
	}
	f, err := s.Store.Freeze(ctx, site.Name)
	if err != nil || f == nil || !f.Active(s.now()) {
		return who, f, err
	}
	if s.Access.SamePerson(ParsePrincipal(f.By), ParsePrincipal(who)) {
		return who, f, nil
	}
	if _, err := s.authorize(ctx, site, "lift-freeze", who); err != nil {
		var d *DeniedError
		if errors.As(err, &d) {
			return who, f, Errorf(EUNAUTHORIZED, "site %s was frozen by %s until %s (%s); only its author or an approver may lift, shorten or replace it, and %s is neither",
				site.Name, f.By, f.Until.UTC().Format("2006-01-02 15:04Z"), f.Reason, who)
		}
		return who, f, err
	}
	return who, f, nil
}

func (s *Service) sitesOf(name string, all bool) ([]Site, error) {
	if all {
		if len(s.Sites) == 0 {
			return nil, Errorf(EINVALID, "no sites are configured")
		}
		return s.Sites, nil
	}
	site, err := s.Site(name)
	if err != nil {
		return nil, err
	}
	return []Site{site}, nil
}

// FreezeAt is the freeze holding site at t, the one that ends last when
// several do; nil when none.
func (s *Service) FreezeAt(ctx context.Context, site Site, t time.Time) (*Freeze, error) {
	var all []Freeze
	all = append(all, site.Freezes...)
	f, err := s.Store.Freeze(ctx, site.Name)
	if err != nil {
		return nil, err
	}
	if f != nil {
		all = append(all, *f)
	}
	var best *Freeze
	for i := range all {
		if all[i].Active(t) && (best == nil || all[i].Until.After(best.Until)) {
			best = &all[i]
		}
	}
	return best, nil
}

// guard refuses a promote that a freeze or the site's windows hold back,
// unless it overrides them. Rollbacks are never held.
func (s *Service) guard(ctx context.Context, site Site, req PromoteRequest) error {
	if req.Kind != KindPromote || req.Override != "" {
		return nil
	}
	now := s.now()
	f, err := s.FreezeAt(ctx, site, now)
	if err != nil {
		return err
	}
	if f != nil {
		return &GuardError{Site: site.Name, Freeze: f}
	}
	if w := site.WindowAt(now); w != nil && !w.Open {
		return &GuardError{Site: site.Name, Window: w}
	}
	return nil
}

// GuardError is a promote refused by a freeze or outside the deploy
// windows: it says who froze the site and why, until when, or when the
// next window opens, and what is still allowed.
type GuardError struct {
	Site   string
	Freeze *Freeze
	Window *WindowState
}

func (e *GuardError) Error() string {
	const after = "rollbacks are allowed; an approver may promote anyway, saying why the freeze is overridden"
	if f := e.Freeze; f != nil {
		by := f.By
		if by == ConfigFreeze {
			by = "the configuration"
		}
		return fmt.Sprintf("site %s is frozen by %s until %s: %s; %s", e.Site, by, f.Until.UTC().Format("2006-01-02 15:04Z"), f.Reason, after)
	}
	w := e.Window
	if w.NextOpen == nil {
		return fmt.Sprintf("site %s is outside its deploy windows, and none opens again; %s", e.Site, after)
	}
	return fmt.Sprintf("site %s is outside its deploy windows; the next (%s) opens %s; %s", e.Site, w.Window,
		WindowTime(*w.NextOpen, w.TimeZone), after)
}

func (e *GuardError) hint() string { return HintOverrideFreeze }

// WindowTime shows a time in a window's zone with the zone's name and
// offset: "Mon 2026-12-07 09:00 CET (Europe/Berlin)".
func WindowTime(t time.Time, zone string) string {
	loc, err := time.LoadLocation(zone)
	if err != nil {
		loc = time.UTC
	}
	t = t.In(loc)
	s := t.Format("Mon 2006-01-02 15:04 MST")
	if zone != "" && zone != "UTC" && zone != t.Format("MST") {
		s += " (" + zone + ")"
	}
	return s
}

// ParseUntil reads when a freeze ends, as people write it: a duration
// from now ("90m", "2h", "3d", "1w"), an RFC 3339 time
// ("2026-12-24T18:00:00+01:00"), or a UTC date or date and time
// ("2026-12-24", "2026-12-24T18:00", "2026-12-24 18:00").
func ParseUntil(s string, now time.Time) (time.Time, error) {
	s = strings.TrimSpace(s)
	if s == "" || len(s) > 64 {
		return time.Time{}, Errorf(EINVALID, "until when? a duration (2h, 3d) or a time (2026-12-24, 2026-12-24T18:00Z)")
	}
	if d, ok := parseLongDuration(s); ok {
		if d <= 0 {
			return time.Time{}, Errorf(EINVALID, "a freeze lasts a while: %q is not after now", s)
		}
		return now.Add(d), nil
	}
	for _, layout := range []string{time.RFC3339, "2006-01-02T15:04Z07:00", "2006-01-02T15:04", "2006-01-02 15:04", "2006-01-02"} {
		if t, err := time.ParseInLocation(layout, s, time.UTC); err == nil {
			// Year 1 is the zero time every caller reads as "not set";
			// no freeze ends before deploybot existed.
			if t.Year() < 2000 {
				return time.Time{}, Errorf(EINVALID, "%q is long past: a freeze ends after now", s)
			}
			return t, nil
		}
	}
	return time.Time{}, Errorf(EINVALID, "%q is neither a duration (2h, 3d, 1w) nor a time (2026-12-24, 2026-12-24T18:00Z, RFC 3339)", s)
}

// parseLongDuration is time.ParseDuration plus whole days (d) and weeks
// (w): "3d", "1w", "1d12h".
func parseLongDuration(s string) (time.Duration, bool) {
	var total time.Duration
	rest := s
	for _, unit := range []struct {
		suffix string
		d      time.Duration
	}{{"w", 7 * 24 * time.Hour}, {"d", 24 * time.Hour}} {
		i := strings.Index(rest, unit.suffix)
		if i < 0 {
			continue
		}
		n, err := strconv.Atoi(rest[:i])
		if err != nil || n < 0 || n > 10000 {
			return 0, false
		}
		total += time.Duration(n) * unit.d
		rest = rest[i+1:]
	}
	if rest == "" {
		return total, rest != s
	}
	d, err := time.ParseDuration(rest)
	if err != nil {
		return 0, false
	}
	return total + d, true
}
