package bot

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// commandSpec is one chat command, Atlantis-style: its name, its usage
// line, how the words after the site become a Command, and its runner.
// Parse, help and dispatch read this one table; who may run what is the
// service's permission table (releases.Permission), the same for every
// door.
type commandSpec struct {
	name  string
	usage string
	// args fills c from the words after the site; an error is the
	// person's mistake, shown with the usage line.
	args func(c *Command, words []string) error
	// run carries the command out; nil for help, which Handle answers.
	run func(b *Bot, ctx context.Context, req Request, site releases.Site, out Out)
	// allSites: the site may be "all" (every configured site).
	allSites bool
}

// AllSites names every site in freeze and unfreeze.
const AllSites = "all"

// commandTable is in the order help lists it. It is filled in init, as
// the runners refer to the Bot's methods that read it.
var commandTable []commandSpec

func init() {
	commandTable = []commandSpec{
		{name: "promote", usage: "promote [site] <version> [reason...] [--gradual] [--override-freeze <why...>]", args: promoteArgs, run: (*Bot).runPromote},
		{name: "rollback", usage: "rollback [site] [version] [reason...]", args: maybeVersionAndReason, run: (*Bot).runRollback},
		{name: "versions", usage: "versions [site]", args: noWords, run: (*Bot).runVersions},
		{name: "status", usage: "status [site]", args: noWords, run: (*Bot).runStatus},
		{name: "history", usage: "history [site]", args: noWords, run: (*Bot).runHistory},
		{name: "lock", usage: "lock [site] <reason...>", args: lockReason, run: (*Bot).runLock},
		{name: "unlock", usage: "unlock [site]", args: noWords, run: (*Bot).runUnlock},
		{name: "approve", usage: "approve [site] <request>", args: requestID, run: (*Bot).runApprove},
		{name: "reject", usage: "reject [site] <request> [reason...]", args: requestAndReason, run: (*Bot).runReject},
		{name: "freeze", usage: "freeze [site|all] <2h|3d|2026-12-24> <reason...>", args: freezeArgs, run: (*Bot).runFreeze, allSites: true},
		{name: "unfreeze", usage: "unfreeze [site|all]", args: noWords, run: (*Bot).runUnfreeze, allSites: true},
		{name: "prune", usage: "prune [site] [--dry-run]", args: dryRun, run: (*Bot).runPrune},
		{name: "pin", usage: "pin [site] <version> [reason...]", args: versionAndReason, run: (*Bot).runPin},
		{name: "unpin", usage: "unpin [site] <version>", args: oneVersion, run: (*Bot).runUnpin},
		{name: "diff", usage: "diff [site] <a> <b>", args: twoVersions, run: (*Bot).runDiff},
		{name: "preview", usage: "preview [site] <version>", args: oneVersion, run: (*Bot).runPreview},
		{name: "rollout", usage: "rollout [site] <pause|resume|advance|abort> [reason...]", args: rolloutArgs, run: (*Bot).runRollout},
		{name: "help", usage: "help"},
	}
}

// lookup finds a command by name.
func lookup(name string) (commandSpec, bool) {
	for _, c := range commandTable {
		if c.name == name {
			return c, true
		}
	}
	return commandSpec{}, false
}

// Argument shapes.

func noWords(_ *Command, words []string) error {
	if len(words) > 0 {
		return fmt.Errorf("unexpected %s", quoted(strings.Join(words, " ")))
	}
	return nil
}

func checkVersion(v string) error {
	if err := releases.ValidateVersion(v); err != nil {
		// The error quotes the version: at most maxQuoted characters of it.
		if cerr := releases.ValidateVersion(clip(v)); cerr != nil {
			err = cerr
		}
		return errors.New(releases.ErrorMessage(err))
	}
	return nil
}

func versionAndReason(c *Command, words []string) error {
	if len(words) == 0 {
		return errors.New("a version is required")
	}
	if err := checkVersion(words[0]); err != nil {
		return err
	}
	c.Version, c.Reason = words[0], strings.Join(words[1:], " ")
	return nil
}

// overrideFlag ends a promote's reason; the words after it say why the
// promote goes ahead in a freeze or outside the deploy windows.
const overrideFlag = "--override-freeze"

// gradualFlag makes a promote a rolling release, wherever it is typed
// before --override-freeze.
const gradualFlag = "--gradual"

