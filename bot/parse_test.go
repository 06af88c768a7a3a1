package bot

import (
	"reflect"
	"strings"
	"testing"

	"github.com/deploybot/deploybot/releases"
)

func TestParse(t *testing.T) {
	one := []string{"www"}
	two := []string{"www", "docs"}
	cases := []struct {
		name  string
		text  string
		sites []string
		want  Command
		err   string // substring of Error, for Help/Reject
	}{
		{"empty", "", one, Command{Action: Help, Name: "help"}, ""},
		{"help", "help", two, Command{Action: Help, Name: "help"}, ""},
		{"unknown", "deploy v1", one, Command{Action: Help, Name: "help"}, "unknown command"},
		{"promote, site implied", "promote v42", one, Command{Action: Run, Name: "promote", Site: "www", Version: "v42"}, ""},
		{"promote, site given", "promote www v42 fix checkout", one, Command{Action: Run, Name: "promote", Site: "www", Version: "v42", Reason: "fix checkout"}, ""},
		{"promote, two sites", "promote docs v1", two, Command{Action: Run, Name: "promote", Site: "docs", Version: "v1"}, ""},
		{"promote, two sites, none named", "promote v1", two, Command{}, "which site"},
		{"promote, unknown site", "promote blog v1", two, Command{}, `unknown site "blog"`},
		{"promote, no version", "promote", one, Command{}, "version is required"},
		{"promote, site only", "promote www", one, Command{}, "version is required"},
		{"promote, malformed version", "promote ../etc", one, Command{}, "invalid version"},
		{"promote, quoted reason", `promote v1 "hot fix" now`, one, Command{Action: Run, Name: "promote", Site: "www", Version: "v1", Reason: "hot fix now"}, ""},
		{"promote, curly quotes", "promote v1 “hot fix”", one, Command{Action: Run, Name: "promote", Site: "www", Version: "v1", Reason: "hot fix"}, ""},
		{"unclosed quote", `promote v1 "oops`, one, Command{}, "unclosed quote"},
		{"upper-case command", "PROMOTE v1", one, Command{Action: Run, Name: "promote", Site: "www", Version: "v1"}, ""},
		{"extra spaces", "  promote   v1  ", one, Command{Action: Run, Name: "promote", Site: "www", Version: "v1"}, ""},
		{"rollback bare", "rollback", one, Command{Action: Run, Name: "rollback", Site: "www"}, ""},
		{"rollback version", "rollback v3", one, Command{Action: Run, Name: "rollback", Site: "www", Version: "v3", MaybeVersion: true}, ""},
		{"rollback reason", "rollback www broke checkout!", one, Command{Action: Run, Name: "rollback", Site: "www", Version: "broke", MaybeVersion: true, Reason: "checkout!"}, ""},
		{"rollback reason with punctuation first", "rollback “it broke”", one, Command{Action: Run, Name: "rollback", Site: "www", Reason: "it broke"}, ""},
		{"versions", "versions", one, Command{Action: Run, Name: "versions", Site: "www"}, ""},
		{"versions site", "versions docs", two, Command{Action: Run, Name: "versions", Site: "docs"}, ""},
		{"versions extra", "versions www now", one, Command{}, "unexpected"},
		{"status", "status", one, Command{Action: Run, Name: "status", Site: "www"}, ""},
		{"lock", "lock freeze for launch", one, Command{Action: Run, Name: "lock", Site: "www", Reason: "freeze for launch"}, ""},
		{"lock, no reason", "lock www", one, Command{}, "say why"},
		{"unlock", "unlock www", one, Command{Action: Run, Name: "unlock", Site: "www"}, ""},
		{"prune", "prune", one, Command{Action: Run, Name: "prune", Site: "www"}, ""},
		{"prune dry", "prune www --dry-run", one, Command{Action: Run, Name: "prune", Site: "www", DryRun: true}, ""},
		{"prune junk", "prune --force", one, Command{}, "unexpected"},
		{"pin", "pin v1 keep for audit", one, Command{Action: Run, Name: "pin", Site: "www", Version: "v1", Reason: "keep for audit"}, ""},
		{"unpin", "unpin v1", one, Command{Action: Run, Name: "unpin", Site: "www", Version: "v1"}, ""},
		{"unpin extra", "unpin v1 v2", one, Command{}, "one version"},
		{"diff", "diff v1 v2", one, Command{Action: Run, Name: "diff", Site: "www", Version: "v1", Other: "v2"}, ""},
		{"diff one", "diff v1", one, Command{}, "two versions"},
		{"diff bad", "diff v1 /x", one, Command{}, "invalid version"},
		{"preview", "preview docs v9", two, Command{Action: Run, Name: "preview", Site: "docs", Version: "v9"}, ""},
		{"promote, override", "promote v9 hotfix --override-freeze CTO said yes", one,
			Command{Action: Run, Name: "promote", Site: "www", Version: "v9", Reason: "hotfix", Override: "CTO said yes"}, ""},
		{"promote, override as Slack dashes it", "promote v9 —override-freeze outage fix", one,
			Command{Action: Run, Name: "promote", Site: "www", Version: "v9", Override: "outage fix"}, ""},
		{"promote, override without why", "promote v9 --override-freeze", one, Command{}, "say why after --override-freeze"},
		{"promote gradual", "promote docs v9 --gradual new nav", two, Command{Action: Run, Name: "promote", Site: "docs", Version: "v9", Reason: "new nav", Gradual: true}, ""},
		{"promote gradual as Slack dashes it, with override", "promote v9 —gradual --override-freeze launch", one,
			Command{Action: Run, Name: "promote", Site: "www", Version: "v9", Gradual: true, Override: "launch"}, ""},
		{"rollout pause", "rollout docs pause checking errors", two, Command{Action: Run, Name: "rollout", Site: "docs", RolloutAction: "pause", Reason: "checking errors"}, ""},
		{"rollout abort", "rollout ABORT", one, Command{Action: Run, Name: "rollout", Site: "www", RolloutAction: "abort"}, ""},
		{"rollout nothing", "rollout", one, Command{}, "pause, resume, advance or abort"},
		{"rollout sideways", "rollout sideways", one, Command{}, "not"},
		{"freeze", "freeze 2h launch week", one, Command{Action: Run, Name: "freeze", Site: "www", Until: "2h", Reason: "launch week"}, ""},
		{"freeze, site and date", "freeze docs 2026-12-24 year end", two, Command{Action: Run, Name: "freeze", Site: "docs", Until: "2026-12-24", Reason: "year end"}, ""},
		{"freeze all", "freeze all 3d holidays", two, Command{Action: Run, Name: "freeze", Site: "all", All: true, Until: "3d", Reason: "holidays"}, ""},
		{"freeze, no reason", "freeze 2h", one, Command{}, "say why"},
		{"freeze, no until", "freeze", one, Command{}, "how long"},
		{"freeze, bad until", "freeze soon because", one, Command{}, "neither a duration"},
		{"unfreeze all", "unfreeze all", two, Command{Action: Run, Name: "unfreeze", Site: "all", All: true}, ""},
		{"unfreeze", "unfreeze www", two, Command{Action: Run, Name: "unfreeze", Site: "www"}, ""},
		{"approve", "approve 20261202T101645.558474Z-ebcb0670", one, Command{Action: Run, Name: "approve", Site: "www", Version: "20261202T101645.558474Z-ebcb0670"}, ""},
		{"approve, no id", "approve", one, Command{}, "request's id is required"},
		{"approve, not an id", "approve <!channel>", one, Command{}, "not a request id"},
		{"reject with why", "reject www r1 not during the sale", one, Command{Action: Run, Name: "reject", Site: "www", Version: "r1", Reason: "not during the sale"}, ""},
		{"all is not a site elsewhere", "status all", two, Command{}, `unknown site "all"`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got := Parse(c.text, c.sites)
			if c.err != "" {
				if got.Action == Run || !strings.Contains(got.Error, c.err) {
					t.Fatalf("got %+v, want an error mentioning %q", got, c.err)
				}
				return
			}
			if !reflect.DeepEqual(got, c.want) {
				t.Fatalf("got  %+v\nwant %+v", got, c.want)
			}
		})
	}
}

