package releases_test

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/robfig/cron/v3"

	"github.com/deploybot/deploybot/releases"
)

func berlinWeekdays(t *testing.T) releases.Window {
	t.Helper()
	loc, err := time.LoadLocation("Europe/Berlin")
	if err != nil {
		t.Fatal(err)
	}
	sched, err := cron.ParseStandard("0 9 * * 1-5")
	if err != nil {
		t.Fatal(err)
	}
	return releases.Window{Spec: "0 9 * * 1-5", Opens: sched, Duration: 7 * time.Hour, Location: loc}
}

// The window is read in its zone, daylight saving time included: 09:00
// in Berlin is 08:00 UTC in winter and 07:00 UTC in summer. The dates are
// fixed because the rule is about the calendar; nothing here reads a
// clock.
func TestWindowAt(t *testing.T) {
	site := releases.Site{Name: "www", Windows: []releases.Window{berlinWeekdays(t)}}
	utc := func(s string) time.Time {
		v, err := time.Parse(time.RFC3339, s)
		if err != nil {
			t.Fatal(err)
		}
		return v
	}
	for _, c := range []struct {
		name, at string
		open     bool
		edge     string // closes when open, next opening when not (UTC)
	}{
		{"monday before nine (winter)", "2026-11-30T07:59:00Z", false, "2026-11-30T08:00:00Z"},
		{"monday at nine (winter)", "2026-11-30T08:00:00Z", true, "2026-11-30T15:00:00Z"},
		{"monday at 15:59", "2026-11-30T14:59:00Z", true, "2026-11-30T15:00:00Z"},
		{"monday at 16:00: closed", "2026-11-30T15:00:00Z", false, "2026-12-01T08:00:00Z"},
		{"friday evening: next is monday", "2026-12-04T18:00:00Z", false, "2026-12-07T08:00:00Z"},
		{"saturday", "2026-12-05T12:00:00Z", false, "2026-12-07T08:00:00Z"},
		{"monday before nine (summer)", "2026-03-30T06:59:00Z", false, "2026-03-30T07:00:00Z"},
		{"monday at nine (summer)", "2026-03-30T07:00:00Z", true, "2026-03-30T14:00:00Z"},
	} {
		t.Run(c.name, func(t *testing.T) {
			w := site.WindowAt(utc(c.at))
			if w == nil || w.Open != c.open {
				t.Fatalf("window %+v, want open=%v", w, c.open)
			}
			got := w.NextOpen
			if c.open {
				got = w.Closes
			}
			if got == nil || !got.Equal(utc(c.edge)) {
				t.Fatalf("edge %v, want %s", got, c.edge)
			}
			if w.TimeZone != "Europe/Berlin" || w.Window != "0 9 * * 1-5" {
				t.Fatalf("window names %q in %q", w.Window, w.TimeZone)
			}
		})
	}
	if (releases.Site{}).WindowAt(utc("2026-11-30T08:00:00Z")) != nil {
		t.Fatal("a site without windows has a window state")
	}
}

func TestWindowTimeNamesTheZone(t *testing.T) {
	at, _ := time.Parse(time.RFC3339, "2026-12-07T08:00:00Z")
	if got, want := releases.WindowTime(at, "Europe/Berlin"), "Mon 2026-12-07 09:00 CET (Europe/Berlin)"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
	if got, want := releases.WindowTime(at, "UTC"), "Mon 2026-12-07 08:00 UTC"; got != want {
		t.Fatalf("%q, want %q", got, want)
	}
}

