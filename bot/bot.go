package bot

import (
	"context"
	"fmt"
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
	// ResponseURL answers the person wherever they typed the command or
	// clicked (Slack's response_url); empty outside Slack.
	ResponseURL string
	// Confirmed: the person confirmed a promote that goes backwards.
	Confirmed bool
	// From is the release a button was made under (a Rollback button's
	// live release): the rollback is refused if another is live now.
	From string
	Door string // slack, console
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

// Authorizer decides who may change a site.
type Authorizer interface {
	// IsDeployer reports whether user may promote, roll back, lock,
	// unlock or prune site.
	IsDeployer(ctx context.Context, site releases.Site, user string) (bool, error)
	// IsApprover reports whether user may approve deploys of site and
	// promote it in a freeze or outside its windows: its approvers, or
	// when it names none, its deployers.
	IsApprover(ctx context.Context, site releases.Site, user string) (bool, error)
	// IsPreviewer reports whether user may make preview links of site's
	// unreleased releases: its deployers and its previewers.
	IsPreviewer(ctx context.Context, site releases.Site, user string) (bool, error)
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
	Auth    Authorizer
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
	ctx = releases.WithDoor(ctx, req.Door)
	c := req.Cmd
	if text, ok := b.TextAnswer(c); ok {
		out.Private(ctx, req, text)
		return
	}
	switch c.Action {
	case Ignore:
		return
	case Cancel:
		out.Private(ctx, req, Md("Cancelled: `%s` was not promoted; nothing changed.", c.Version))
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
	site := sites[0]
	switch spec.who {
	case deployers:
		// "all" acts on every site: the person deploys every one.
		for _, s := range sites {
			if !b.authorize(ctx, req, s, out) {
				return
			}
		}
		// Promoting in a freeze or outside the windows is an approver's
		// decision.
		if c.Override != "" && !b.authorizeOverride(ctx, req, site, out) {
			return
		}
	case approvers:
		if !b.authorizeApprover(ctx, req, site, out) {
			return
		}
	case previewers:
		// A preview shows a release nobody has decided to ship: the
		// site's deployers, and the people of previewers:, may see it.
		if !b.authorizePreview(ctx, req, site, out) {
			return
		}
	}
	spec.run(b, ctx, req, site, out)
}

// actorOf is how a Slack user is recorded: their user id, which Slack
// renders as a mention.
func actorOf(req Request) string {
	if req.Door == "slack" {
		return req.UserID
	}
	return req.Door + ":" + req.UserID
}

// Mention renders an actor: Slack user ids as mentions, others escaped.
func Mention(actor string) Mrkdwn {
	if slackUserID.MatchString(actor) {
		return Mrkdwn("<@" + actor + ">")
	}
	return Md("%s", actor)
}

// ErrorText is an error for people, escaped (error texts carry versions,
// reasons and names from outside).
func ErrorText(err error) Mrkdwn { return Md("%s", releases.ErrorMessage(err)) }

// slackUserID is a Slack user id: U or W and upper-case letters and digits.
var slackUserID = regexp.MustCompile(`^[UW][A-Z0-9]{2,20}$`)

func (b *Bot) authorize(ctx context.Context, req Request, site releases.Site, out Out) bool {
	if b.Auth == nil {
		return true
	}
	return b.allowed(ctx, req, site, out, b.Auth.IsDeployer, req.Cmd.Name, "deploy", "not a deployer",
		fmt.Sprintf("Sorry, only the deployers of %s may `%s` it. Ask one of them, or an admin to add you to `deployers`.", site.Name, req.Cmd.Name))
}

func (b *Bot) authorizeApprover(ctx context.Context, req Request, site releases.Site, out Out) bool {
	if b.Auth == nil {
		return true
	}
	return b.allowed(ctx, req, site, out, b.Auth.IsApprover, req.Cmd.Name, "approve deploys of", "not an approver",
		fmt.Sprintf("Sorry, only the approvers of %s may approve or reject its promotes.", site.Name))
}

func (b *Bot) authorizeOverride(ctx context.Context, req Request, site releases.Site, out Out) bool {
	if b.Auth == nil {
		return true
	}
	return b.allowed(ctx, req, site, out, b.Auth.IsApprover, req.Cmd.Name, "override the freeze of", "not an approver (--override-freeze)",
		fmt.Sprintf("Sorry, only the approvers of %s may promote it in a freeze or outside its deploy windows. Ask one of them.", site.Name))
}

func (b *Bot) authorizePreview(ctx context.Context, req Request, site releases.Site, out Out) bool {
	if b.Auth == nil {
		return true
	}
	return b.allowed(ctx, req, site, out, b.Auth.IsPreviewer, "preview", "preview", "not a deployer or previewer",
		fmt.Sprintf("Sorry, only the deployers and previewers of %s may preview its releases. Ask an admin to add you to `previewers`.", site.Name))
}

// allowed asks check whether the user may act; a refusal is audited (as
// action) and answered privately with refusal.
func (b *Bot) allowed(ctx context.Context, req Request, site releases.Site, out Out, check func(context.Context, releases.Site, string) (bool, error),
	action, verb, why, refusal string) bool {
	ok, err := check(ctx, site, req.UserID)
	if err != nil {
		b.log().ErrorContext(ctx, "checking who may "+verb, "site", site.Name, "user", req.UserID, "err", err)
		out.Private(ctx, req, Md("Could not check whether you may %s %s (Slack did not answer); try again in a moment.", verb, site.Name))
		return false
	}
	if !ok {
		b.Service.Deny(ctx, site.Name, actorOf(req), action, why)
		out.Private(ctx, req, Md("%s", refusal))
		return false
	}
	return true
}

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