func TestHelpListsEveryCommand(t *testing.T) {
	h := string(HelpText("/deploy"))
	for _, name := range CommandNames() {
		if !strings.Contains(h, "/deploy "+name) {
			t.Errorf("help lacks %s", name)
		}
	}
}

// A parse error says what it could not read, quoting at most maxQuoted
// characters of it: in Slack the answer rides in the socket-mode
// acknowledgement, which Slack drops at 20 KB, and a 30,000-character
// paste quoted back whole would leave the person with no answer.
func TestParseErrorsQuoteLittleOfTheInput(t *testing.T) {
	long := strings.Repeat("x", 30000)
	for _, c := range []struct{ text, want string }{
		{long, "unknown command \"" + strings.Repeat("x", maxQuoted-3) + "…\" (30000 characters)"},
		{strings.Repeat("\x04", 30000), "unknown command \"\\x04\\x04"},
		{"status " + strings.Repeat("\u2028", 30000), "unexpected \"\\u2028\\u2028"},
		{"status " + long, "unexpected \"xxx"},
		{"status " + strings.Repeat("a ", 15000), "(29999 characters)"},
		{"status " + strings.Repeat("<&>", 10000), "(30000 characters)"},
		{"promote " + long, "invalid version \"xxx"},
		{"diff v1 v" + long, "invalid version \"vxx"},
		{"freeze " + long + " because", "until when?"},
		{"prune " + long, "unexpected \"xxx"},
		{"unpin v1 " + long, "one version is required"},
	} {
		got := Parse(c.text, []string{"www"})
		if got.Action == Run || !strings.Contains(got.Error, c.want) {
			t.Errorf("%.40q...: got %v %.300q, want an error with %q", c.text, got.Action, got.Error, c.want)
		}
		if n := len([]rune(got.Error)); n > maxQuoted+200 {
			t.Errorf("%.40q...: the error is %d characters: %.300q", c.text, n, got.Error)
		}
	}
}

