package bot

import (
	"fmt"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/deploybot/deploybot/internal/present"
	"github.com/deploybot/deploybot/releases"
)

func age(t time.Time, now time.Time) string {
	d := now.Sub(t)
	switch {
	case d < time.Minute:
		return "just now"
	case d < time.Hour:
		return fmt.Sprintf("%dm ago", int(d.Minutes()))
	case d < 48*time.Hour:
		return fmt.Sprintf("%dh ago", int(d.Hours()))
	}
	return fmt.Sprintf("%dd ago", int(d.Hours()/24))
}

// VersionsShown is how many releases `versions` lists.
const VersionsShown = 15

// VersionsMessage is the `versions` table: the newest releases with the
// live one marked and who last deployed each.
func VersionsMessage(site releases.Site, vs []releases.VersionInfo, deploys []releases.Deploy, now time.Time) Message {
	if len(vs) == 0 {
		t := Md("*%s* has no releases yet. CI publishes them with `deploybot publish`.", site.Name)
		return textMessage(t)
	}
	lastBy := map[string]string{}
	for _, d := range deploys { // newest first: keep the first seen
		if d.Phase == releases.PhaseDone {
			if _, ok := lastBy[d.To]; !ok {
				lastBy[d.To] = d.Actor
			}
		}
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "  VERSION\tCOMMIT\tAGE\tSIZE\tDEPLOYED BY")
	shown := vs
	if len(shown) > VersionsShown {
		shown = shown[:VersionsShown]
	}
	// Pins with their reasons, under the table: ten at most, so the
	// context block stays within Slack's 3,000 characters per text.
	var pins []Mrkdwn
	morePins := 0
	for _, v := range vs {
		if p := v.Pin; p != nil {
			if len(pins) == 10 {
				morePins++
				continue
			}
			pins = append(pins, Md("`%s` pinned by %s: %s", present.Short(v.Version, 24), Mention(p.By), present.Short(orDash(p.Reason), 200)))
		}
	}
	if morePins > 0 {
		pins = append(pins, Md("and %d more pinned", morePins))
	}
	for _, v := range shown {
		mark := " "
		switch {
		case v.Live:
			mark = "▶"
		case v.Pruned:
			mark = "✗"
		case v.Pin != nil:
			mark = "◆"
		}
		fmt.Fprintf(tw, "%s %s\t%s\t%s\t%s\t%s\n", mark, present.Short(v.Version, 24), present.Short(v.Commit, 8), age(v.PublishedAt, now), present.HumanBytes(v.Bytes), present.Short(lastBy[v.Version], 20))
	}
	tw.Flush()
	table := b.String()
	title := Md("*%s*: %d release(s), ▶ is live, ✗ pruned, ◆ pinned", site.Name, len(vs))
	blocks := []Block{section(title), section(Md("```\n%s```", table))}
	text := Md("%s\n%s", title, table)
	if rest := len(vs) - len(shown); rest > 0 {
		more := Md("and %d older release(s) not shown", rest)
		blocks = append(blocks, note(more))
		text += more + "\n"
	}
	if len(pins) > 0 {
		// A context block holds ten elements at most; the pins share one.
		list := ":pushpin: " + joinMd(pins, "\n:pushpin: ")
		blocks = append(blocks, note(list))
		text += list + "\n"
	}
	return Message{Text: text, Blocks: blocks}
}

// HistoryShown is how many audit records `history` shows in chat.
const HistoryShown = 20

// HistoryMessage is the `history` answer: the newest audit records, who
// did what through which door, and how it ended.
func HistoryMessage(site releases.Site, h []releases.AuditEntry) Message {
	if len(h) == 0 {
		t := Md("*%s* has no history yet.", site.Name)
		return textMessage(t)
	}
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "WHEN (UTC)\tDOOR\tWHO\tWHAT\tRESULT\tDETAIL")
	for _, e := range h {
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\t%s\n", e.Time.UTC().Format("01-02 15:04"), orDash(e.Door), present.Short(e.Actor, 20),
			e.Action, e.Result, present.Short(e.Detail, 60))
	}
	tw.Flush()
	title := Md("*%s*: the last %d operation(s), newest first", site.Name, len(h))
	return Message{Text: Md("%s\n%s", title, b.String()), Blocks: []Block{section(title), section(Md("```\n%s```", b.String()))}}
}