func promoteArgs(c *Command, words []string) error {
	kept := words[:0:0]
	for i, w := range words {
		if strings.EqualFold(w, overrideFlag) || w == "—override-freeze" {
			kept = append(kept, words[i:]...)
			break
		}
		if strings.EqualFold(w, gradualFlag) || w == "—gradual" { // Slack turns "--" into a dash
			c.Gradual = true
			continue
		}
		kept = append(kept, w)
	}
	words = kept
	for i, w := range words {
		if strings.EqualFold(w, overrideFlag) || w == "—override-freeze" { // Slack turns "--" into a dash
			c.Override = strings.TrimSpace(strings.Join(words[i+1:], " "))
			if c.Override == "" {
				return errors.New("say why after " + overrideFlag)
			}
			words = words[:i]
			break
		}
	}
	return versionAndReason(c, words)
}

// rolloutArgs: what to do with the rollout, then why.
func rolloutArgs(c *Command, words []string) error {
	if len(words) == 0 {
		return errors.New("say pause, resume, advance or abort")
	}
	switch a := strings.ToLower(words[0]); a {
	case releases.RolloutPause, releases.RolloutResume, releases.RolloutAdvance, releases.RolloutAbortIt:
		c.RolloutAction, c.Reason = a, strings.Join(words[1:], " ")
		return nil
	}
	return fmt.Errorf("a rollout takes pause, resume, advance or abort, not %s", quoted(clip(words[0])))
}

// freezeArgs: how long or until when, then why.
func freezeArgs(c *Command, words []string) error {
	if len(words) == 0 {
		return errors.New("how long (2h, 3d) or until when (2026-12-24, 2026-12-24T18:00Z)?")
	}
	// The form is checked here; whether the time is still to come is
	// the service's to say, on its clock.
	if _, err := releases.ParseUntil(words[0], time.Unix(0, 0)); err != nil {
		return errors.New(releases.ErrorMessage(err))
	}
	if len(words) < 2 {
		return errors.New("say why deploys are frozen")
	}
	c.Until, c.Reason = words[0], strings.Join(words[1:], " ")
	return nil
}

// maybeVersionAndReason: "rollback v41 why" or "rollback it broke"; the
// runner decides whether a version-like first word names a release.
func maybeVersionAndReason(c *Command, words []string) error {
	c.Reason = strings.Join(words, " ")
	if len(words) > 0 && releases.ValidateVersion(words[0]) == nil {
		c.Version, c.MaybeVersion, c.Reason = words[0], true, strings.Join(words[1:], " ")
	}
	return nil
}

func lockReason(c *Command, words []string) error {
	if len(words) == 0 {
		return errors.New("say why the site is locked")
	}
	c.Reason = strings.Join(words, " ")
	return nil
}

func dryRun(c *Command, words []string) error {
	for _, w := range words {
		if w != "--dry-run" && w != "dry-run" {
			return fmt.Errorf("unexpected %s", quoted(w))
		}
		c.DryRun = true
	}
	return nil
}

func oneVersion(c *Command, words []string) error {
	if len(words) != 1 {
		return errors.New("one version is required")
	}
	if err := checkVersion(words[0]); err != nil {
		return err
	}
	c.Version = words[0]
	return nil
}

func twoVersions(c *Command, words []string) error {
	if len(words) != 2 {
		return errors.New("two versions are required")
	}
	for _, w := range words {
		if err := checkVersion(w); err != nil {
			return err
		}
	}
	c.Version, c.Other = words[0], words[1]
	return nil
}

// Runners, one per command.

func (b *Bot) runPromote(ctx context.Context, req Request, site releases.Site, out Out) {
	c := req.Cmd
	// Promoting an older release goes backwards: that is a rollback, and
	// the person says so, or confirms.
	if live, older := b.Service.GoesBack(ctx, site.Name, c.Version); older && !req.Confirmed {
		if a, ok := out.(Asker); ok {
			c.From = live
			a.Ask(ctx, req, Md(":rewind: `%s` is older than the live `%s` on *%s*: promoting it goes *back*. Go back to `%s`?", c.Version, live, site.Name, c.Version), c)
		} else {
			out.Private(ctx, req, Md("`%s` is older than the live `%s` on *%s*: promoting it goes back. Say `%s rollback %s %s` to do that.",
				c.Version, live, site.Name, b.Command, site.Name, c.Version))
		}
		return
	}
	if a, ok := out.(Asker); ok && req.Confirmed {
		// The question goes, buttons and all, before the deploy starts. A
		// click that was already on its way finds the site busy with this
		// deploy, or the release live: the service refuses it.
		a.Answered(ctx, req, Md(":rewind: Going back to `%s` on *%s*, as you confirmed.", c.Version, site.Name))
	}
	b.deploy(ctx, req, site, out, func(p releases.Progress) (*releases.Outcome, error) {
		return b.Service.Promote(ctx, releases.PromoteRequest{Site: site.Name, Version: c.Version, Actor: actorOf(req), Reason: c.Reason, Override: c.Override,
			Back: req.Confirmed, BackFrom: c.From, Gradual: c.Gradual}, p)
	})
}