func TestParseUntil(t *testing.T) {
	now, _ := time.Parse(time.RFC3339, "2026-12-02T10:00:00Z")
	for _, c := range []struct {
		in   string
		want string // RFC 3339, "" for an error
	}{
		{"2h", "2026-12-02T12:00:00Z"},
		{"90m", "2026-12-02T11:30:00Z"},
		{"3d", "2026-12-05T10:00:00Z"},
		{"1w", "2026-12-09T10:00:00Z"},
		{"1d12h", "2026-12-03T22:00:00Z"},
		{"2026-12-24", "2026-12-24T00:00:00Z"},
		{"2026-12-24T18:00", "2026-12-24T18:00:00Z"},
		{"2026-12-24 18:00", "2026-12-24T18:00:00Z"},
		{"2026-12-24T18:00:00+01:00", "2026-12-24T17:00:00Z"},
		{"2026-12-24T18:00Z", "2026-12-24T18:00:00Z"},
		{"", ""}, {"soon", ""}, {"-2h", ""}, {"0s", ""}, {"d", ""}, {"3dd", ""}, {"99999d", ""},
		{"2026-13-01", ""}, {strings.Repeat("1", 80) + "h", ""},
	} {
		got, err := releases.ParseUntil(c.in, now)
		if c.want == "" {
			if err == nil || releases.ErrorCode(err) != releases.EINVALID {
				t.Errorf("ParseUntil(%q) = %v, %v; want EINVALID", c.in, got, err)
			}
			continue
		}
		if err != nil || got.UTC().Format(time.RFC3339) != c.want {
			t.Errorf("ParseUntil(%q) = %v, %v; want %s", c.in, got, err, c.want)
		}
	}
}

func FuzzParseUntil(f *testing.F) {
	for _, s := range []string{"2h", "3d", "1w2d", "2026-12-24", "2026-12-24T18:00:00+01:00", "99999999999d", "1d-5h"} {
		f.Add(s)
	}
	now, _ := time.Parse(time.RFC3339, "2026-12-02T10:00:00Z")
	f.Fuzz(func(t *testing.T, s string) {
		got, err := releases.ParseUntil(s, now)
		if err != nil {
			if releases.ErrorCode(err) != releases.EINVALID {
				t.Fatalf("ParseUntil(%q): %v is not EINVALID", s, err)
			}
			return
		}
		if got.IsZero() {
			t.Fatalf("ParseUntil(%q) gave the zero time", s)
		}
	})
}

// A freeze refuses promotes, naming who, why and until when; rollbacks
// go through; an override goes through and is recorded; unfreeze lifts a
// run-time freeze but not a configured one.
func TestFreezeHoldsPromotesNotRollbacks(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish("v1", "v2", "v3")
	h.promote(t, "v1")
	h.promote(t, "v2")
	fs, err := h.svc.Freeze(ctx, releases.FreezeRequest{Site: "www", Until: "2h", Reason: "launch week", Actor: "alice"})
	if err != nil || len(fs) != 1 {
		t.Fatalf("freeze: %v %v", fs, err)
	}
	until := fs[0].Until
	_, err = h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "bob"}, nil)
	if releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "frozen by alice until "+until.UTC().Format("2006-01-02 15:04Z")+": launch week") ||
		!strings.Contains(err.Error(), "rollbacks are allowed") {
		t.Fatalf("promote in a freeze: %v", err)
	}
	st, err := h.svc.Status(ctx, "www")
	if err != nil || st.Freeze == nil || st.Freeze.Reason != "launch week" || st.Window != nil {
		t.Fatalf("status %+v, %v", st, err)
	}
	if _, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "bob", Reason: "incident"}, nil); err != nil {
		t.Fatalf("rollback in a freeze: %v", err)
	}
	if _, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "carol", Override: "CTO approved the hotfix"}, nil); err != nil {
		t.Fatalf("override: %v", err)
	}
	audit, _ := h.svc.History(ctx, "www", 0)
	var actions []string
	for _, e := range audit {
		actions = append(actions, e.Action+":"+e.Result)
	}
	if got := strings.Join(actions, " "); !strings.HasPrefix(got, "promote:ok rollback:ok promote:refused freeze:ok") {
		t.Fatalf("audit %s", got)
	}
	if !strings.Contains(audit[0].Detail, "overriding the freeze: CTO approved the hotfix") {
		t.Fatalf("the override is not recorded: %+v", audit[0])
	}
	lifted, err := h.svc.Unfreeze(ctx, "www", false, "alice")
	if err != nil || len(lifted) != 1 {
		t.Fatalf("unfreeze: %v %v", lifted, err)
	}
	if _, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v2", Actor: "bob", Back: true}, nil); err != nil {
		t.Fatalf("promote after unfreeze: %v", err)
	}

	// A configured freeze: unfreeze lifts nothing, and it ends by itself.
	h.svc.Sites[0].Freezes = []releases.Freeze{{Site: "www", From: h.now.Add(-time.Hour), Until: h.now.Add(time.Hour), Reason: "year end", By: releases.ConfigFreeze}}
	if lifted, _ := h.svc.Unfreeze(ctx, "www", false, "alice"); len(lifted) != 0 {
		t.Fatalf("unfreeze lifted %v", lifted)
	}
	_, err = h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "bob"}, nil)
	if !strings.Contains(releases.ErrorMessage(err), "frozen by the configuration") {
		t.Fatalf("promote in a configured freeze: %v", err)
	}
	h.now = h.now.Add(2 * time.Hour)
	if _, err := h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "bob"}, nil); err != nil {
		t.Fatalf("promote after the configured freeze: %v", err)
	}
}

