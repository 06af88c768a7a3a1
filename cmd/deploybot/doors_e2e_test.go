package main_test

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"sync"
	"testing"

	"github.com/deploybot/deploybot/internal/slackfake"
	"github.com/deploybot/deploybot/releases"
	"github.com/deploybot/deploybot/server"
)

// doorAnswer is how one door answered a promote: whether it ran the
// deploy, and what it said.
type doorAnswer struct {
	door string
	ran  bool
	text string
}

// doorAnswers collects the answers of every door, from many goroutines.
type doorAnswers struct {
	mu  sync.Mutex
	all []doorAnswer
}

func (d *doorAnswers) record(a doorAnswer) { d.mu.Lock(); d.all = append(d.all, a); d.mu.Unlock() }

// Fifty promotes of one site at once through every door of one `serve`:
// 17 command lines (--server), 17 API clients and 16 Slack commands. Exactly
// one runs; each of the others is refused naming it; nothing stays locked.
func TestFiftyPromotesThroughEveryDoor(t *testing.T) {
	w := start(t, "3s", "100ms")
	fake := slackfake.New(t)
	addr := freeAddr(t)
	w.serveConfig(addr)
	w.slackConfig(fake)
	w.serve(addr)
	w.must("publish", "--version", "v1", w.siteDir("v1"))
	w.env = append(w.env, "DEPLOYBOT_SERVER=http://"+addr)

	answers := &doorAnswers{}
	w.promoteThroughEveryDoor(fake, addr, answers)
	collectSlackAnswers(fake, answers)

	st := w.status()
	last, _ := st["last_deploy"].(map[string]any)
	if last == nil || last["phase"] != "done" || st["lock"] != nil || st["live"] != "v1" {
		t.Fatalf("after the storm: %v", st)
	}
	id, _ := last["id"].(string)
	if id == "" {
		t.Fatalf("status names no deploy id: %v", last)
	}
	ran := 0
	for _, a := range answers.all {
		if a.ran {
			ran++
			continue
		}
		if !strings.Contains(a.text, "busy") || !strings.Contains(a.text, id) {
			t.Errorf("%s refusal does not name the running deploy %s: %s", a.door, id, a.text)
		}
	}
	if ran != 1 || len(answers.all) != 50 {
		t.Fatalf("%d of %d answers ran a deploy, want exactly 1 of 50: %+v", ran, len(answers.all), answers.all)
	}
	w.serves("v1")
}

// promoteThroughEveryDoor sends promote v1 from 17 command lines, 17 API
// clients and 16 Slack commands, released at once, and waits for the
// command lines and API clients, recording their answers (Slack's come
// as posts: see collectSlackAnswers).
func (w *world) promoteThroughEveryDoor(fake *slackfake.Server, addr string, answers *doorAnswers) {
	go_ := make(chan struct{})
	var wg sync.WaitGroup
	for i := range 17 {
		cmd := exec.Command(w.bin, "promote", "--reason", "door test", "v1")
		cmd.Env = append(w.env[:len(w.env):len(w.env)], fmt.Sprintf("DEPLOYBOT_ACTOR=cli-%d", i))
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go_
			out, err := cmd.CombinedOutput()
			answers.record(doorAnswer{"cli", err == nil, string(out)})
		}()
	}
	client := &server.Client{URL: "http://" + addr, Token: "tok"}
	for i := range 17 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go_
			_, err := client.Deploy(context.Background(), "www", releases.KindPromote, server.DeployRequest{Version: "v1", Actor: fmt.Sprintf("api-%d", i)}, nil)
			text := ""
			if err != nil {
				text = err.Error()
			}
			answers.record(doorAnswer{"api", err == nil, text})
		}()
	}
	for i := range 16 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			<-go_
			fake.Slash(fmt.Sprintf("door-%d", i), "UALICE", "promote v1 door test")
		}()
	}
	close(go_)
	wg.Wait()
}

// slackRefusals is every post but the ones that say a deploy started.
func slackRefusals(all []slackfake.Post) []slackfake.Post {
	var out []slackfake.Post
	for _, e := range all {
		if !strings.HasPrefix(e.Text, "Started:") {
			out = append(out, e)
		}
	}
	return out
}

// collectSlackAnswers waits for an answer to each of the 16 Slack
// commands and records them. Slack answers come as posts: a refusal
// privately, the deploy in the channel (and, privately, where its thread
// is, which is not an answer of its own).
func collectSlackAnswers(fake *slackfake.Server, answers *doorAnswers) {
	fake.WaitFor("an answer to every Slack command", func() bool {
		posts, _, all := fake.Snapshot()
		eph := slackRefusals(all)
		live := 0
		for _, p := range posts {
			if strings.Contains(p.Text, "`v1` is live on *www*") {
				live++
			}
		}
		return len(eph)+live >= 16
	})
	posts, _, all := fake.Snapshot()
	for _, e := range slackRefusals(all) {
		answers.record(doorAnswer{"slack", false, e.Text})
	}
	for _, p := range posts {
		if strings.Contains(p.Text, "`v1` is live on *www*") {
			answers.record(doorAnswer{"slack", true, p.Text})
		}
	}
}
