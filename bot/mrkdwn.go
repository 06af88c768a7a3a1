package bot

import (
	"fmt"
	"strings"
)

// Mrkdwn is text in Slack's markup that the bot wrote. Text from outside
// (commit messages, reasons, version and file names, actors, error texts)
// becomes Mrkdwn only through md, which escapes it; a plain string cannot
// be passed where Mrkdwn is wanted, so forgetting is a compile error.
//
// Slack asks for &, < and > to be escaped in every text it renders as
// mrkdwn, the text fallback included: < starts a mention (<!channel>,
// <@U...>) or a link (<https://...|label>)
// (https://api.slack.com/reference/surfaces/formatting#escaping).
type Mrkdwn string

// Md formats like fmt.Sprintf with a format the bot wrote, escaping every
// argument that is not already Mrkdwn: strings, errors, Stringers and
// anything else are escaped (use %s or %v for them); numbers and booleans,
// which cannot hold markup, go to fmt as they are.
func Md(format string, args ...any) Mrkdwn {
	safe := make([]any, len(args))
	for i, a := range args {
		switch v := a.(type) {
		case Mrkdwn:
			safe[i] = string(v)
		case string:
			safe[i] = escape(v)
		case error:
			safe[i] = escape(v.Error())
		case fmt.Stringer:
			safe[i] = escape(v.String())
		case int, int8, int16, int32, int64, uint, uint8, uint16, uint32, uint64, float32, float64, bool:
			safe[i] = v // for %d, %.1f: cannot hold markup
		default:
			safe[i] = escape(fmt.Sprint(v))
		}
	}
	return Mrkdwn(fmt.Sprintf(format, safe...))
}

// joinMd joins Mrkdwn pieces.
func joinMd(parts []Mrkdwn, sep string) Mrkdwn {
	s := make([]string, len(parts))
	for i, p := range parts {
		s[i] = string(p)
	}
	return Mrkdwn(strings.Join(s, sep))
}

// escape makes text from outside show as written: Slack's three
// characters become entities.
func escape(s string) string {
	return mrkdwnEscaper.Replace(s)
}

var (
	mrkdwnEscaper   = strings.NewReplacer("&", "&amp;", "<", "&lt;", ">", "&gt;")
	mrkdwnUnescaper = strings.NewReplacer("&amp;", "&", "&lt;", "<", "&gt;", ">")
)

// Plain is the text as a person reads it in Slack, for consoles: the
// entities back to their characters (the markup stays).
func (m Mrkdwn) Plain() string { return mrkdwnUnescaper.Replace(string(m)) }