func TestFreezeRefusals(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	for name, req := range map[string]releases.FreezeRequest{
		"no reason":    {Site: "www", Until: "1h", Actor: "a"},
		"in the past":  {Site: "www", Until: h.now.Add(-time.Hour).UTC().Format(time.RFC3339), Reason: "r", Actor: "a"},
		"too long":     {Site: "www", Until: "91d", Reason: "r", Actor: "a"},
		"no until":     {Site: "www", Reason: "r", Actor: "a"},
		"unknown site": {Site: "nope", Until: "1h", Reason: "r", Actor: "a"},
	} {
		if _, err := h.svc.Freeze(ctx, req); releases.ErrorCode(err) != releases.EINVALID {
			t.Errorf("%s: %v", name, err)
		}
	}
	if f, _ := h.db.Freeze(ctx, "www"); f != nil {
		t.Fatalf("a refused freeze was stored: %+v", f)
	}
}

// Outside every window a promote is refused naming the next window in its
// zone; a rollback runs.
func TestPromoteOutsideTheWindowIsRefused(t *testing.T) {
	h := newHarness(t)
	ctx := context.Background()
	h.publish("v1", "v2", "v3")
	h.promote(t, "v1")
	h.promote(t, "v2")
	// A window that opened an hour ago for half an hour, daily, in
	// Tokyo: closed now whatever the date, opening again in 23 hours.
	loc, err := time.LoadLocation("Asia/Tokyo")
	if err != nil {
		t.Fatal(err)
	}
	opens := h.now.Add(-time.Hour).In(loc)
	spec := strings.Join([]string{strconv.Itoa(opens.Minute()), strconv.Itoa(opens.Hour()), "*", "*", "*"}, " ")
	sched, err := cron.ParseStandard(spec)
	if err != nil {
		t.Fatal(err)
	}
	h.svc.Sites[0].Windows = []releases.Window{{Spec: spec, Opens: sched, Duration: 30 * time.Minute, Location: loc}}
	_, err = h.svc.Promote(ctx, releases.PromoteRequest{Site: "www", Version: "v3", Actor: "bob"}, nil)
	var ge *releases.GuardError
	if !errors.As(err, &ge) || ge.Window == nil || releases.ErrorCode(err) != releases.ECONFLICT {
		t.Fatalf("promote outside the window: %v", err)
	}
	next := opens.Add(24 * time.Hour).Truncate(time.Minute)
	if msg := err.Error(); !strings.Contains(msg, "outside its deploy windows; the next ("+spec+") opens "+releases.WindowTime(next, "Asia/Tokyo")) ||
		!strings.Contains(msg, "JST (Asia/Tokyo)") {
		t.Fatalf("message %q", msg)
	}
	if _, err := h.svc.Rollback(ctx, releases.RollbackRequest{Site: "www", Actor: "bob"}, nil); err != nil {
		t.Fatalf("rollback outside the window: %v", err)
	}
	st, _ := h.svc.Status(ctx, "www")
	if st.Window == nil || st.Window.Open || st.Window.NextOpen == nil {
		t.Fatalf("status window %+v", st.Window)
	}
}

