package cloud_test

import (
	"testing"
	"time"

	"github.com/deploybot/deploybot/cloud"
)

// The first two minutes of a wait poll every second, so a change is seen
// within about a second of landing; then the pause grows by half up to
// the slowest; a slowest below a second is kept throughout.
func TestPollDelay(t *testing.T) {
	s := time.Second
	for _, c := range []struct {
		elapsed, last, slowest, want time.Duration
	}{
		{0, 0, 5 * s, s},
		{30 * s, s, 5 * s, s},
		{90 * s, s, 5 * s, s},
		{119 * s, s, 5 * s, s},
		{120 * s, s, 5 * s, 1500 * time.Millisecond},
		{122 * s, 1500 * time.Millisecond, 5 * s, 2250 * time.Millisecond},
		{130 * s, 4 * s, 5 * s, 5 * s},
		{10 * time.Minute, 5 * s, 5 * s, 5 * s},
		{10 * time.Minute, 5 * s, 2 * s, 2 * s},
		{0, 0, 10 * time.Millisecond, 10 * time.Millisecond},
		{2 * time.Minute, 10 * time.Millisecond, 10 * time.Millisecond, 10 * time.Millisecond},
	} {
		if got := cloud.PollDelay(c.elapsed, c.last, c.slowest); got != c.want {
			t.Errorf("PollDelay(%s, %s, %s) = %s, want %s", c.elapsed, c.last, c.slowest, got, c.want)
		}
	}
	// A 3-minute wait at the defaults: 120 polls in the first two minutes,
	// then a handful more per minute.
	n, elapsed, last := 0, time.Duration(0), time.Duration(0)
	for elapsed < 3*time.Minute {
		last = cloud.PollDelay(elapsed, last, cloud.MaxPollInterval)
		elapsed += last
		n++
	}
	if n < 120 || n > 150 {
		t.Fatalf("%d polls in a 3-minute wait", n)
	}
	t.Logf("a 3-minute wait polls %d times", n)
}