func (b *Bot) runRollback(ctx context.Context, req Request, site releases.Site, out Out) {
	c := req.Cmd
	version, reason := c.Version, c.Reason
	if c.MaybeVersion {
		// "rollback oops it broke": the word is a version only if such a
		// release exists.
		if _, err := b.Service.Release(ctx, site.Name, version); err != nil {
			version, reason = "", strings.TrimSpace(c.Version+" "+c.Reason)
		}
	}
	b.deploy(ctx, req, site, out, func(p releases.Progress) (*releases.Outcome, error) {
		return b.Service.Rollback(ctx, releases.RollbackRequest{Site: site.Name, Version: version, Actor: actorOf(req), Reason: reason, FromDeploy: req.FromDeploy}, p)
	})
}

func (b *Bot) runVersions(ctx context.Context, req Request, site releases.Site, out Out) {
	vs, err := b.Service.Versions(ctx, site.Name)
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	deploys, _ := b.Service.Deploys(ctx, site.Name, 200)
	out.Public(ctx, req, VersionsMessage(site, vs, deploys, b.Service.Time()))
}

func (b *Bot) runHistory(ctx context.Context, req Request, site releases.Site, out Out) {
	h, err := b.Service.History(ctx, site.Name, HistoryShown)
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	out.Public(ctx, req, HistoryMessage(site, h))
}

func (b *Bot) runStatus(ctx context.Context, req Request, site releases.Site, out Out) {
	st, err := b.Service.Status(ctx, site.Name)
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	out.Public(ctx, req, StatusMessage(st, b.Service.Time()))
}

func (b *Bot) runLock(ctx context.Context, req Request, site releases.Site, out Out) {
	l, err := b.Service.LockSite(ctx, site.Name, actorOf(req), req.Cmd.Reason)
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	out.Public(ctx, req, Message{Text: Md(":lock: %s locked *%s*: %s. Promotes and rollbacks are refused until `%s unlock %s`.",
		Mention(l.Holder), site.Name, l.Reason, b.Command, site.Name)})
}

func (b *Bot) runUnlock(ctx context.Context, req Request, site releases.Site, out Out) {
	l, err := b.Service.UnlockSite(ctx, site.Name, actorOf(req))
	switch {
	case err != nil:
		out.Private(ctx, req, ErrorText(err))
	case l == nil:
		out.Private(ctx, req, Md("%s is not locked.", site.Name))
	default:
		out.Public(ctx, req, Message{Text: Md(":unlock: %s unlocked *%s* (locked by %s since %s: %s).",
			Mention(actorOf(req)), site.Name, Mention(l.Holder), l.Since.UTC().Format("2006-01-02 15:04Z"), l.Reason)})
	}
}

func (b *Bot) runRollout(ctx context.Context, req Request, site releases.Site, out Out) {
	c := req.Cmd
	d, err := b.Service.ControlRollout(ctx, releases.RolloutRequest{Site: site.Name, Action: c.RolloutAction, Actor: actorOf(req), Reason: c.Reason})
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	if d.ID == "" {
		out.Public(ctx, req, Message{Text: Md(":broom: %s cleared the share of visitors a rollout of `%s` had left on *%s*: everyone gets the live release.", Mention(actorOf(req)), d.To, site.Name)})
		return
	}
	what := map[string]string{
		releases.RolloutPause:   ":double_vertical_bar: %s paused the rollout of `%s` on *%s* at %d%%: the step holds until resumed.",
		releases.RolloutResume:  ":arrow_forward: %s resumed the rollout of `%s` on *%s* at %d%%.",
		releases.RolloutAdvance: ":fast_forward: %s advanced the rollout of `%s` on *%s* from %d%%.",
		releases.RolloutAbortIt: ":octagonal_sign: %s aborted the rollout of `%s` on *%s* at %d%%: every visitor is back on the live release, and the site stays locked.",
	}[c.RolloutAction]
	out.Public(ctx, req, Message{Text: Md(what, Mention(actorOf(req)), d.To, site.Name, d.Rollout.Percent)})
}

