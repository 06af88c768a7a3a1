package bot

import (
	"fmt"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// A rollout's card shows its share of visitors as a bar, its steps, and
// who paused it; a finished deploy's card does not.
func TestCardShowsARolloutsShare(t *testing.T) {
	d := releases.Deploy{ID: "d1", Site: "www", Kind: releases.KindPromote, Actor: "U1", From: "v1", To: "v2",
		Rollout: &releases.Rollout{Steps: []int{1, 10, 50}, Percent: 10, Control: releases.RolloutControl{Paused: true, PausedBy: "U0BOB"}}}
	got := fmt.Sprint(Card(CardState{Deploy: d, Phase: "holding at 10%"}).Blocks)
	for _, want := range []string{"▰▱▱▱▱▱▱▱▱▱ 10% of visitors on `v2`", "steps 1% → 10% → 50% → all", "paused by <@U0BOB>"} {
		if !strings.Contains(got, want) {
			t.Fatalf("card lacks %q:\n%s", want, got)
		}
	}
	if got := fmt.Sprint(Card(CardState{Deploy: d, Result: "done"}).Blocks); strings.Contains(got, "of visitors on") {
		t.Fatalf("a finished card still shows the share:\n%s", got)
	}
	if bar := ShareBar(releases.Rollout{Steps: []int{1}, Percent: 1}, "v2"); !strings.HasPrefix(string(bar), "▰▱▱▱▱▱▱▱▱▱ 1%") {
		t.Fatalf("1%% shows no share: %s", bar)
	}
}
