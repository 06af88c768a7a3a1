// Package bot is deploybot's chat side: it parses `/site ...` text into a
// command value, runs it through the same releases.Service as every other
// door, and renders the result for Slack (or, in `deploybot dev`, for a
// console).
package bot

import (
	"fmt"
	"slices"
	"strings"

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
	Reason       string
	DryRun       bool
	Error        string
}

// Commands, in the order help lists them.
var commandNames = []string{"promote", "rollback", "versions", "status", "history", "lock", "unlock", "prune", "pin", "unpin", "diff", "preview", "help"}

// Usage lines, for help and for argument errors.
var usage = map[string]string{
	"promote":  "promote [site] <version> [reason...]",
	"rollback": "rollback [site] [version] [reason...]",
	"versions": "versions [site]",
	"status":   "status [site]",
	"history":  "history [site]",
	"lock":     "lock [site] <reason...>",
	"unlock":   "unlock [site]",
	"prune":    "prune [site] [--dry-run]",
	"pin":      "pin [site] <version> [reason...]",
	"unpin":    "unpin [site] <version>",
	"diff":     "diff [site] <a> <b>",
	"preview":  "preview [site] <version>",
	"help":     "help",
}

// HelpText is the reply to `help`, for the configured slash command.
func HelpText(command string) Mrkdwn {
	lines := []Mrkdwn{md("Usage: `%s &lt;command&gt;`", command)}
	for _, name := range commandNames {
		lines = append(lines, md("• `%s %s`", command, usage[name]))
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
	if !slices.Contains(commandNames, name) {
		return Command{Action: Help, Name: "help", Error: fmt.Sprintf("unknown command %q", words[0])}
	}
	c := Command{Action: Run, Name: name}
	if name == "help" {
		c.Action = Help
		return c
	}
	bad := func(format string, a ...any) Command {
		return Command{Action: Reject, Name: name, Error: fmt.Sprintf(format, a...) + "\nUsage: `" + usage[name] + "`"}
	}
	// The site: the first word when it names one, else the only site.
	switch {
	case len(args) > 0 && slices.Contains(sites, args[0]):
		c.Site, args = args[0], args[1:]
	case len(sites) == 1:
		c.Site = sites[0]
	case len(sites) == 0:
		return bad("no sites are configured")
	default:
		which := "which site? (one of: " + strings.Join(sites, ", ") + ")"
		if len(args) > 0 && looksLikeSite(args[0]) && !looksLikeVersion(args[0]) {
			return bad("unknown site %q; %s", args[0], which)
		}
		return bad("%s", which)
	}
	version := func(v string) (string, *Command) {
		if err := releases.ValidateVersion(v); err != nil {
			cmd := bad("%s", releases.ErrorMessage(err))
			return "", &cmd
		}
		return v, nil
	}
	switch name {
	case "promote", "pin":
		if len(args) == 0 {
			return bad("a version is required")
		}
		v, e := version(args[0])
		if e != nil {
			return *e
		}
		c.Version, c.Reason = v, strings.Join(args[1:], " ")
	case "rollback":
		if len(args) > 0 && releases.ValidateVersion(args[0]) == nil {
			c.Version, c.MaybeVersion = args[0], true
		}
		c.Reason = strings.Join(args, " ")
		if c.Version != "" {
			c.Reason = strings.Join(args[1:], " ")
		}
	case "versions", "status", "history", "unlock":
		if len(args) > 0 {
			return bad("unexpected %q", strings.Join(args, " "))
		}
	case "lock":
		if len(args) == 0 {
			return bad("say why the site is locked")
		}
		c.Reason = strings.Join(args, " ")
	case "prune":
		for _, a := range args {
			if a != "--dry-run" && a != "dry-run" {
				return bad("unexpected %q", a)
			}
			c.DryRun = true
		}
	case "unpin", "preview":
		if len(args) != 1 {
			return bad("one version is required")
		}
		v, e := version(args[0])
		if e != nil {
			return *e
		}
		c.Version = v
	case "diff":
		if len(args) != 2 {
			return bad("two versions are required")
		}
		a, e := version(args[0])
		if e != nil {
			return *e
		}
		b, e := version(args[1])
		if e != nil {
			return *e
		}
		c.Version, c.Other = a, b
	}
	return c
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
