// Package bot is deploybot's chat door: it parses `/site ...` text into a
// command value, runs it from one command table through the same
// releases.Service as every other door, and says what each answer,
// card and notice holds (Message, in escaped Mrkdwn). It imports no Slack
// package: the Slack adapter (bot/slackbot) encodes the messages as Block
// Kit, and `deploybot dev`'s console prints their text.
package bot

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
	"unicode/utf8"

	"github.com/deploybot/deploybot/releases"
)

// Action says what to do with a parsed line.
type Action int

const (
	// Run the command.
	Run Action = iota
	// Help: reply with the help text (Error, when set, says why).
	Help
	// Reject: reply with Error alone.
	Reject
	// Ignore: the text is not for this bot.
	Ignore
	// Cancel: the person said no to a confirmation; nothing runs.
	Cancel
)

// Command is a parsed line.
type Command struct {
	Action Action
	Name   string // promote, rollback, versions, status, history, lock, unlock, prune, pin, unpin, diff, preview, help
	Site   string
	// Version is the release named; for rollback it may instead be the
	// first word of the reason, which the runner decides (MaybeVersion).
	Version      string
	MaybeVersion bool
	Other        string // diff's second version
	// From is the live release a confirm question was asked against
	// (a Confirm click carries it), "" otherwise.
	From   string
	Reason string
	DryRun bool
	// All: freeze or unfreeze every site (Site is "all").
	All bool
	// Until is when a freeze ends, as typed (a duration or a time).
	Until string
	// Override is why a promote goes ahead in a freeze or outside the
	// deploy windows (--override-freeze).
	Override string
	// Gradual: promote as a rolling release (--gradual).
	Gradual bool
	// RolloutAction is rollout's pause, resume, advance or abort.
	RolloutAction string
	Error         string
}

// CommandNames are the commands, in the order help lists them.
func CommandNames() []string {
	names := make([]string, len(commandTable))
	for i, c := range commandTable {
		names[i] = c.name
	}
	return names
}

// HelpText is the reply to `help`, for the configured slash command.
func HelpText(command string) Mrkdwn {
	lines := []Mrkdwn{Md("Usage: `%s &lt;command&gt;`", command)}
	for _, c := range commandTable {
		lines = append(lines, Md("• `%s %s`", command, c.usage))
	}
	lines = append(lines, "The site may be left out when only one is configured.")
	return joinMd(lines, "\n")
}

// Parse reads the text of a slash command. sites are the configured site
// names; with exactly one, the site may be left out.
func Parse(text string, sites []string) Command {
	words, err := split(text)
	if err != nil {
		return Command{Action: Reject, Error: err.Error()}
	}
	if len(words) == 0 {
		return Command{Action: Help, Name: "help"}
	}
	name := strings.ToLower(words[0])
	args := words[1:]
	spec, ok := lookup(name)
	if !ok {
		return Command{Action: Help, Name: "help", Error: "unknown command " + quoted(words[0])}
	}
	c := Command{Action: Run, Name: name}
	if name == "help" {
		c.Action = Help
		return c
	}
	bad := func(format string, a ...any) Command {
		return Command{Action: Reject, Name: name, Error: fmt.Sprintf(format, a...) + "\nUsage: `" + spec.usage + "`"}
	}
	// The site: the first word when it names one (or every one, for a
	// command that takes "all"), else the only site.
	switch {
	case spec.allSites && len(args) > 0 && strings.EqualFold(args[0], AllSites):
		c.Site, c.All, args = AllSites, true, args[1:]
	case len(args) > 0 && slices.Contains(sites, args[0]):
		c.Site, args = args[0], args[1:]
	case len(sites) == 1:
		c.Site = sites[0]
	case len(sites) == 0:
		return bad("no sites are configured")
	default:
		which := "which site? (one of: " + strings.Join(sites, ", ") + ")"
		if len(args) > 0 && looksLikeSite(args[0]) && !looksLikeVersion(args[0]) {
			return bad("unknown site %s; %s", quoted(args[0]), which)
		}
		return bad("%s", which)
	}
	if err := spec.args(&c, args); err != nil {
		return bad("%s", err.Error())
	}
	return c
}

// maxQuoted is how much of what a person typed an answer quotes back:
// a parse error that echoes the input says what it could not read, not
// the whole of a 4,000-character paste. In Slack the answer rides in the
// socket-mode acknowledgement, which must stay small.
const maxQuoted = 200

// quoted is s in quotes as an error shows it (%q): at most maxQuoted
// characters, the input cut with an ellipsis to fit and then saying how
// long it was.
func quoted(s string) string {
	if c := clip(s); c != s {
		return fmt.Sprintf("%q (%d characters)", c, utf8.RuneCountInString(s))
	}
	return fmt.Sprintf("%q", s)
}

// clip is s cut with an ellipsis so that it quotes (%q) in at most
// maxQuoted characters, escapes included; s itself when it does. It is
// also for checks of other packages whose errors quote what they were
// given: a clipped word is refused as the whole one would be (the
// ellipsis is in no version).
func clip(s string) string {
	if utf8.RuneCountInString(strconv.Quote(s)) <= maxQuoted {
		return s
	}
	n := 2 + 1 // the quotes and the ellipsis
	for i := 0; i < len(s); {
		_, size := utf8.DecodeRuneInString(s[i:])
		// Quoted on its own, as %q quotes it in s (a byte that is no
		// UTF-8 too).
		n += utf8.RuneCountInString(strconv.Quote(s[i:i+size])) - 2
		if n > maxQuoted {
			return s[:i] + "…"
		}
		i += size
	}
	return s
}

func looksLikeSite(w string) bool { return siteRE(w) }

func siteRE(w string) bool {
	if w == "" || len(w) > 63 {
		return false
	}
	for _, r := range w {
		if !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '-' || r == '_') {
			return false
		}
	}
	return true
}

// looksLikeVersion: words like v42, 1.2.3 or 2026-11-28 read as versions.
func looksLikeVersion(w string) bool {
	if releases.ValidateVersion(w) != nil {
		return false
	}
	return strings.ContainsAny(w, "0123456789")
}

// split cuts text into words, keeping "quoted words" (straight or curly
// quotes, as Slack clients type them) together.
func split(text string) ([]string, error) {
	var words []string
	var cur strings.Builder
	inWord := false
	var closing rune
	for _, r := range text {
		switch {
		case closing != 0:
			if r == closing {
				closing = 0
				continue
			}
			cur.WriteRune(r)
		case r == '"' || r == '\'' || r == '“' || r == '‘':
			closing = map[rune]rune{'"': '"', '\'': '\'', '“': '”', '‘': '’'}[r]
			inWord = true
		case r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u00a0':
			if inWord {
				words = append(words, cur.String())
				cur.Reset()
				inWord = false
			}
		default:
			cur.WriteRune(r)
			inWord = true
		}
	}
	if closing != 0 {
		return nil, fmt.Errorf("unclosed quote: add a closing %c", closing)
	}
	if inWord {
		words = append(words, cur.String())
	}
	return words, nil
}
