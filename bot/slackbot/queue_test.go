package slackbot

import (
	"fmt"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

// A deploy far ahead of a rate-limited Slack loses no event that matters:
// a thousand notes of one phase become the last one, and the phases and
// the end all come out, in order.
func TestTheEventQueueKeepsEveryPhaseAndTheEnd(t *testing.T) {
	q := newEventQueue()
	d := releases.Deploy{ID: "d1"}
	q.push(releases.Event{Type: releases.EventDeployStarted, Deploy: d})
	q.push(releases.Event{Type: releases.EventPhaseStarted, Deploy: d, Phase: "visible"})
	for i := range 1000 {
		q.push(releases.Event{Type: releases.EventPhaseNote, Deploy: d, Phase: "visible", Title: fmt.Sprintf("round %d", i)})
	}
	q.push(releases.Event{Type: releases.EventPhaseFinished, Deploy: d, Phase: "visible"})
	q.push(releases.Event{Type: releases.EventDeployFinished, Deploy: d})
	q.close()
	var got []string
	for {
		e, ok := q.pop()
		if !ok {
			break
		}
		got = append(got, string(e.Type)+" "+e.Title)
	}
	want := []string{"deploy_started ", "phase_started ", "phase_note round 999", "phase_finished ", "deploy_finished "}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Fatalf("got %q, want %q", got, want)
	}
}
