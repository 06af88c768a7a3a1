package bot

import (
	"context"

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
}

// AskMessage is the question with Confirm and Cancel buttons. The reason
// rides in the row's ID, so the confirmation needs no state in the bot;
// a chat that cuts the ID (Slack: 255 characters) cuts the reason.
func AskMessage(question Mrkdwn, then Command) Message {
	value := then.Site + "/" + then.Version
	return Message{Text: question, Blocks: []Block{section(question), Buttons{ID: "r:" + then.Reason, Buttons: []Button{
		{Action: ActionConfirm, Value: value, Label: "Confirm", Style: Danger},
		{Action: ActionCancel, Value: value, Label: "Cancel"},
	}}}}
}