// StatusMessage is the `status` answer.
func StatusMessage(st *releases.Status, now time.Time) Message {
	var lines []Mrkdwn
	switch {
	case st.Live != nil && st.LiveSince != nil:
		by := Mrkdwn("")
		if st.LastDeploy != nil && st.LastDeploy.Phase == releases.PhaseDone && st.LastDeploy.To == *st.Live {
			by = " by " + Mention(st.LastDeploy.Actor)
		}
		lines = append(lines, Md("*Live:* `%s` since %s (%s)%s", *st.Live, st.LiveSince.UTC().Format("2006-01-02 15:04Z"), age(*st.LiveSince, now), by))
	case st.Live != nil:
		lines = append(lines, Md("*Live:* `%s`", *st.Live))
	default:
		lines = append(lines, Md("*Live:* none (%s is not a release of this site)", present.ServedFrom(st)))
	}
	if st.Drift {
		lines = append(lines, Md(":warning: the store says `%s` is live, the distribution serves `%s` (changed outside deploybot?)", st.Recorded, st.OriginPath))
	}
	if d := st.Deploy; d != nil {
		line := Md("*Deploy in progress:* %s `%s` → `%s` by %s, phase `%s`", string(d.Kind), present.OrNone(d.From), d.To, Mention(d.Actor), string(d.Phase))
		if thread := st.Links["slack"]; thread != "" {
			line += " (" + Link(thread, "thread") + ")"
		}
		lines = append(lines, line)
	}
	if l := st.Lock; l != nil && l.DeployID == "" {
		lines = append(lines, Md(":lock: *Locked* by %s since %s: %s", Mention(l.Holder), l.Since.UTC().Format("2006-01-02 15:04Z"), l.Reason))
	}
	if f := st.Freeze; f != nil {
		lines = append(lines, Md(":snowflake: *Frozen*: %s (rollbacks are allowed)", present.FreezeText(f)))
	}
	if w := st.Window; w != nil {
		icon := Mrkdwn(":large_green_circle:")
		if !w.Open {
			icon = ":red_circle:"
		}
		lines = append(lines, Md("%s *Deploy window*: %s", icon, present.WindowText(w)))
	}
	title := Md("*%s* status", st.Site)
	body := joinMd(lines, "\n")
	return Message{Text: title + "\n" + body, Blocks: []Block{section(title + "\n" + body)}}
}

// phaseText says what a phase is doing, for people.
var phaseText = map[releases.Phase]string{
	"update":          "updating the distribution",
	"propagate":       "waiting for CloudFront to deploy",
	"invalidate":      "invalidating the cache",
	"invalidate-wait": "waiting for the invalidation",
	"visible":         "waiting until visitors get the release",
}

func PhaseName(p releases.Phase, title string) string {
	if t, ok := phaseText[p]; ok {
		return t
	}
	if title != "" {
		return strings.ToLower(title[:1]) + title[1:]
	}
	return string(p)
}

// CardState is what the status card shows.
type CardState struct {
	Deploy  releases.Deploy
	Phase   string // what it does now, for people
	Elapsed time.Duration
	Result  string // "", "done", "failed", "interrupted"
	Error   string
	// Note is what the running phase last said it waits for (the
	// visible phase's tally), "" none.
	Note string
	// Links are DeployLinks of the deploy ("" none).
	Links Mrkdwn
}

// Card renders the status card of a deploy.
func Card(c CardState) Message {
	d := c.Deploy
	icon := ":hourglass_flowing_sand:"
	state := c.Phase
	switch c.Result {
	case "done":
		icon, state = ":white_check_mark:", "live"
		if v := present.VisibleText(d); v != "" {
			state += "; " + v
		}
	case "failed":
		icon, state = ":x:", "failed: "+c.Error
	case "interrupted":
		icon, state = ":double_vertical_bar:", "interrupted by a restart; resumes when deploybot is back"
	}
	verb := "Promote"
	if d.Kind == releases.KindRollback {
		verb = "Rollback"
	}
	title := Md("%s *%s %s*: `%s` → `%s`", Mrkdwn(icon), verb, d.Site, present.OrNone(d.From), d.To)
	if c.Note != "" && c.Result == "" {
		state += "\n" + present.Short(c.Note, 200)
	}
	fields := []Mrkdwn{
		"*By*\n" + Mention(d.Actor),
		Md("*Reason*\n%s", orDash(d.Reason)),
		Md("*Phase*\n%s", state),
		Md("*Elapsed*\n%s", c.Elapsed.Round(time.Second)),
	}
	blocks := []Block{
		section(title),
		Section{Fields: fields},
		note(Md("deploy `%s`", d.ID)),
	}
	if c.Links != "" {
		blocks[2] = note(Md("deploy `%s` · ", d.ID) + c.Links)
	}
	if ro := d.Rollout; ro != nil && c.Result == "" {
		blocks = append(blocks, note(ShareBar(*ro, d.To)))
	}
	if len(d.ApprovedBy) > 0 {
		var who []Mrkdwn
		for _, a := range d.ApprovedBy {
			who = append(who, Mention(a))
		}
		blocks = append(blocks, note("approved by "+joinMd(who, ", ")))
	}
	text := Md("%s %s: %s -> %s by %s: %s (%s)", verb, d.Site, present.OrNone(d.From), d.To, Mention(d.Actor), state, c.Elapsed.Round(time.Second))
	return Message{Text: text, Blocks: blocks}
}

