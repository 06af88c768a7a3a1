package releases

import (
	"testing"
	"time"

	"github.com/deploybot/deploybot/internal/testclock"
)

func TestGoesBackRule(t *testing.T) {
	t0 := testclock.At(10, 0)
	live := Release{Version: "v42", PublishedAt: t0}
	tests := []struct {
		name   string
		target Release
		want   bool
	}{
		{"older", Release{Version: "v41", PublishedAt: t0.Add(-time.Hour)}, true},
		{"newer", Release{Version: "v43", PublishedAt: t0.Add(time.Hour)}, false},
		{"the live one", live, false},
		{"same time", Release{Version: "v42b", PublishedAt: t0}, false},
		{"older but pruned", Release{Version: "v40", PublishedAt: t0.Add(-time.Hour), Pruned: true}, false},
	}
	for _, tt := range tests {
		if got := GoesBack(tt.target, live); got != tt.want {
			t.Errorf("%s: %v, want %v", tt.name, got, tt.want)
		}
	}
}
