package bot

import (
	"context"
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

// Approvals in chat: a promote on a site that needs approval answers the
// person with where it waits; the card with Approve and Reject (ApprovalMessage)
// is the chat adapter's to post and keep true, as it hears of each change
// whichever door made it. A click, or `approve <request>`, runs Approve:
// the approval that completes the request runs the deploy in the card's
// thread.

// requestIDRE is the shape of a request id (a deploy id's): letters,
// digits, '.', '-'.
var requestIDRE = regexp.MustCompile(`^[0-9A-Za-z][0-9A-Za-z.-]{0,63}$`)

func requestID(c *Command, words []string) error {
	if len(words) != 1 {
		return errors.New("the request's id is required (the promote's answer and its card say it)")
	}
	if !requestIDRE.MatchString(words[0]) {
		return errors.New("that is not a request id")
	}
	c.Version = words[0]
	return nil
}

func requestAndReason(c *Command, words []string) error {
	if len(words) == 0 {
		return requestID(c, words)
	}
	if err := requestID(c, words[:1]); err != nil {
		return err
	}
	c.Reason = strings.Join(words[1:], " ")
	return nil
}

// waitingText tells the person who asked where their promote waits.
func waitingText(site releases.Site, a releases.ApprovalRequest, who string) Mrkdwn {
	if a.Actor != who {
		// An approval that did not complete the request.
		return Md(":ballot_box_with_check: Approved `%s` (%d of %d); it waits for %d more.", a.ID, len(a.Approvals), a.Required, a.Required-len(a.Approvals))
	}
	where := Mrkdwn("")
	if site.Channel != "" {
		where = Md(" The card with Approve and Reject is in %s.", ChannelMention(site.Channel))
	}
	return Md(":hourglass_flowing_sand: The promote of `%s` on *%s* waits for %d approval(s) by an approver other than you, until %s: request `%s`.%s",
		a.Version, site.Name, a.Required, a.Expires.UTC().Format("2006-01-02 15:04Z"), a.ID, where)
}

// ChannelMention shows a channel: a mention for a channel id, else the
// name as written, escaped.
func ChannelMention(ch string) Mrkdwn {
	if IsChannelID(ch) {
		return Mrkdwn("<#" + ch + ">")
	}
	return Md("%s", ch)
}

// IsChannelID reports whether ch is a Slack conversation id (a channel,
// a private channel or a DM), not a name.
func IsChannelID(ch string) bool { return channelIDRE.MatchString(ch) }

var channelIDRE = regexp.MustCompile(`^[CGD][A-Z0-9]{2,20}$`)

// ApprovalMessage is an approval request's card as the request alone
// says it (ApprovalView has the rest).
func ApprovalMessage(site releases.Site, a releases.ApprovalRequest) Message {
	return ApprovalView{Site: site, Request: a}.Message()
}

// ApprovalView is what an approval request's card shows.
type ApprovalView struct {
	Site    releases.Site
	Request releases.ApprovalRequest
	// Approvers are who the card asks while the request waits: Slack user
	// ids (U..., W...) and user-group ids (S...), mentioned so Slack
	// tells them (ApproverIDs); others are left out.
	Approvers []string
	// Deploy is the approved promote once it has ended (nil until then);
	// Live is what is live since ("" when unknown).
	Deploy *releases.Deploy
	Live   string
}

// approversShown is how many approvers a card mentions; the rest are
// counted.
const approversShown = 10

// Message is the card: who asks for what and why, how many approvals it
// has and needs, until when, and whom it asks; Approve and Reject while
// it waits, how it ended once it does not, and how its deploy ended once
// that does.
func (v ApprovalView) Message() Message {
	site, a := v.Site, v.Request
	title := Md("*Promote %s*: `%s` → `%s` asked by %s", site.Name, present.OrNone(a.From), a.Version, Mention(a.Actor))
	var lines []Mrkdwn
	if a.Reason != "" {
		lines = append(lines, Md(">%s", present.Short(a.Reason, 280)))
	}
	if a.Override != "" {
		lines = append(lines, Md(":snowflake: overriding a freeze: %s", present.Short(a.Override, 280)))
	}
	if a.Back {
		lines = append(lines, Md(":rewind: goes *back* to a release older than the one live when asked"))
	}
	var approvers []Mrkdwn
	for _, v := range a.Approvals {
		approvers = append(approvers, Mention(v.By))
	}
	if len(approvers) > 0 {
		lines = append(lines, Md("Approved by %s (%d of %d)", joinMd(approvers, ", "), len(a.Approvals), a.Required))
	}
	if a.State == releases.ApprovalPending {
		var asked []Mrkdwn
		for _, id := range v.Approvers {
			if m := Audience(id); m != "" {
				asked = append(asked, m)
			}
		}
		if len(asked) > 0 {
			lines = append(lines, ":bell: Approvers: "+listMd(asked, approversShown))
		}
	}
	var state Mrkdwn
	switch a.State {
	case releases.ApprovalPending:
		state = Md(":hourglass_flowing_sand: Waits for %d approval(s), not by %s, until %s.", a.Required-len(a.Approvals), Mention(a.Actor), a.Expires.UTC().Format("2006-01-02 15:04Z"))
	case releases.ApprovalApproved:
		state = Md(":white_check_mark: Approved by %s: the deploy runs in this thread.", Mention(a.DecidedBy))
		if d := v.Deploy; d != nil {
			switch d.Phase {
			case releases.PhaseDone:
				state = Md(":white_check_mark: Approved by %s and deployed: `%s` went live at %s.", Mention(a.DecidedBy), d.To, d.FinishedAt.UTC().Format("2006-01-02 15:04Z"))
			case releases.PhaseFailed:
				state = Md(":x: Approved by %s, but the deploy failed: %s. Live now: `%s`.", Mention(a.DecidedBy), present.Short(d.Error, 400), present.OrNone(v.Live))
			}
		}
	case releases.ApprovalRejected:
		state = Md(":no_entry: Rejected by %s%s. Nothing changed.", Mention(a.DecidedBy), reasonColon(a.Why))
	case releases.ApprovalExpired:
		state = Md(":hourglass: Expired at %s: nobody approved in time. Nothing changed.", a.Expires.UTC().Format("2006-01-02 15:04Z"))
	case releases.ApprovalFailed:
		state = Md(":x: Failed: %s. Nothing was deployed.", a.Why)
	}
	body := title
	if len(lines) > 0 {
		body += "\n" + joinMd(lines, "\n")
	}
	blocks := []Block{section(body), note(state + Md(" · request `%s`", a.ID))}
	text := body + "\n" + state
	if a.State == releases.ApprovalPending {
		value := site.Name + "/" + a.ID
		blocks = append(blocks, Buttons{Buttons: []Button{
			{Action: ActionApprove, Value: value, Label: "Approve", Style: Primary,
				Confirm: &Confirm{Title: "Approve?", Text: fmt.Sprintf("Make %s live on %s now, as asked above?", a.Version, site.Name), OK: "Approve", Cancel: "Cancel"}},
			{Action: ActionReject, Value: value, Label: "Reject", Style: Danger},
		}})
	}
	return Message{Text: text, Blocks: blocks}
}

// ApprovalDecidedMessage tells the person who asked (asker, a mention)
// in the card's thread how their request was decided; "" when there is
// nothing to tell: it still waits, or they withdrew it themselves.
func ApprovalDecidedMessage(site releases.Site, a releases.ApprovalRequest, asker Mrkdwn) Message {
	if a.DecidedBy == a.Actor {
		return Message{}
	}
	what := Md("your promote of `%s` on *%s*", a.Version, site.Name)
	var t Mrkdwn
	switch a.State {
	case releases.ApprovalApproved:
		t = Md(":white_check_mark: %s: %s is approved by %s; it runs in this thread.", asker, what, Mention(a.DecidedBy))
	case releases.ApprovalRejected:
		t = Md(":no_entry: %s: %s was rejected by %s%s. Nothing changed.", asker, what, Mention(a.DecidedBy), reasonColon(present.Short(a.Why, 400)))
	case releases.ApprovalExpired:
		t = Md(":hourglass: %s: %s expired at %s: nobody approved in time. Nothing changed; promote again to ask again.", asker, what, a.Expires.UTC().Format("2006-01-02 15:04Z"))
	case releases.ApprovalFailed:
		t = Md(":x: %s: %s failed: %s. Nothing was deployed.", asker, what, present.Short(a.Why, 400))
	default:
		return Message{}
	}
	return textMessage(t)
}

// Audience is the mention of one of a site's approvers: a Slack user
// (<@U...>), or a user group (<!subteam^S...>,
// https://api.slack.com/reference/surfaces/formatting#mentioning-groups);
// "" for anything else (a person's name, an ARN), which Slack cannot
// notify.
func Audience(id string) Mrkdwn {
	switch {
	case slackUserID.MatchString(id):
		return Mrkdwn("<@" + id + ">")
	case slackGroupID.MatchString(id):
		return Mrkdwn("<!subteam^" + id + ">")
	}
	return ""
}

// slackGroupID is a Slack user group's id: S and upper-case letters and
// digits.
var slackGroupID = regexp.MustCompile(`^S[A-Z0-9]{2,20}$`)

// ApproverIDs are whom a site's approval cards ask: its approvers (its
// deployers when it names none) as Slack user and user-group ids, each
// person of the people list by their Slack ids, without the person who
// asked (who cannot approve), each once.
func (b *Bot) ApproverIDs(site releases.Site, asker string) []string {
	var access *releases.Access
	if b.Service != nil {
		access = b.Service.Access
	}
	not := map[string]bool{asker: true}
	if pe, ok := access.PersonOf(releases.ParsePrincipal(asker)); ok {
		for _, id := range pe.Slack {
			not[id] = true
		}
	}
	seen := map[string]bool{}
	var out []string
	add := func(id string) {
		if !not[id] && !seen[id] && Audience(id) != "" {
			seen[id] = true
			out = append(out, id)
		}
	}
	for _, id := range site.ApproverIDs() {
		if Audience(id) != "" {
			add(id)
			continue
		}
		if access == nil {
			continue
		}
		for _, pe := range access.People {
			if strings.EqualFold(pe.Name, id) {
				for _, s := range pe.Slack {
					add(s)
				}
			}
		}
	}
	return out
}

// MentionOf mentions an actor in Slack: a Slack user id as itself, anyone
// else by the Slack id of the person the people list says they are, or,
// with none, by name (escaped), which Slack does not notify.
func (b *Bot) MentionOf(actor string) Mrkdwn {
	if slackUserID.MatchString(actor) || b.Service == nil {
		return Mention(actor)
	}
	if pe, ok := b.Service.Access.PersonOf(releases.ParsePrincipal(actor)); ok {
		for _, id := range pe.Slack {
			if slackUserID.MatchString(id) {
				return Mention(id)
			}
		}
	}
	return Mention(actor)
}

func reasonColon(why string) Mrkdwn {
	if why == "" {
		return ""
	}
	return Md(": %s", why)
}

func (b *Bot) runApprove(ctx context.Context, req Request, site releases.Site, out Out) {
	id := req.Cmd.Version
	if req.Thread == "" {
		// Typed, not clicked: the deploy reports in the card's thread.
		if ch, ts, ok, err := b.ApprovalCard(ctx, site, id); err == nil && ok {
			req.Channel, req.Thread, req.Elsewhere = ch, ts, true
		}
	}
	b.deploy(ctx, req, site, out, func(p releases.Progress) (*releases.Outcome, error) {
		return b.Service.Approve(ctx, site.Name, id, actorOf(req), p)
	})
}

func (b *Bot) runReject(ctx context.Context, req Request, site releases.Site, out Out) {
	id := req.Cmd.Version
	// An approver says no; the person who asked may withdraw (the
	// service decides which this is).
	why := req.Cmd.Reason
	if why == "" && req.Door == releases.DoorSlack && req.Thread != "" {
		why = "rejected in Slack"
	}
	a, err := b.Service.Reject(ctx, site.Name, id, actorOf(req), why)
	if err != nil {
		out.Private(ctx, req, ErrorText(err))
		return
	}
	out.Private(ctx, req, Md(":no_entry: Rejected `%s`: the promote of `%s` on *%s* by %s will not run.", a.ID, a.Version, site.Name, Mention(a.Actor)))
}

// ApprovalLink is the name under which a request's card is recorded
// (with the deploy links, under the request's id): "CHANNEL TS".
const ApprovalLink = "slack-approval"

// ApprovalCard is where a request's card is; ok is false when no chat
// posted one.
func (b *Bot) ApprovalCard(ctx context.Context, site releases.Site, id string) (channel, ts string, ok bool, err error) {
	links, err := b.Service.DeployLinks(ctx, site.Name, id)
	if err != nil {
		return "", "", false, err
	}
	f := strings.Fields(links[ApprovalLink])
	if len(f) != 2 {
		return "", "", false, nil
	}
	return f[0], f[1], true, nil
}