func (b *Bot) runFreeze(ctx context.Context, req Request, site releases.Site, out Out) {
	c := req.Cmd
	fs, err := b.Service.Freeze(ctx, releases.FreezeRequest{Site: site.Name, All: c.All, Until: c.Until, Reason: c.Reason, Actor: actorOf(req)})
	if len(fs) > 0 {
		var names []Mrkdwn
		for _, f := range fs {
			names = append(names, Md("*%s*", f.Site))
		}
		f := fs[0]
		unfreeze := site.Name
		if c.All {
			unfreeze = AllSites
		}
		out.Public(ctx, req, textMessage(Md(":snowflake: %s froze %s until %s: %s. Promotes are refused (rollbacks are not) until then or `%s unfreeze %s`.",
			Mention(f.By), joinMd(names, ", "), f.Until.UTC().Format("2006-01-02 15:04Z"), f.Reason, b.Command, unfreeze)))
	}
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
	}
}

func (b *Bot) runUnfreeze(ctx context.Context, req Request, site releases.Site, out Out) {
	lifted, err := b.Service.Unfreeze(ctx, site.Name, req.Cmd.All, actorOf(req))
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	if len(lifted) == 0 {
		out.Private(ctx, req, Md("No freeze to lift on %s (freezes in the configuration stay until they end).", req.Cmd.Site))
		return
	}
	var lines []Mrkdwn
	for _, f := range lifted {
		lines = append(lines, Md(":sunny: %s unfroze *%s* (frozen by %s until %s: %s).", Mention(actorOf(req)), f.Site, Mention(f.By),
			f.Until.UTC().Format("2006-01-02 15:04Z"), f.Reason))
	}
	out.Public(ctx, req, textMessage(joinMd(lines, "\n")))
}

func (b *Bot) runPrune(ctx context.Context, req Request, site releases.Site, out Out) {
	var p Pruner = b.Service
	if b.Pruner != nil {
		p = b.Pruner
	}
	rep, err := p.Prune(ctx, releases.PruneRequest{Site: site.Name, DryRun: req.Cmd.DryRun, Actor: actorOf(req)})
	if rep == nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	out.Private(ctx, req, PruneMessage(rep, err).Text)
}

func (b *Bot) runPin(ctx context.Context, req Request, site releases.Site, out Out) {
	p, err := b.Service.PinRelease(ctx, site.Name, req.Cmd.Version, actorOf(req), req.Cmd.Reason)
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	out.Public(ctx, req, Message{Text: Md(":pushpin: %s pinned `%s` of *%s*: retention never deletes it.%s", Mention(p.By), p.Version, site.Name, reasonSuffix(p.Reason))})
}

func (b *Bot) runUnpin(ctx context.Context, req Request, site releases.Site, out Out) {
	if err := b.Service.UnpinRelease(ctx, site.Name, req.Cmd.Version, actorOf(req)); err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	out.Public(ctx, req, Message{Text: Md("%s unpinned `%s` of *%s*: retention applies to it again.", Mention(actorOf(req)), req.Cmd.Version, site.Name)})
}

func (b *Bot) runDiff(ctx context.Context, req Request, site releases.Site, out Out) {
	d, err := b.Service.Diff(ctx, site.Name, req.Cmd.Version, req.Cmd.Other)
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	out.Public(ctx, req, DiffMessage(d))
}

func (b *Bot) runPreview(ctx context.Context, req Request, site releases.Site, out Out) {
	p, err := b.Service.Preview(ctx, site.Name, req.Cmd.Version, actorOf(req), 0)
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	// Privately: the link shows the release to whoever has it.
	out.Private(ctx, req, Md(":eyes: Preview of `%s` on *%s*: %s (works until %s; anyone with the link sees this release, nobody else is affected)",
		p.Version, site.Name, Link(p.URL, "open"), p.Expires.UTC().Format("15:04Z")))
}
