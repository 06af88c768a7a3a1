package bot

import (
	"context"
	"fmt"
	"time"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

// A release's notice is kept true as the live release changes or
// retention prunes: the chat adapter re-renders a notice with
// NoticeMessage when its state's Key changes. These are the parts every
// chat shares; where a notice is and how it is updated is the adapter's.

// LiveNow is what the notices compare against: the live pointer and the
// live release, read once for all of a site's notices.
type LiveNow struct {
	ptr releases.Live
	rel *releases.Release // nil: nothing live, or not a recorded release
}

// Version is the live release's version ("" when nothing is live).
func (n LiveNow) Version() string { return n.ptr.Version }

// LiveNow reads what is live on site for NoticeStateOf.
func (b *Bot) LiveNow(ctx context.Context, site releases.Site) LiveNow {
	var n LiveNow
	l, ok, err := b.Service.Live(ctx, site.Name)
	if err != nil || !ok || l.Version == "" {
		return n
	}
	n.ptr = l
	if r, err := b.Service.Release(ctx, site.Name, l.Version); err == nil {
		n.rel = &r
	}
	return n
}

// NoticeStateOf is what r's notice should say, with live as it is now.
func NoticeStateOf(r releases.Release, live LiveNow) NoticeState {
	st := NoticeState{Pruned: r.Pruned, Live: live.ptr.Version, LiveSince: live.ptr.Since}
	if live.rel != nil {
		st.Older = releases.GoesBack(r, *live.rel)
		st.LiveCommit = live.rel.Commit
	}
	return st
}

// Asker is an Out that can ask the person to confirm (Slack's buttons).
type Asker interface {
	// Ask puts question to the person alone, with Confirm and Cancel;
	// Confirm runs then, marked confirmed.
	Ask(ctx context.Context, req Request, question Mrkdwn, then Command)
	// Answered puts text in the place of the question that req (its
	// Confirm or Cancel) answered, so that its buttons are gone and a
	// second click cannot run it again.
	Answered(ctx context.Context, req Request, text Mrkdwn)
}

// AskMessage is the question with Confirm and Cancel buttons. The reason
// rides in the row's ID, so the confirmation needs no state in the bot;
// a chat that cuts the ID (Slack: 255 characters) cuts the reason.
func AskMessage(question Mrkdwn, then Command) Message {
	// The live release the question was asked against rides along: a
	// Confirm clicked after another went live is refused, not run.
	value := then.Site + "/" + then.Version + "/" + then.From
	return Message{Text: question, Blocks: []Block{section(question), Buttons{ID: "r:" + then.Reason, Buttons: []Button{
		{Action: ActionConfirm, Value: value, Label: "Confirm", Style: Danger},
		{Action: ActionCancel, Value: value, Label: "Cancel"},
	}}}}
}

// NoticeState is what a release's notice says about the release now.
type NoticeState struct {
	Live      string    // the live release ("" none)
	LiveSince time.Time // when Live went live (zero: unknown)
	Older     bool      // published before Live: promoting it goes backwards
	Pruned    bool      // retention deleted it
	// LiveCommit is the live release's commit, for the compare link.
	LiveCommit string
}

// Key names the notice's class, which is all it says about the live
// release: it is updated only when its class changes. (Keys of earlier
// deploybots named the live release too; such a notice is updated once.)
func (n NoticeState) Key(version string) string {
	switch {
	case n.Pruned:
		return "pruned"
	case n.Live == version:
		return "live"
	case n.Older:
		return "older"
	}
	return "newer"
}

// NoticeMessage announces a new release with a Promote button, and what
// it changes against the release live when it was published when diff is
// not nil (the first post; later renders leave that out). The notice is
// kept true as the release goes live, falls behind the live one, or is
// pruned (st), and says only what its class says (live, older, newer,
// pruned), never the live release's name: a deploy then changes the
// notices whose class changed, a handful, not every kept one. The
// button's confirm dialog says whether promoting goes backwards; a pruned
// release has no button.
func NoticeMessage(site releases.Site, r releases.Release, diff *releases.Diff, st NoticeState) Message {
	title := Md(":package: New release of *%s*: `%s`", site.Name, r.Version)
	from := ""
	if diff != nil && diff.From == st.Live {
		from = st.Live
	}
	head, compare := buildDetails(site, r, from, st.LiveCommit)
	details := append(head, Md("%d files, %s", r.Files, present.HumanBytes(r.Bytes)))
	if compare != "" {
		details = append(details, compare)
	}
	body := title + "\n" + joinMd(details, " · ")
	if r.Message != "" {
		body += Md("\n>%s", present.Short(r.Message, 280))
	}
	if from != "" {
		body += "\n" + noticeDiff(diff)
	}
	var now Mrkdwn
	switch {
	case st.Pruned:
		now = ":wastebasket: Pruned by retention; it can no longer be promoted."
	case st.Live == r.Version && !st.LiveSince.IsZero():
		now = Md(":white_check_mark: Live since %s.", st.LiveSince.UTC().Format("2006-01-02 15:04Z"))
	case st.Live == r.Version:
		now = ":white_check_mark: Live."
	case st.Older:
		now = ":rewind: Older than the live release: promoting it is a rollback."
	}
	blocks := []Block{section(body)}
	text := body
	if now != "" {
		blocks = append(blocks, note(now))
		text += "\n" + now
	}
	if st.Pruned || st.Live == r.Version {
		return Message{Text: text, Blocks: blocks}
	}
	// The dialog is plain text: Slack shows it as written.
	label, question := "Promote "+r.Version, fmt.Sprintf("Make %s live on %s?", r.Version, site.Name)
	if st.Older {
		label = "Roll back to " + r.Version
		question = fmt.Sprintf("Go back to the older %s on %s?", r.Version, site.Name)
	}
	btn := Button{Action: ActionPromote, Value: site.Name + "/" + r.Version, Label: label, Style: Primary,
		Confirm: &Confirm{Title: "Promote?", Text: question, OK: "Promote", Cancel: "Cancel"}}
	if st.Older {
		btn.Style = Plain
		btn.Confirm.Title, btn.Confirm.OK, btn.Confirm.Danger = "Roll back?", "Roll back", true
	}
	return Message{Text: text, Blocks: append(blocks, Buttons{Buttons: []Button{btn}})}
}

// buildDetails says what CI told about r, linked through the site's
// repository: its commit, branch, pull request and CI run; and compare,
// the link to what changed since the release from (its commit fromCommit)
// when there is one.
func buildDetails(site releases.Site, r releases.Release, from, fromCommit string) (head []Mrkdwn, compare Mrkdwn) {
	repo, _ := present.ParseRepo(site.RepoURL) // config checked it
	if r.Commit != "" {
		c := Md("`%s`", present.Short(r.Commit, 12))
		if u := repo.Commit(r.Commit); u != "" {
			c = Link(u, r.Commit[:7]) // a linked commit is hex: git's short form
		}
		head = append(head, "commit "+c)
	}
	if r.Branch != "" {
		head = append(head, Md("branch `%s`", present.Short(r.Branch, 60)))
	}
	if n := r.PullRequest; n != "" {
		pr := Md("PR #%s", n)
		if u := repo.PullRequest(n); u != "" {
			pr = Link(u, "PR #"+n)
		}
		head = append(head, pr)
	}
	if r.CIURL != "" {
		head = append(head, Link(r.CIURL, "CI run"))
	}
	if from != "" && from != r.Version {
		if u := repo.Compare(fromCommit, r.Commit); u != "" {
			compare = Link(u, "changes since "+from)
		}
	}
	return head, compare
}

// DeployLinks is the line a deploy's card shows under it: what CI told
// about the release going live, and what changed since the one it
// replaces ("" when nothing is known).
func DeployLinks(site releases.Site, to releases.Release, from *releases.Release) Mrkdwn {
	var fromVersion, fromCommit string
	if from != nil {
		fromVersion, fromCommit = from.Version, from.Commit
	}
	head, compare := buildDetails(site, to, fromVersion, fromCommit)
	if compare != "" {
		head = append(head, compare)
	}
	return joinMd(head, " · ")
}

// noticeDiff is the release notice's line about what changes against live.
func noticeDiff(d *releases.Diff) Mrkdwn {
	commits := Mrkdwn("")
	if d.Commits != nil {
		commits = Md("%d commit(s), ", *d.Commits)
	}
	if d.Empty() {
		return Md("Against live `%s`: %sthe same files.", d.From, commits)
	}
	var top []Mrkdwn
	for _, l := range [][]releases.DiffFile{d.Changed, d.Added, d.Removed} {
		for _, f := range l {
			if len(top) < 3 {
				top = append(top, Md("`%s`", present.Short(f.Path, 60)))
			}
		}
	}
	return Md("Against live `%s`: %s%d added, %d removed, %d changed (%s)", d.From, commits, len(d.Added), len(d.Removed), len(d.Changed), joinMd(top, ", "))
}
