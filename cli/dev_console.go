//go:build !nostandin

package cli

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/releases"
)

// runConsole reads commands from stdin until it ends or ctx does, and
// runs each through b as Slack would, printing the replies.
func runConsole(ctx context.Context, env Env, b *bot.Bot, out *consoleOut) error {
	lines := make(chan string)
	go func() {
		sc := bufio.NewScanner(env.Stdin)
		for sc.Scan() {
			lines <- sc.Text()
		}
		close(lines)
	}()
	for {
		fmt.Fprint(env.Stdout, "> ")
		select {
		case <-ctx.Done():
			fmt.Fprintln(env.Stdout)
			return nil
		case line, ok := <-lines:
			if !ok {
				fmt.Fprintln(env.Stdout)
				return nil
			}
			if strings.TrimSpace(line) == "" {
				continue
			}
			user, rest := consoleUser(line)
			text, ok := strings.CutPrefix(rest, "/site")
			if !ok {
				out.printf("(commands start with /site, e.g. /site help; \"as NAME /site ...\" acts as someone else)\n")
				continue
			}
			req := bot.Request{Cmd: bot.Parse(text, b.SiteNames()), UserID: user, Channel: "#demo", Door: "console"}
			b.Handle(ctx, req, out)
		}
	}
}

// consoleName is who a console line may act as: "as bob /site approve
// ID", so one person can try what needs two (an approval).
var consoleName = regexp.MustCompile(`^as ([a-z][a-z0-9_-]{0,31}) +`)

// consoleUser splits a console line into who typed it ("you" unless it
// says "as NAME") and the command.
func consoleUser(line string) (user, rest string) {
	line = strings.TrimSpace(line)
	if m := consoleName.FindStringSubmatch(line); m != nil {
		return m[1], strings.TrimSpace(line[len(m[0]):])
	}
	return "you", line
}

// ApprovalChanged prints an approval request's card as it changes, as
// Slack would show it in the site's channel.
func (c *consoleOut) ApprovalChanged(_ context.Context, site releases.Site, a releases.ApprovalRequest) {
	c.printf("[%s] approval card: %s\n", site.Channel, indent(plain(bot.ApprovalMessage(site, a).Text)))
}

// consoleOut prints what Slack would show: private replies, channel
// messages, and a deploy's card and thread as lines.
type consoleOut struct {
	mu sync.Mutex
	w  io.Writer
}

func (c *consoleOut) printf(format string, a ...any) {
	c.mu.Lock()
	defer c.mu.Unlock()
	fmt.Fprintf(c.w, format, a...)
}

func (c *consoleOut) Private(_ context.Context, _ bot.Request, text bot.Mrkdwn) {
	c.printf("[only you] %s\n", indent(plain(text)))
}

func (c *consoleOut) Public(_ context.Context, req bot.Request, m bot.Message) {
	c.printf("[%s] %s\n", req.Channel, indent(plain(m.Text)))
}

// slackLink is Slack's link syntax, <URL|label> or <URL>.
var slackLink = regexp.MustCompile(`<((?:https?|mailto):[^|>\s]+)(?:\|[^>]*)?>`)

// plain turns Slack's link syntax into the bare URL, which a terminal
// makes clickable and a person can copy, and escaped characters back into
// themselves; the rest of the text is as Slack would show it.
func plain(text bot.Mrkdwn) string {
	return bot.Mrkdwn(slackLink.ReplaceAllString(string(text), "$1")).Plain()
}

func (c *consoleOut) Deploy(_ context.Context, req bot.Request, site releases.Site) bot.DeployView {
	return &consoleDeploy{c: c, channel: site.Channel}
}

type consoleDeploy struct {
	c       *consoleOut
	channel string
	started time.Time
}

func (d *consoleDeploy) Event(e releases.Event) {
	if d.started.IsZero() {
		d.started = e.Deploy.StartedAt
	}
	switch e.Type {
	case releases.EventDeployStarted, releases.EventDeployResumed:
		d.c.printf("[%s] card: %s\n", d.channel, plain(bot.Card(bot.CardState{Deploy: e.Deploy, Phase: "starting"}).Text))
	case releases.EventDeployFinished:
		d.c.printf("[%s] card: %s\n", d.channel, plain(bot.Card(bot.CardState{Deploy: e.Deploy, Result: "done", Elapsed: e.Elapsed}).Text))
		d.c.printf("[%s]   └ %s\n", d.channel, plain(bot.LiveMessage(e.Deploy, e.Elapsed).Text))
		return
	case releases.EventDeployFailed:
		d.c.printf("[%s] card: %s\n", d.channel, plain(bot.Card(bot.CardState{Deploy: e.Deploy, Result: "failed", Error: bot.ErrorMessage(e.Err), Elapsed: e.Elapsed}).Text))
	}
	if line := bot.ThreadLine(e); line != "" {
		d.c.printf("[%s]   └ %s\n", d.channel, plain(line))
	}
}

func (d *consoleDeploy) Done(*releases.Outcome, error) {}

func indent(s string) string { return strings.ReplaceAll(s, "\n", "\n    ") }