// ShareBar shows a rollout's share of visitors on the candidate, and its
// steps: "▰▰▰▱▱▱▱▱▱▱ 30% of visitors on `v2` · steps 1% → 10% → 30% → all".
func ShareBar(ro releases.Rollout, to string) Mrkdwn {
	const width = 10
	full := (ro.Percent*width + 50) / 100
	if ro.Percent > 0 && full == 0 {
		full = 1
	}
	bar := strings.Repeat("▰", full) + strings.Repeat("▱", width-full)
	var steps []string
	for _, p := range ro.Steps {
		steps = append(steps, fmt.Sprintf("%d%%", p))
	}
	out := Md("%s %d%% of visitors on `%s` · steps %s → all", Mrkdwn(bar), ro.Percent, to, strings.Join(steps, " → "))
	if c := ro.Control; c.Paused {
		out += Md(" · paused by %s", Mention(c.PausedBy))
	}
	return out
}

func orDash(s string) string {
	if s == "" {
		return "—"
	}
	return s
}

// LiveMessage is the last thread reply of a finished deploy, with a
// Rollback button back to what was live before. The button's value names
// the deploy too (site/from/deploy): a click once another deploy has moved
// the site is refused rather than acting on a site that moved on.
func LiveMessage(d releases.Deploy, elapsed time.Duration) Message {
	text := Md(":white_check_mark: `%s` is live on *%s* (%s in all).", d.To, d.Site, elapsed.Round(time.Second))
	if v := present.VisibleText(d); v != "" {
		text = Md(":white_check_mark: `%s` is live on *%s* (%s in all): %s.", d.To, d.Site, elapsed.Round(time.Second), v)
	}
	blocks := []Block{section(text)}
	// A rollback's From is newer than its To: going there again is a
	// promote, not a rollback, so its reply offers no button.
	if d.From != "" && d.Kind != releases.KindRollback && releases.SafeID(d.ID) {
		blocks = append(blocks, Buttons{Buttons: []Button{{Action: ActionRollback, Value: d.Site + "/" + d.From + "/" + d.ID, Label: "Roll back to " + d.From,
			Confirm: &Confirm{Title: "Roll back?", Text: fmt.Sprintf("Make %s live on %s again?", d.From, d.Site), OK: "Roll back", Cancel: "Cancel", Danger: true}}}})
	}
	return Message{Text: text, Blocks: blocks}
}

// SupersededMessage replaces the live reply of a deploy once another
// deploy has moved the site on: its Rollback button would no longer mean
// what it says, so it goes.
func SupersededMessage(d releases.Deploy, now string) Message {
	text := Md(":white_check_mark: `%s` was live on *%s* from this deploy; `%s` is live now, so this thread's Rollback button is gone (`rollback` still goes back from what is live).",
		d.To, d.Site, now)
	return Message{Text: text, Blocks: []Block{section(text)}}
}

// ThreadLine is the thread reply for one deploy event ("" for none).
func ThreadLine(e releases.Event) Mrkdwn {
	switch e.Type {
	case releases.EventDeployStarted:
		d := e.Deploy
		line := Md("%s %s → %s started by %s (deploy `%s`)", string(d.Kind), present.OrNone(d.From), d.To, Mention(d.Actor), d.ID)
		if d.Actor == releases.AutoActor && d.Reason != "" {
			// deploybot's own deploys say why they run.
			line = Md(":rotating_light: %s: %s", line, d.Reason)
		}
		return line
	case releases.EventDeployResumed:
		return Md(":arrows_counterclockwise: resuming from phase `%s`: the process that ran it stopped (a restart, or a replica gone)", string(e.Phase))
	case releases.EventPhaseStarted:
		return Md("▸ %s…", PhaseName(e.Phase, e.Title))
	case releases.EventPhaseFinished:
		if v := present.VisibleText(e.Deploy); e.Phase == releases.PhaseVisible && v != "" {
			return Md(":eyes: %s (watched %s)", v, e.Elapsed.Round(100*time.Millisecond))
		}
		return Md("✓ %s: done after %s", PhaseName(e.Phase, e.Title), e.Elapsed.Round(100*time.Millisecond))
	case releases.EventPhaseFailed:
		return Md(":x: %s failed after %s: %s", PhaseName(e.Phase, e.Title), e.Elapsed.Round(100*time.Millisecond), ErrorMessage(e.Err))
	case releases.EventPhaseNote:
		return Md(":hourglass_flowing_sand: %s", e.Title)
	case releases.EventDeployFailed:
		return Md(":x: %s", ErrorMessage(e.Err))
	case releases.EventDeployInterrupted:
		return Md(":double_vertical_bar: deploybot is restarting; the deploy stopped in phase `%s` and resumes when it is back", string(e.Phase))
	}
	return ""
}

