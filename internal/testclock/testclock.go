// Package testclock gives tests a clock they hold, starting at a date
// derived from the wall clock rather than written into the test.
//
// Why derived, and why in the past: a test that pins its clock to a fixed
// date and lets one fixture read time.Now() passes until the wall clock
// overtakes the pinned date, then fails on every checkout (a release
// stamped "now" is suddenly younger than a retention floor measured from
// the pinned date). Starting every fixture clock well over a year before the
// wall clock makes that mix fail on the day it is written: anything stamped
// by the wall clock lands far in the fixture's future. Tests that need a
// time of day (cron schedules, midnights) take Day, which is midnight UTC of
// that derived date, and add hours to it.
package testclock

import (
	"fmt"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"
)

// Offset is how far the fixtures' clocks run behind the wall clock: more than
// a year, so a fixture stamped by the wall clock is never within any
// retention age, preview lifetime or hook window a test uses, and not a whole
// number of weeks, so the weekday differs from today's too.
const Offset = 400*24*time.Hour + 5*time.Hour

// DayEnv names the variable that replays a fixtures' day: with
// DEPLOYBOT_TEST_DAY=2025-10-28, Day is that date, so a failure seen on
// one day runs again on any other (Main prints the day a run failed on).
const DayEnv = "DEPLOYBOT_TEST_DAY"

// Day is midnight UTC of the fixtures' day: $DEPLOYBOT_TEST_DAY when set
// (a malformed one panics: a replay on the wrong day proves nothing).
func Day() time.Time {
	if v := os.Getenv(DayEnv); v != "" {
		d, err := time.Parse("2006-01-02", v)
		if err != nil {
			panic(fmt.Sprintf("testclock: %s=%q: want a date such as 2025-10-28", DayEnv, v))
		}
		return d
	}
	return time.Now().UTC().Add(-Offset).Truncate(24 * time.Hour)
}

// Main runs a package's tests and, when they fail, says which fixtures'
// day they ran on and how to run them on it again. A package's tests
// call it from TestMain: os.Exit(testclock.Main(m)).
func Main(m *testing.M) int {
	day := Day()
	code := m.Run()
	if code != 0 {
		fmt.Fprintf(os.Stderr, "testclock: the fixtures' day was %s; run the tests on it again with %s=%s\n",
			day.Format("2006-01-02"), DayEnv, day.Format("2006-01-02"))
	}
	return code
}

// At is the fixtures' day at the given UTC hour and minute.
func At(hour, minute int) time.Time {
	return Day().Add(time.Duration(hour)*time.Hour + time.Duration(minute)*time.Minute)
}

// Clock is a clock that moves only when the test moves it. Safe for
// concurrent use: the code under test reads it from its own goroutines.
type Clock struct {
	mu   sync.Mutex
	t    time.Time
	step time.Duration
}

// New returns a clock that reads t until moved.
func New(t time.Time) *Clock { return &Clock{t: t} }

// Ticking returns a clock at t that moves on by step after every reading,
// for code that orders records by their time (deploy ids, audit entries)
// and so needs two readings never to be equal.
func Ticking(t time.Time, step time.Duration) *Clock { return &Clock{t: t, step: step} }

// Start returns a clock at the fixtures' day, 10:00 UTC.
func Start() *Clock { return New(At(10, 0)) }

// Now is the clock's time; pass the method value wherever code takes a
// func() time.Time.
func (c *Clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	t := c.t
	c.t = c.t.Add(c.step)
	return t
}

// Add moves the clock forward by d (back, for a negative d).
func (c *Clock) Add(d time.Duration) { c.mu.Lock(); c.t = c.t.Add(d); c.mu.Unlock() }

// Set moves the clock to t.
func (c *Clock) Set(t time.Time) { c.mu.Lock(); c.t = t; c.mu.Unlock() }

// dateRE finds calendar dates in rendered text (2006-01-02).
var dateRE = regexp.MustCompile(`\d{4}-\d{2}-\d{2}`)

// Relative rewrites every date in text as its distance in days from the
// fixture's day ("DAY", "DAY-3", "DAY+1"), so that golden files hold
// what a renderer does with dates, not the date the test ran on: fixture
// days move with the wall clock.
func Relative(text []byte) []byte {
	day := Day()
	return dateRE.ReplaceAllFunc(text, func(m []byte) []byte {
		d, err := time.Parse("2006-01-02", string(m))
		if err != nil {
			return m
		}
		n := int(d.Sub(day).Round(24*time.Hour) / (24 * time.Hour))
		switch {
		case n == 0:
			return []byte("DAY")
		case n > 0:
			return []byte(fmt.Sprintf("DAY+%d", n))
		}
		return []byte(fmt.Sprintf("DAY%d", n))
	})
}
