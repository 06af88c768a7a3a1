package slackbot

import (
	"testing"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/slackfake"
)

func TestCommandTextDecodesSlacksThreeEntitiesOnce(t *testing.T) {
	for in, want := range map[string]string{
		"promote v1 R&amp;D fix":         "promote v1 R&D fix",
		"lock &lt;b&gt; &amp;&amp;":      "lock <b> &&",
		"lock &amp;lt;not a tag&amp;gt;": "lock &lt;not a tag&gt;", // typed as entities: decoded once
		"lock &amp;amp;":                 "lock &amp;",
		"lock &quot;x&quot; &#39;y&#39;": "lock &quot;x&quot; &#39;y&#39;", // not Slack's: left alone
		"lock &lt;!channel&gt;":          "lock <!channel>",
	} {
		if got := commandText(in); got != want {
			t.Errorf("commandText(%q) = %q, want %q", in, got, want)
		}
	}
}

// Whatever a person types comes back whole: Slack's encoding decoded,
// and the bot's own escaping (bot.Md) too.
func FuzzCommandText(f *testing.F) {
	for _, s := range []string{"R&D fix", "&amp;", "<!channel> & <@U1>", "&lt;", "a &&& <<>> b", "&amp;lt;"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if got := commandText(slackfake.EncodeText(s)); got != s {
			t.Fatalf("typed %q, read %q", s, got)
		}
		if got := commandText(string(bot.Md("%s", s))); got != s {
			t.Fatalf("escaped %q, read back %q", s, got)
		}
	})
}