func FuzzParse(f *testing.F) {
	for _, s := range []string{"promote www v1 why", "rollback", `lock "a b`, "diff v1 v2", "prune --dry-run", "“x”"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, text string) {
		c := Parse(text, []string{"www", "docs"})
		switch c.Action {
		case Run:
			if c.Site != "www" && c.Site != "docs" {
				t.Fatalf("ran with site %q", c.Site)
			}
			for _, v := range []string{c.Version, c.Other} {
				if v != "" && releases.ValidateVersion(v) != nil {
					t.Fatalf("ran with version %q", v)
				}
			}
		case Reject:
			if c.Error == "" {
				t.Fatal("rejected without a message")
			}
		}
		// An error quotes at most maxQuoted characters of the input.
		if n := len([]rune(c.Error)); n > maxQuoted+200 {
			t.Fatalf("a %d-character error: %q", n, c.Error)
		}
	})
}

// Every command is one entry of the table: a usage line that starts with
// its name, an argument parser, and a runner (help alone is answered by
// Handle); help lists them all, and names are unique.
func TestCommandTable(t *testing.T) {
	seen := map[string]bool{}
	for _, c := range commandTable {
		if seen[c.name] {
			t.Errorf("%s is in the table twice", c.name)
		}
		seen[c.name] = true
		if !strings.HasPrefix(c.usage, c.name) {
			t.Errorf("%s: usage %q does not start with the name", c.name, c.usage)
		}
		if c.name == "help" {
			continue
		}
		if c.args == nil || c.run == nil {
			t.Errorf("%s lacks an argument parser or a runner", c.name)
		}
		if !strings.Contains(HelpText("/site").Plain(), "/site "+c.usage) {
			t.Errorf("help does not list %s", c.name)
		}
	}
	// Every chat command has its row in the service's permission table,
	// which decides for every door.
	for _, c := range commandTable {
		if _, ok := releases.Permission(c.name); !ok && c.name != "help" {
			t.Errorf("%s has no row in the permission table", c.name)
		}
	}
	for _, who := range []string{"promote", "rollback", "lock", "unlock", "prune", "pin", "unpin"} {
		if r, _ := releases.Permission(who); r != releases.RoleDeployer {
			t.Errorf("%s is not for deployers", who)
		}
	}
	if r, _ := releases.Permission("preview"); r != releases.RolePreviewer {
		t.Error("preview is not for previewers")
	}
}
