package slackbot

import (
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/deploybot/deploybot/bot"
	"github.com/deploybot/deploybot/internal/testclock"
	"github.com/deploybot/deploybot/releases"
)

var update = flag.Bool("update", false, "rewrite the golden files")

// golden compares the Block Kit JSON of m with testdata/name.golden.
func golden(t *testing.T, name string, m bot.Message) {
	t.Helper()
	p := encode(m)
	got, err := json.MarshalIndent(map[string]any{"text": p.text, "blocks": p.blocks}, "", "  ")
	if err != nil {
		t.Fatal(err)
	}
	// Dates as days from the fixtures' day, which moves with the wall
	// clock: the file must not depend on the day the test runs.
	got = testclock.Relative(got)
	path := filepath.Join("testdata", name+".golden")
	if *update {
		if err := os.MkdirAll("testdata", 0o755); err != nil {
			t.Fatal(err)
		}
		if err := os.WriteFile(path, got, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	want, err := os.ReadFile(path)
	if err != nil {
		t.Fatalf("%v (run go test ./bot/slackbot -update to create it)", err)
	}
	if string(got) != string(want) {
		t.Fatalf("%s differs from the golden file:\n%s", name, got)
	}
}

var t0 = testclock.At(10, 0)

func TestGoldenCard(t *testing.T) {
	d := releases.Deploy{ID: "20261128T100000Z-abcd1234", Site: "www", Kind: releases.KindPromote, Actor: "UALICE",
		Reason: "new checkout", From: "v41", To: "v42", StartedAt: t0}
	golden(t, "card-running", bot.Card(bot.CardState{Deploy: d, Phase: "waiting for CloudFront to deploy", Elapsed: 83 * time.Second}))
	golden(t, "card-failed", bot.Card(bot.CardState{Deploy: d, Result: "failed", Error: "deploy x failed in phase propagate; live now: v42", Elapsed: 30 * time.Minute}))
	d.Kind = releases.KindRollback
	golden(t, "card-done", bot.Card(bot.CardState{Deploy: d, Result: "done", Elapsed: 3 * time.Minute}))
	// A rollback's reply offers no way "back" to the newer release it left.
	golden(t, "live-rollback", bot.LiveMessage(d, 3*time.Minute))
	promoted := d
	promoted.Kind = releases.KindPromote
	golden(t, "live", bot.LiveMessage(promoted, 3*time.Minute))
	// An approved promote of a release CI told about, on a site with a
	// repository: the card links what changes and says who approved.
	d.Kind, d.ApprovedBy = releases.KindPromote, []string{"UBOB"}
	gh := releases.Site{Name: "www", RepoURL: "https://gitlab.com/acme/www"}
	to := releases.Release{Version: "v43", Commit: "3f9c1b2a77e0d1c2", Build: releases.Build{Branch: "main", PullRequest: "12", CIURL: "https://gitlab.com/acme/www/-/pipelines/9"}}
	from := releases.Release{Version: "v42", Commit: "0aa11bb22cc33dd4"}
	golden(t, "card-linked", bot.Card(bot.CardState{Deploy: d, Phase: "updating the distribution", Elapsed: 4 * time.Second, Links: bot.DeployLinks(gh, to, &from)}))
}

func TestGoldenNotice(t *testing.T) {
	site := releases.Site{Name: "www"}
	r := releases.Release{Site: "www", Version: "v42", Commit: "3f9c1b2a77e0d1c2", Message: "Fix the checkout button\n\nLong body", Files: 812, Bytes: 14_500_000}
	golden(t, "notice", bot.NoticeMessage(site, r, nil, bot.NoticeState{}))
	golden(t, "notice-diff", bot.NoticeMessage(site, r, releases.DiffManifests(diffA, diffB), bot.NoticeState{Live: "v41"}))
	golden(t, "notice-older", bot.NoticeMessage(site, r, nil, bot.NoticeState{Live: "v45", Older: true}))
	golden(t, "notice-live", bot.NoticeMessage(site, r, nil, bot.NoticeState{Live: "v42", LiveSince: t0}))
	golden(t, "notice-pruned", bot.NoticeMessage(site, r, nil, bot.NoticeState{Live: "v45", Older: true, Pruned: true}))
	// What CI knew, linked through the site's repository.
	linked := r
	linked.Build = releases.Build{Branch: "fix/checkout", CIURL: "https://github.com/acme/www/actions/runs/77", PullRequest: "314"}
	gh := releases.Site{Name: "www", RepoURL: "https://github.com/acme/www"}
	liveM, nextM := *diffA, *diffB
	liveM.Commit, nextM.Commit, nextM.Ancestors = "0aa11bb22cc", linked.Commit, []string{"3f9c1b2a77e0", "5d5d5d5d5d5d", "0aa11bb22cc0"}
	golden(t, "notice-links", bot.NoticeMessage(gh, linked, releases.DiffManifests(&liveM, &nextM), bot.NoticeState{Live: "v41", LiveCommit: "0aa11bb22cc"}))
}

var (
	diffA = &releases.Manifest{Version: "v41", Files: []releases.ManifestFile{
		{Path: "index.html", Size: 1200, SHA256: strings.Repeat("a", 64)},
		{Path: "assets/app.1111aaaa.js", Size: 88_000, SHA256: strings.Repeat("b", 64)},
		{Path: "img/old-hero.jpg", Size: 240_000, SHA256: strings.Repeat("c", 64)},
		{Path: "robots.txt", Size: 30, SHA256: strings.Repeat("d", 64)}}}
	diffB = &releases.Manifest{Version: "v42", Files: []releases.ManifestFile{
		{Path: "index.html", Size: 1250, SHA256: strings.Repeat("e", 64)},
		{Path: "assets/app.2222bbbb.js", Size: 91_000, SHA256: strings.Repeat("f", 64)},
		{Path: "robots.txt", Size: 30, SHA256: strings.Repeat("d", 64)}}}
)

func TestGoldenDiff(t *testing.T) {
	d := releases.DiffManifests(diffA, diffB)
	d.Site = "www"
	golden(t, "diff", bot.DiffMessage(d))
	many := &releases.Manifest{Version: "v43"}
	for i := range 8 {
		many.Files = append(many.Files, releases.ManifestFile{Path: fmt.Sprintf("page-%d.html", i), Size: int64(100 * (i + 1))})
	}
	d = releases.DiffManifests(diffB, many)
	d.Site = "www"
	golden(t, "diff-many", bot.DiffMessage(d))
	d = releases.DiffManifests(diffB, diffB)
	d.Site = "www"
	golden(t, "diff-same", bot.DiffMessage(d))
}

func TestGoldenVersions(t *testing.T) {
	site := releases.Site{Name: "www"}
	var vs []releases.VersionInfo
	for i := 20; i >= 1; i-- {
		vs = append(vs, releases.VersionInfo{Release: releases.Release{Version: "v" + itoa(i), Commit: "abcdef" + itoa(i), PublishedAt: t0.Add(-time.Duration(21-i) * 7 * time.Hour), Bytes: int64(i) * 100_000}, Live: i == 18})
	}
	// v18 is live and pinned, v15 pinned with a reason that tries Slack's
	// markup (escaped), v02 pinned but beyond the rows shown.
	vs[2].Pin = &releases.Pin{Site: "www", Version: "v18", By: "UBOB", Reason: "launch build", At: t0}
	vs[5].Pin = &releases.Pin{Site: "www", Version: "v15", By: "cli:ci@runner", Reason: "audit <!channel> & <https://evil.example|click>", At: t0}
	vs[18].Pin = &releases.Pin{Site: "www", Version: "v02", By: "api", At: t0}
	deploys := []releases.Deploy{{To: "v18", Actor: "UBOB", Phase: releases.PhaseDone}, {To: "v19", Actor: "UALICE", Phase: releases.PhaseFailed}, {To: "v17", Actor: "cli:ci@runner", Phase: releases.PhaseDone}}
	golden(t, "versions", bot.VersionsMessage(site, vs, deploys, t0))
	golden(t, "versions-empty", bot.VersionsMessage(site, nil, nil, t0))
}

func itoa(i int) string { return string(rune('0'+i/10)) + string(rune('0'+i%10)) }
