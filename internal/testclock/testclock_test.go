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
