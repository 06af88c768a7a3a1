// Package present says domain values in words for people: the CLI's
// lines and the chat's messages take the same words from here, so a size,
// a diff or where a site is served from reads the same at a terminal and
// in Slack. It writes plain text; escaping for a chat's markup is the
// chat's job.
package present

import (
	"fmt"
	"strings"
	"time"

	"github.com/deploybot/deploybot/releases"
)

// HumanBytes renders a size for people: 812 B, 14.5 MiB.
func HumanBytes(n int64) string {
	const unit = 1024
	if n < unit {
		return fmt.Sprintf("%d B", n)
	}
	div, exp := int64(unit), 0
	for m := n / unit; m >= unit; m /= unit {
		div *= unit
		exp++
	}
	return fmt.Sprintf("%.1f %ciB", float64(n)/float64(div), "KMGTPE"[exp])
}

// SignedBytes is a change in size: +1.1 KiB, −3.0 KiB, ±0 B.
func SignedBytes(n int64) string {
	switch {
	case n > 0:
		return "+" + HumanBytes(n)
	case n < 0:
		return "−" + HumanBytes(-n)
	}
	return "±0 B"
}

// Short cuts s to n runes on one line, marking the cut.
func Short(s string, n int) string {
	s = strings.ReplaceAll(s, "\n", " ")
	if r := []rune(s); len(r) > n {
		return string(r[:n-1]) + "…"
	}
	return s
}

// OrNone renders an empty version as "(none)".
func OrNone(v string) string {
	if v == "" {
		return "(none)"
	}
	return v
}

// DiffSummary is one line: "www v1 → v2: 2 added (+1.1 KiB), ...".
func DiffSummary(d *releases.Diff) string {
	commits := ""
	if d.Commits != nil {
		commits = fmt.Sprintf("%d commit(s), ", *d.Commits)
	}
	if d.Empty() {
		return fmt.Sprintf("%s %s → %s: %sthe same files (%d)", d.Site, d.From, d.To, commits, d.Unchanged)
	}
	return fmt.Sprintf("%s %s → %s: %s%s", d.Site, d.From, d.To, commits, DiffCounts(d))
}

// DiffCounts is "2 added (+1.1 KiB), 1 removed (−3 KiB), 1 changed (+50 B), 9 unchanged".
func DiffCounts(d *releases.Diff) string {
	return fmt.Sprintf("%d added (+%s), %d removed (−%s), %d changed (%s), %d unchanged",
		len(d.Added), HumanBytes(d.BytesAdded), len(d.Removed), HumanBytes(d.BytesRemoved),
		len(d.Changed), SignedBytes(d.BytesChanged), d.Unchanged)
}

// ServedFrom says what the CDN points at, in its strategy's terms.
func ServedFrom(st *releases.Status) string {
	if st.Strategy == releases.StrategyKVS {
		return fmt.Sprintf("key %s = %q (strategy kvs)", st.Site, st.OriginPath)
	}
	return fmt.Sprintf("origin path %q", st.OriginPath)
}

// FreezeText says who froze a site, until when and why.
func FreezeText(f *releases.Freeze) string {
	by := f.By
	if by == releases.ConfigFreeze {
		by = "the configuration"
	}
	return fmt.Sprintf("frozen by %s until %s: %s", by, f.Until.UTC().Format("2006-01-02 15:04Z"), f.Reason)
}

// WindowText says whether a site's deploy windows allow promotes now, and
// until or from when, in the window's zone.
func WindowText(w *releases.WindowState) string {
	switch {
	case w.Open:
		return fmt.Sprintf("open until %s", releases.WindowTime(*w.Closes, w.TimeZone))
	case w.NextOpen != nil:
		return fmt.Sprintf("closed; the next (%s) opens %s", w.Window, releases.WindowTime(*w.NextOpen, w.TimeZone))
	}
	return "closed, and none opens again"
}

// VisibleText says when visitors began to get a deploy's release, as the
// visible phase saw it: "visitors get v42 since 12:03:05 UTC, 1.2s after
// the flip"; "" when it was not watched.
func VisibleText(d releases.Deploy) string {
	if d.VisibleAt.IsZero() {
		return ""
	}
	t := fmt.Sprintf("visitors get %s since %s", d.To, d.VisibleAt.UTC().Format("15:04:05 UTC"))
	if !d.FlippedAt.IsZero() {
		t += fmt.Sprintf(", %s after the flip", max(0, d.VisibleAt.Sub(d.FlippedAt)).Round(100*time.Millisecond))
	}
	return t
}
