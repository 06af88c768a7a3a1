package testclock

import (
	"testing"
	"time"
)

func TestRelative(t *testing.T) {
	d := Day()
	in := "on " + d.Format("2006-01-02") + ", " + d.Add(-72*time.Hour).Format(time.RFC3339) + " and " + d.Add(26*time.Hour).Format("2006-01-02 15:04Z") + "; id 20261128T100000Z stays"
	want := "on DAY, DAY-3T00:00:00Z and DAY+1 02:00Z; id 20261128T100000Z stays"
	if got := string(Relative([]byte(in))); got != want {
		t.Fatalf("Relative:\n got %q\nwant %q", got, want)
	}
}

func TestDayReplays(t *testing.T) {
	t.Setenv(DayEnv, "2025-10-28")
	if got, want := Day(), time.Date(2025, 10, 28, 0, 0, 0, 0, time.UTC); !got.Equal(want) {
		t.Fatalf("Day with %s set: %s, want %s", DayEnv, got, want)
	}
	if got := At(10, 30); got.Format(time.RFC3339) != "2025-10-28T10:30:00Z" {
		t.Fatalf("At(10, 30): %s", got)
	}
	t.Setenv(DayEnv, "yesterday")
	defer func() {
		if recover() == nil {
			t.Fatal("a malformed day was taken")
		}
	}()
	Day()
}
