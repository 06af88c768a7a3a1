package slackbot

import (
	"context"
	"fmt"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/store"
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

// A phase that reports every second for minutes (the visible phase's
// tally) changes the card, and says so in the thread at most every 30 s:
// a hundred notes are one thread line, the card ends on the result, and
// every phase and the end are in the thread.
func TestNotesGoOnTheCardAndRarelyInTheThread(t *testing.T) {
	fake := slackfake.New(t)
	db, err := store.Open(filepath.Join(t.TempDir(), "db"), store.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	site := releases.Site{Name: "www", Channel: "CDEPLOYS"}
	s, err := New("xapp-1-test", "xoxb-test", fake.APIURL(), &bot.Bot{Service: &releases.Service{Store: db, Sites: []releases.Site{site}}, Command: "/site"}, nil)
	if err != nil {
		t.Fatal(err)
	}
	v := (&slackOut{s}).Deploy(context.Background(), bot.Request{}, site)
	d := releases.Deploy{ID: "d1", Site: "www", Kind: releases.KindPromote, To: "v2", From: "v1", StartedAt: time.Now()}
	v.Event(releases.Event{Type: releases.EventDeployStarted, Deploy: d})
	v.Event(releases.Event{Type: releases.EventPhaseStarted, Deploy: d, Phase: releases.PhaseVisible})
	for i := range 100 {
		v.Event(releases.Event{Type: releases.EventPhaseNote, Deploy: d, Phase: releases.PhaseVisible, Title: fmt.Sprintf("%d of 4 answers name v2", i%4)})
	}
	v.Event(releases.Event{Type: releases.EventPhaseFinished, Deploy: d, Phase: releases.PhaseVisible})
	v.Event(releases.Event{Type: releases.EventDeployFinished, Deploy: d})
	v.Done(nil, nil)
	posts, updates, _ := fake.Snapshot()
	notes, phases := 0, 0
	for _, p := range posts {
		if strings.Contains(p.Text, "answers name v2") {
			notes++
		}
		if strings.Contains(p.Text, "▸") || strings.Contains(p.Text, "is live on") {
			phases++
		}
	}
	if notes != 1 || phases != 2 {
		t.Fatalf("%d note lines and %d phase lines in the thread, want 1 and 2:%s", notes, phases, slackfake.Dump(posts))
	}
	if len(updates) == 0 || len(updates) > 3 || !strings.Contains(updates[len(updates)-1].Text, "live") {
		t.Fatalf("card updates: %s", slackfake.Dump(updates))
	}
}