// PruneMessage summarises a retention run: what went, objects and bytes,
// what was kept and why.
func PruneMessage(rep *releases.PruneReport, err error) Message {
	var b []Mrkdwn
	switch {
	case rep.Skipped != "":
		t := Md(":broom: Prune of *%s* skipped: %s", rep.Site, rep.Skipped)
		return textMessage(t)
	case rep.DryRun:
		b = append(b, Md(":broom: Prune of *%s* (dry run) would delete %d release(s), %d objects, %s", rep.Site, len(rep.Deleted), rep.Objects, present.HumanBytes(rep.Bytes)))
	default:
		b = append(b, Md(":broom: Pruned *%s*: %d release(s), %d objects, %s freed in %.1fs (by %s)", rep.Site, len(rep.Deleted)-rep.Failures, rep.Objects, present.HumanBytes(rep.Bytes), rep.Seconds, Mention(rep.Actor)))
	}
	if err != nil {
		b = append(b, Md(":warning: %s", ErrorMessage(err)))
	}
	var del []Mrkdwn
	for _, d := range rep.Deleted {
		item := Md("`%s`", d.Version)
		if d.Abandoned {
			item += " (abandoned upload)"
		}
		if d.Error != "" {
			item += Md(" (failed: %s)", present.Short(d.Error, 80))
		}
		del = append(del, item)
	}
	if len(del) > 0 {
		b = append(b, "*Deleted:* "+listMd(del, pruneListed))
	}
	byReason := map[string][]Mrkdwn{}
	var reasons []string
	for _, k := range rep.Kept {
		if _, ok := byReason[k.Reason]; !ok {
			reasons = append(reasons, k.Reason)
		}
		byReason[k.Reason] = append(byReason[k.Reason], Md("`%s`", k.Version))
	}
	for _, r := range reasons {
		b = append(b, Md("*Kept, %s:* %s", present.Short(r, 200), listMd(byReason[r], pruneListed)))
	}
	t := joinMd(b, "\n")
	return textMessage(t)
}

// pruneListed is how many releases a prune summary names per list; the
// rest are counted, so the summary stays within one section's 3,000
// characters.
const pruneListed = 20

// listMd joins the first n items with commas and counts the rest.
func listMd(items []Mrkdwn, n int) Mrkdwn {
	if len(items) <= n {
		return joinMd(items, ", ")
	}
	return joinMd(items[:n], ", ") + Md(" (%d more)", len(items)-n)
}

// diffTop is how many paths of each kind a Slack diff names.
const diffTop = 5

// DiffMessage is the compact Slack reply to `diff`: the summary and the
// largest few paths of each kind.
func DiffMessage(d *releases.Diff) Message {
	if d.Empty() {
		t := Md(":mag: *%s* `%s` → `%s`: the same %d files.", d.Site, d.From, d.To, d.Unchanged)
		return textMessage(t)
	}
	lines := []Mrkdwn{Md(":mag: *%s* `%s` → `%s`: %s", d.Site, d.From, d.To, present.DiffCounts(d))}
	list := func(mark string, fs []diffLine) {
		for i, f := range fs {
			if i == diffTop {
				lines = append(lines, Md("%s … and %d more", mark, len(fs)-diffTop))
				break
			}
			lines = append(lines, Md("%s `%s` %s", mark, present.Short(f.Path, 80), f.Note))
		}
	}
	list("+", viewFiles(d.Added, false))
	list("−", viewFiles(d.Removed, false))
	list("~", viewFiles(d.Changed, true))
	t := joinMd(lines, "\n")
	return textMessage(t)
}

// diffLine is a diff entry as shown.
type diffLine struct{ Path, Note string }

func viewFiles(fs []releases.DiffFile, changed bool) []diffLine {
	out := make([]diffLine, len(fs))
	for i, f := range fs {
		note := "(" + present.HumanBytes(f.Size) + ")"
		if changed {
			note = "(" + present.HumanBytes(f.OldSize) + " → " + present.HumanBytes(f.Size) + ")"
		}
		out[i] = diffLine{Path: f.Path, Note: note}
	}
	return out
}

// Link is a link the bot makes, <url|label>, for URLs it got from Slack or
// built itself; a URL that is not plain http(s) without spaces, <, > or |
// is left out, showing the label alone.
func Link(url, label string) Mrkdwn {
	if !(strings.HasPrefix(url, "https://") || strings.HasPrefix(url, "http://")) || strings.ContainsAny(url, "<>| \t\n") {
		return Md("%s", label)
	}
	return Md("<%s|%s>", Mrkdwn(strings.ReplaceAll(url, "&", "&amp;")), label)
}
