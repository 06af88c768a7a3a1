package bot

import (
	"testing"
	"time"
)

// md escapes what it is given and leaves the bot's own markup alone.
func TestMd(t *testing.T) {
	got := Md("%s said %s: %d files, %.1fs, %s", Mention("UALICE"), "<!channel> & co", 3, 1.5, 2*time.Second)
	if want := Mrkdwn("<@UALICE> said &lt;!channel&gt; &amp; co: 3 files, 1.5s, 2s"); got != want {
		t.Fatalf("md: %q, want %q", got, want)
	}
	if p := got.Plain(); p != "<@UALICE> said <!channel> & co: 3 files, 1.5s, 2s" {
		t.Fatalf("plain: %q", p)
	}
	if l := Link("https://example.com/a?b=1&c=2", "<open>"); l != "<https://example.com/a?b=1&amp;c=2|&lt;open&gt;>" {
		t.Fatalf("link: %q", l)
	}
	if l := Link("javascript:alert(1)|x", "open"); l != "open" {
		t.Fatalf("a link that is not http(s): %q", l)
	}
}
