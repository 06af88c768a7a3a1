package bot

import (
	"context"
	"log/slog"
	"regexp"

	"github.com/deploybot/deploybot/releases"
)

// Request is one command from a person.
type Request struct {
	Cmd     Command
	UserID  string // Slack user id (or "console")
	Channel string // where it was typed
	// Thread, when set, is the message whose thread a deploy reports in
	// (a Promote or Rollback button's message).
	Thread string
	// Elsewhere: Channel and Thread are not where the command was typed
	// but where its deploy reports (an approval card's thread, for a
	// typed approve); the person who typed it is told where.
	Elsewhere bool
	// ResponseURL answers the person wherever they typed the command or
	// clicked (Slack's response_url); empty outside Slack.
	ResponseURL string
	// Confirmed: the person confirmed a promote that goes backwards.
	Confirmed bool
	// FromDeploy is the deploy a Rollback button was posted under: the
	// rollback is refused if the site has moved since.
	FromDeploy string
	Door       string // slack, console
}

// Out is where a runner's answers go; Slack and the dev console each
// implement it.
type Out interface {
	// Private answers the person alone (errors, refusals, help).
	Private(ctx context.Context, req Request, text Mrkdwn)
	// Public answers in the channel the command came from.
	Public(ctx context.Context, req Request, m Message)
	// Deploy starts the live view of a deploy (status card and thread)
	// and returns the sink for its events. Done is called after the last
	// event and waits until everything is posted.
	Deploy(ctx context.Context, req Request, site releases.Site) DeployView
}

// DeployView shows one deploy as it runs.
type DeployView interface {
	Event(e releases.Event)
	Done(out *releases.Outcome, err error)
}

// Pruner runs retention (server.Server adds metrics, audit and the
// channel summary to releases.Service.Prune).
type Pruner interface {
	Prune(ctx context.Context, req releases.PruneRequest) (*releases.PruneReport, error)
}

// Bot runs commands.
type Bot struct {
	Service *releases.Service
	Pruner  Pruner // nil: Service
	Command string // the slash command, "/site"
	Logger  *slog.Logger
}

func (b *Bot) log() *slog.Logger {
	if b.Logger != nil {
		return b.Logger
	}
	return slog.New(slog.DiscardHandler)
}

// SiteNames lists the configured sites, for Parse.
func (b *Bot) SiteNames() []string {
	var out []string
	for _, s := range b.Service.Sites {
		out = append(out, s.Name)
	}
	return out
}

// TextAnswer is the answer to a line that needs no lookup: help, and a
// command that does not parse (Slack puts it in the ack itself).
func (b *Bot) TextAnswer(c Command) (Mrkdwn, bool) {
	switch c.Action {
	case Help:
		text := HelpText(b.Command)
		if c.Error != "" {
			text = Md("%s\n%s", c.Error, text)
		}
		return text, true
	case Reject:
		return Md("%s", c.Error), true
	}
	return "", false
}

// Handle runs one request to the end, answering through out.
func (b *Bot) Handle(ctx context.Context, req Request, out Out) {
	ctx = releases.WithPrincipal(releases.WithDoor(ctx, req.Door), principalOf(req))
	c := req.Cmd
	if text, ok := b.TextAnswer(c); ok {
		out.Private(ctx, req, text)
		return
	}
	switch c.Action {
	case Ignore:
		return
	case Cancel:
		text := Md("Cancelled: `%s` was not promoted; nothing changed.", c.Version)
		if a, ok := out.(Asker); ok {
			a.Answered(ctx, req, text)
		} else {
			out.Private(ctx, req, text)
		}
		return
	}
	spec, ok := lookup(c.Name)
	if !ok || spec.run == nil {
		out.Private(ctx, req, Md("unknown command %q", c.Name))
		return
	}
	sites := b.Service.Sites
	if !c.All {
		site, err := b.Service.Site(c.Site)
		if err != nil {
			out.Private(ctx, req, ErrorText(err))
			return
		}
		sites = []releases.Site{site}
	}
	if len(sites) == 0 {
		out.Private(ctx, req, "No sites are configured.")
		return
	}
	// Who may run it is the service's to decide, for every door alike:
	// the runner hands it who asks (Principal), and shows its refusal.
	site := sites[0]
	spec.run(b, ctx, req, site, out)
}

// principalOf is who asks: in Slack, the user id Slack's signed envelope
// carries (the socket connection is the bot's own, opened with its app
// token); at the dev console, the name typed.
func principalOf(req Request) releases.Principal {
	switch req.Door {
	case releases.DoorSlack:
		return releases.Principal{Kind: releases.PrincipalSlack, ID: req.UserID}
	case releases.DoorConsole:
		return releases.Principal{Kind: releases.PrincipalLocal, ID: req.UserID}
	}
	// A request that names no door it came through is nobody: it holds
	// no role, rather than the console's every role.
	return releases.ParsePrincipal("unknown-door:" + req.UserID)
}

// actorOf is how the asker is recorded: a Slack user id (which Slack
// renders as a mention), console:NAME at the dev console.
func actorOf(req Request) string { return principalOf(req).String() }

// Mention renders an actor: Slack user ids as mentions, others escaped.
func Mention(actor string) Mrkdwn {
	if slackUserID.MatchString(actor) {
		return Mrkdwn("<@" + actor + ">")
	}
	return Md("%s", actor)
}

// ErrorText is an error for people, escaped (error texts carry versions,
// reasons and names from outside).
func ErrorText(err error) Mrkdwn { return Md("%s", ErrorMessage(err)) }

// slackUserID is a Slack user id: U or W and upper-case letters and digits.
var slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)

// deploy runs a promote or rollback with its live view. Refusals before
// the deploy starts (locked, unknown release) go to the person alone.
func (b *Bot) deploy(ctx context.Context, req Request, site releases.Site, out Out, run func(releases.Progress) (*releases.Outcome, error)) {
	var view DeployView
	progress := func(e releases.Event) {
		if view == nil {
			view = out.Deploy(ctx, req, site)
		}
		view.Event(e)
	}
	res, err := run(progress)
	if view == nil {
		switch {
		case err != nil:
			out.Private(ctx, req, ErrorText(err))
		case res != nil && res.AlreadyLive:
			out.Private(ctx, req, Md("%s is already live on %s; nothing to do.", res.Version, site.Name))
		case res != nil && res.Approval != nil:
			out.Private(ctx, req, waitingText(site, *res.Approval, actorOf(req)))
		}
		return
	}
	view.Done(res, err)
}

func reasonSuffix(r string) string {
	if r == "" {
		return ""
	}
	return " (" + r + ")"
}

// DiffFromLive compares version with the live release for the release
// notice; nil when nothing is live, it is the live release, or a manifest
// cannot be read (the notice goes out without the diff).
func (b *Bot) DiffFromLive(ctx context.Context, site releases.Site, version string) *releases.Diff {
	live, ok, err := b.Service.Live(ctx, site.Name)
	if err != nil || !ok || live.Version == "" || live.Version == version {
		return nil
	}
	d, err := b.Service.Diff(ctx, site.Name, live.Version, version)
	if err != nil {
		b.log().WarnContext(ctx, "release notice without a diff", "site", site.Name, "version", version, "err", err)
		return nil
	}
	return d
}