// A freeze of every site is decided for each site before any is written:
// one site that refuses it freezes none (and the refusal names that site
// and why), rather than freezing the sites before it and not those after.
// Unfreezing every site skips a site with nothing to lift, even where the
// actor may not act.
func TestFreezeAllIsDecidedForEverySiteFirst(t *testing.T) {
	h := newHarness(t)
	h.svc.Access = testAccess()
	base := h.svc.Sites[0]
	h.svc.Sites = nil
	for _, name := range []string{"blog", "docs", "www"} {
		site := base
		site.Name, site.Prefix, site.Deployers = name, name+"/", []string{"SDEPLOY", "UCAROL"}
		site.Approval = releases.Approval{Approvers: []string{"UALICE"}}
		h.svc.Sites = append(h.svc.Sites, site)
	}
	h.svc.Sites[2].Deployers = []string{"UCAROL"} // bob may not act on www
	as := func(p releases.Principal) context.Context { return releases.WithPrincipal(context.Background(), p) }

	fs, err := h.svc.Freeze(as(slackBob), releases.FreezeRequest{Site: "all", All: true, Until: "2h", Reason: "incident", Actor: "UBOB"})
	if releases.ErrorCode(err) != releases.EUNAUTHORIZED || len(fs) != 0 || !strings.Contains(err.Error(), "nothing changed; www: ") {
		t.Fatalf("freeze all with a site that refuses: %v %v", fs, err)
	}
	for _, site := range h.svc.Sites {
		if f, _ := h.db.Freeze(context.Background(), site.Name); f != nil {
			t.Fatalf("%s was frozen by a refused freeze of all: %+v", site.Name, f)
		}
	}
	if audit, _ := h.svc.History(context.Background(), "www", 1); len(audit) != 1 || audit[0].Result != releases.ResultRefused {
		t.Fatalf("the refusal was not recorded on www: %+v", audit)
	}

	// carol may act everywhere, but bob's freeze of blog, in force, is
	// not hers to replace (she is no approver): refused again, naming
	// blog only.
	if _, err := h.svc.Freeze(as(slackBob), releases.FreezeRequest{Site: "blog", Until: "1h", Reason: "bob's", Actor: "UBOB"}); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Freeze(as(slackCarol), releases.FreezeRequest{Site: "all", All: true, Until: "3h", Reason: "incident", Actor: "UCAROL"})
	if releases.ErrorCode(err) != releases.EUNAUTHORIZED || !strings.Contains(err.Error(), "blog: ") || strings.Contains(err.Error(), "docs: ") {
		t.Fatalf("freeze all over someone else's freeze: %v", err)
	}
	if f, _ := h.db.Freeze(context.Background(), "docs"); f != nil {
		t.Fatalf("docs was frozen by a refused freeze of all: %+v", f)
	}

	// bob unfreezes all: blog's freeze (his) is lifted; www, where he
	// may not act and nothing is frozen, does not stop it.
	lifted, err := h.svc.Unfreeze(as(slackBob), "all", true, "UBOB")
	if err != nil || len(lifted) != 1 || lifted[0].Site != "blog" {
		t.Fatalf("unfreeze all: %v %v", lifted, err)
	}
	// With nothing to lift anywhere, one site still says who may act.
	if _, err := h.svc.Unfreeze(as(slackBob), "www", false, "UBOB"); releases.ErrorCode(err) != releases.EUNAUTHORIZED {
		t.Fatalf("unfreeze of a site bob may not act on: %v", err)
	}

	// Every site agrees: all are frozen, one record each.
	fs, err = h.svc.Freeze(as(slackCarol), releases.FreezeRequest{Site: "all", All: true, Until: "3h", Reason: "incident", Actor: "UCAROL"})
	if err != nil || len(fs) != 3 {
		t.Fatalf("freeze all: %v %v", fs, err)
	}
	for _, site := range h.svc.Sites {
		if audit, _ := h.svc.History(context.Background(), site.Name, 1); len(audit) != 1 || audit[0].Action != "freeze" || audit[0].Result != releases.ResultOK {
			t.Fatalf("%s: %+v", site.Name, audit)
		}
	}
}

// swapRace is a store where someone else changes the freeze between the
// service's decision and its write.
type swapRace struct {
	releases.Store
	once      sync.Once
	meanwhile func()
}

func (r *swapRace) SwapFreeze(ctx context.Context, site string, was, f *releases.Freeze) (*releases.Freeze, error) {
	r.once.Do(r.meanwhile)
	return r.Store.SwapFreeze(ctx, site, was, f)
}

// A freeze or unfreeze writes only over the freeze its permission was
// decided on: one that someone else set meanwhile is neither replaced
// nor lifted by a person who may not (bob is a deployer, no approver).
func TestAFreezeSetMeanwhileIsNotReplacedUnchecked(t *testing.T) {
	t.Run("store", func(t *testing.T) { freezeSetMeanwhile(t, false) })
	t.Run("shared", func(t *testing.T) { freezeSetMeanwhile(t, true) })
}

func freezeSetMeanwhile(t *testing.T, shared bool) {
	h := newHarness(t)
	var set func(context.Context, releases.Freeze) error = h.db.SetFreeze
	var get func(context.Context, string) (*releases.Freeze, error) = h.db.Freeze
	var del func(context.Context, string) (*releases.Freeze, error) = h.db.DeleteFreeze
	if shared {
		sh := releases.NewSharedStore(h.db, &memState{}, h.svc.Sites)
		h.svc.Store, set, get, del = sh, sh.SetFreeze, sh.Freeze, sh.DeleteFreeze
	}
	h.svc.Access = testAccess()
	h.svc.Sites[0].Deployers = []string{"SDEPLOY", "UCAROL"}
	h.svc.Sites[0].Approval = releases.Approval{Approvers: []string{"UALICE"}}
	ctx := context.Background()
	as := func(p releases.Principal) context.Context { return releases.WithPrincipal(ctx, p) }
	carols := releases.Freeze{Site: "www", By: "UCAROL", Reason: "incident", From: h.svc.Time(), Until: h.svc.Time().Add(3 * time.Hour), At: h.svc.Time()}
	race := &swapRace{Store: h.svc.Store, meanwhile: func() {
		if err := set(ctx, carols); err != nil {
			t.Fatal(err)
		}
	}}
	h.svc.Store = race

	_, err := h.svc.Freeze(as(slackBob), releases.FreezeRequest{Site: "www", Until: "1h", Reason: "launch", Actor: "UBOB"})
	if !errors.Is(err, releases.ErrFreezeChanged) || releases.ErrorCode(err) != releases.ECONFLICT || !strings.Contains(err.Error(), "frozen by UCAROL") {
		t.Fatalf("a freeze over one set meanwhile: %v", err)
	}
	if f, _ := get(ctx, "www"); f == nil || f.By != "UCAROL" {
		t.Fatalf("carol's freeze became %+v", f)
	}

	// bob's own freeze, which carol replaces while bob lifts it.
	if _, err := del(ctx, "www"); err != nil {
		t.Fatal(err)
	}
	h.svc.Store = race.Store
	if _, err := h.svc.Freeze(as(slackBob), releases.FreezeRequest{Site: "www", Until: "1h", Reason: "launch", Actor: "UBOB"}); err != nil {
		t.Fatal(err)
	}
	h.svc.Store = &swapRace{Store: race.Store, meanwhile: race.meanwhile}
	if _, err := h.svc.Unfreeze(as(slackBob), "www", false, "UBOB"); !errors.Is(err, releases.ErrFreezeChanged) {
		t.Fatalf("an unfreeze of a freeze replaced meanwhile: %v", err)
	}
	if f, _ := get(ctx, "www"); f == nil || f.By != "UCAROL" {
		t.Fatalf("carol's freeze became %+v", f)
	}
}
