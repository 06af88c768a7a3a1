// Command reliability runs the long versions of the reliability suite and
// writes the figures table (docs/reliability.md) from what it measured:
// the atomicity load test with and without skew protection and under
// faults, the SIGKILL crash test, the concurrency and fault tests, and
// every fuzz target. `make reliability` runs it.
//
//	go run ./bench/reliability [-loads 10000] [-flips 24] [-fuzztime 30s] [-out docs/reliability.md]
package main

import (
	"bufio"
	"bytes"
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"strconv"
	"strings"
	"time"

	"github.com/deploybot/deploybot/bench/internal/memload"
	"github.com/deploybot/deploybot/internal/atomicity"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// fuzzTargets are every fuzz target of outside input, by package.
var fuzzTargets = []struct{ name, pkg, input string }{
	{"FuzzParse", "./bot", "Slack command text"},
	{"FuzzParseNotice", "./hook", "CI hook bodies"},
	{"FuzzValidateVersion", "./releases", "version names"},
	{"FuzzParseManifest", "./releases", "release manifests"},
	{"FuzzVersionFromOriginPath", "./releases", "origin paths read from CloudFront"},
	{"FuzzParse", "./config", "config files"},
	{"FuzzChunkedReader", "./localaws", "aws-chunked upload bodies (stand-in)"},
	{"FuzzVerify", "./hook", "CI hook timestamp and signature headers"},
	{"FuzzParseConfig", "./localaws", "DistributionConfig XML (stand-in)"},
	{"FuzzMessagesFitSlack", "./bot/slackbot", "text lengths and counts in every Slack message"},
	{"FuzzParseUntil", "./releases", "freeze ends typed in chat, the CLI and the API"},
	{"FuzzParseRepo", "./internal/present", "repo_url values and the links made from them"},
	{"FuzzReleaseOf", "./probe", "the release header of the site's answers (the visible phase)"},
	{"FuzzSharedState", "./releases", "the shared state objects read from the bucket (lock, freeze, pins, approval, lease, notices)"},
	{"FuzzCommandText", "./bot/slackbot", "slash-command text as Slack sends it (entities decoded once)"},
}

func main() {
	loads := flag.Int("loads", 10000, "page loads per atomicity run (at least)")
	flips := flag.Int("flips", 24, "flips per atomicity run (at least)")
	fuzztime := flag.Duration("fuzztime", 30*time.Second, "time per fuzz target")
	out := flag.String("out", "docs/reliability.md", "where the figures go")
	flag.Parse()
	if err := run(*loads, *flips, *fuzztime, *out); err != nil {
		fmt.Fprintln(os.Stderr, "reliability:", err)
		os.Exit(1)
	}
}

type row struct{ what, figure, result string }

// moduleRoot is the directory of deploybot's go.mod, where the commands
// this tool runs (go test ./..., go build ./cmd/deploybot) must start.
func moduleRoot() (string, error) {
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" {
		return "", fmt.Errorf("finding the module root: %v", err)
	}
	return filepath.Dir(strings.TrimSpace(string(gomod))), nil
}

// checkFuzzList fails when the tree has a fuzz target fuzzTargets does
// not describe, so a new parser's target cannot be left out of the report.
func checkFuzzList() error {
	root, err := moduleRoot()
	if err != nil {
		return err
	}
	cmd := exec.Command("go", "test", "-list", "^Fuzz", "./...")
	cmd.Dir = root
	out, err := cmd.CombinedOutput()
	if err != nil {
		return fmt.Errorf("go test -list: %v\n%s", err, out)
	}
	found := 0
	listed := map[string]bool{}
	for _, f := range fuzzTargets {
		listed[f.name+" "+strings.TrimPrefix(f.pkg, "./")] = true
	}
	var names []string
	for line := range strings.Lines(string(out)) {
		fields := strings.Fields(line)
		switch {
		case len(fields) == 1 && strings.HasPrefix(fields[0], "Fuzz"):
			names = append(names, fields[0])
		case len(fields) >= 2 && fields[0] == "ok":
			pkg := strings.TrimPrefix(fields[1], "github.com/deploybot/deploybot/")
			for _, n := range names {
				found++
				if !listed[n+" "+pkg] {
					return fmt.Errorf("fuzz target %s in ./%s is missing from fuzzTargets in bench/reliability", n, pkg)
				}
			}
			names = nil
		}
	}
	if found == 0 {
		return fmt.Errorf("go test -list found no fuzz targets")
	}
	return nil
}

func run(loads, flips int, fuzztime time.Duration, out string) error {
	ctx := context.Background()
	if err := checkFuzzList(); err != nil {
		return err
	}
	t := &table{}
	if err := t.atomicity(ctx, loads, flips); err != nil {
		return err
	}
	t.coordination()
	t.attacks()
	if err := t.memory(ctx); err != nil {
		return err
	}
	t.fuzzing(fuzztime)
	if err := t.write(out); err != nil {
		return err
	}
	fmt.Println("wrote", out)
	if t.failed {
		return fmt.Errorf("some checks failed; see %s", out)
	}
	return nil
}

// table is the figures' rows; failed once a check did not hold.
type table struct {
	rows   []row
	failed bool
}

// add adds a row, printing it; a result that did not hold (!ok) is marked
// FAILED.
func (t *table) add(what, figure, result string, ok bool) {
	if !ok {
		t.failed = true
		result = "FAILED: " + result
	}
	t.rows = append(t.rows, row{what, figure, result})
	fmt.Printf("%-45s %-55s %s\n", what, figure, result)
}

// atomicity measures page loads across flips, with and without skew
// protection, under faults, and with both strategies.
func (t *table) atomicity(ctx context.Context, loads, flips int) error {
	for _, c := range []struct {
		name     string
		skew     int
		faults   localaws.Faults
		strategy string
	}{
		{"page loads across flips, skew protection on (default)", 2, localaws.Faults{}, ""},
		{"page loads across flips, skew protection off", 0, localaws.Faults{}, ""},
		{"page loads across flips under faults, skew on", 2, localaws.Faults{ErrorRate: 0.1, ThrottleRate: 0.1, Latency: 20 * time.Millisecond}, ""},
		{"page loads across kvs flips, skew protection on", 2, localaws.Faults{}, "kvs"},
		{"page loads across kvs flips, skew protection off", 0, localaws.Faults{}, "kvs"},
	} {
		dir, err := os.MkdirTemp("", "deploybot-atomicity-")
		if err != nil {
			return err
		}
		rep, err := atomicity.Run(ctx, atomicity.Config{Dir: dir, Flips: flips, PageLoads: loads, SkewReleases: c.skew, Faults: c.faults, Strategy: c.strategy})
		os.RemoveAll(dir)
		if err != nil {
			return fmt.Errorf("%s: %w", c.name, err)
		}
		figure := fmt.Sprintf("%d page loads (%d requests), %d %s flips (%d rollbacks), %d PoPs, %.0f s",
			rep.PageLoads, rep.Requests, rep.Flips, rep.Strategy, rep.Rollbacks, rep.Pops, rep.Seconds)
		if c.faults != (localaws.Faults{}) {
			figure += fmt.Sprintf("; 10%% 5xx + 10%% throttling + 20 ms on every AWS call; %d deploys failed cleanly", rep.Failed)
		}
		result := fmt.Sprintf("%d broken page loads", rep.Broken)
		if rep.Broken > 0 {
			result += fmt.Sprintf(" (%s)", reasons(rep.Reasons))
		}
		// Without skew protection broken loads are the expected figure:
		// what the default prevents.
		t.add(c.name, figure, result, c.skew == 0 || rep.Broken == 0)
	}

	return nil
}

// coordination runs the tests of kill -9, faults, many deploys at once,
// replicas, and prune on a shared bucket, reporting what they logged.
func (t *table) coordination() {
	kill, err := goTest("-run", "^TestKillNineInEachPhase$", "./cmd/deploybot")
	passed := regexp.MustCompile(`--- PASS: TestKillNineInEachPhase/(\S+)`).FindAllStringSubmatch(kill, -1)
	var points []string
	for _, p := range passed {
		points = append(points, strings.ReplaceAll(p[1], "_", " "))
	}
	t.add("kill -9 of `serve` mid-promote, then restart", fmt.Sprintf("%d kill points: %s", len(points), strings.Join(points, "; ")),
		"each deploy final, live pointer = origin path, lock free, no release lost", err == nil && len(points) >= 4)

	conc, err := goTest("-run", "^TestDeploysUnderFaults$", "./server")
	faultLine := regexp.MustCompile(`under 20% faults: ([^\n]+)`).FindStringSubmatch(conc)
	figure := "8 deploys, 10% 5xx + 10% throttling on every AWS call"
	result := "no lock held, no phase left open"
	if faultLine != nil {
		result = faultLine[1] + "; " + result
	}
	t.add("deploys under faults", figure, result, err == nil)
	doors, err := goTest("-run", "^TestFiftyPromotesThroughEveryDoor$", "./cmd/deploybot")
	t.add("50 promotes of one site at once", "17 command lines, 17 API clients, 16 Slack commands against one `serve`", "exactly one runs, the others are refused naming it; no lock left",
		err == nil && strings.Contains(doors, "--- PASS: TestFiftyPromotesThroughEveryDoor"))

	replicas, err := goTest("-run", "^(TestTwoServesAndTheCommandLineShareOneTruth|TestKillNineOfTheReplicaRunningADeploy|TestTheScheduledPruneRunsOnceWithReplicasAndAfterAKill)$", "./cmd/deploybot")
	t.add("two `serve` replicas and the command line on one bucket", "a freeze set through one replica; 50 promotes at once from 16 command lines and 34 API calls spread over both replicas",
		"the freeze holds the command line and the other replica; exactly one promote runs, every other refused naming it",
		err == nil && strings.Contains(replicas, "--- PASS: TestTwoServesAndTheCommandLineShareOneTruth"))
	figure = "kill -9 of the replica running a promote (waiting for CloudFront), the replicas on different machines (judged by heartbeats)"
	if m := regexp.MustCompile(`finished by the other replica ([0-9.]+)s after the kill`).FindStringSubmatch(replicas); m != nil {
		figure += "; finished " + m[1] + " s after the kill"
	}
	t.add("a replica killed mid-deploy", figure, "the other replica shows it running, takes it over after the missed heartbeats and finishes it; nothing left locked",
		err == nil && strings.Contains(replicas, "--- PASS: TestKillNineOfTheReplicaRunningADeploy"))
	t.add("the scheduled prune with replicas", "two replicas on an every-minute schedule, then kill -9 of the site lease's holder",
		"each planned run happens exactly once, before and after the kill",
		err == nil && strings.Contains(replicas, "--- PASS: TestTheScheduledPruneRunsOnceWithReplicasAndAfterAKill"))

	prop, err := goTestEnv([]string{"DEPLOYBOT_PRUNE_ROUNDS=400"}, "-run", "^TestPruneNeverDeletesAnotherSitesObjects$", "./cloud")
	propLine := regexp.MustCompile(`prune property: (\d+) rounds, (\d+) objects of other sites checked, 0 lost; (\d+) objects`).FindStringSubmatch(prop)
	figure = "random sets of 2-3 sites sharing a bucket with nested, equal or empty prefixes (which the configuration refuses), an unconfigured site inside one, a prune of one of them"
	result = "no object of another site deleted; dry run = run"
	if propLine != nil {
		figure = propLine[1] + " " + figure
		result = fmt.Sprintf("%s objects of other sites checked, 0 deleted (%s deleted from the pruned sites); dry run = run", propLine[2], propLine[3])
	}
	t.add("prune with sites sharing a bucket", figure, result, err == nil && propLine != nil)
}

// attacks runs the tests of the attacks from the review of 2026-12-02.
func (t *table) attacks() {
	// Each a test that reproduces it, some run here at a larger scale than
	// in make test.
	for _, a := range []struct {
		what, figure, result, test, pkg string
		env                             []string
		summary                         string // a line the test logs, shown as the figure
	}{
		{"one captured CI notice replayed in other forms", "", "exactly the first accepted; the replay cache holds one entry",
			"TestHookReplayFlood", "./server", []string{"DEPLOYBOT_HOOK_FLOOD=5000"}, `hook replay flood: ([^\n]+)`},
		{"connections that stall or idle", "", "every connection closed once its timeout passed; a deploy's stream is not cut",
			"TestConnectionsAreNotHeldForEver", "./server", []string{"DEPLOYBOT_STALLED_CONNS=2000"}, `stalled connections: ([^\n]+)`},
		{"a build folder with links out of it", "links to a secret outside it, a dangling link, a loop, .git/, .DS_Store, .env*",
			"refused before anything was sent, naming the links; loops and hidden files left out, said why", "TestPublishReadsOnlyTheBuildDirectory", "./publish", nil, ""},
		{"the preview function, hostile paths", "//host/, /\\host/, /./, /../, // inside; a token good for 20 minutes",
			"400 for bad paths; the redirect stays on the site; the cookie Secure, as long-lived as the token", "TestPreviewFunctionHardening", "./cloud", nil, ""},
		{"kill -9 between the store's commit and the history's write to the bucket", "every write to the history failing; a promote through serve; kill -9; S3 healthy again",
			"written at the next start; a store rebuilt from the bucket has the promote", "TestKilledBeforeTheMirrorWriteLosesNothing", "./cmd/deploybot", nil, ""},
		{"the history mirror under faults", "6 promotes through serve, 10% 5xx + 10% throttling on every AWS call",
			"pending drained to 0; every finished deploy in the bucket", "TestHistoryMirrorDrainsUnderFaults", "./server", nil, ""},
		{"a lost store", "deploys, a pin, a lock, a freeze and a prune through the CLI and serve; the store file deleted",
			"serve rebuilt it from the bucket; versions, status and history equal field by field", "TestLostStoreIsRebuiltByServe", "./cmd/deploybot", nil, ""},
		{"who the API says acted; what /readyz tells strangers", "an actor with control characters and 100 bytes; /readyz with and without the token",
			"recorded as `api:NAME`, cleaned and cut; reasons only behind the token", "TestAPIActorIsVouchedForByTheToken|TestReadiness", "./server", nil, ""},
	} {
		out, err := goTestEnv(a.env, "-run", "^("+a.test+")$", a.pkg)
		figure := a.figure
		if a.summary != "" {
			if m := regexp.MustCompile(a.summary).FindStringSubmatch(out); m != nil {
				figure = m[1]
			}
		}
		t.add(a.what, figure, a.result, err == nil && strings.Contains(out, "--- PASS"))
	}
}

// memory measures the peak RSS of reading a manifest at the limits, and
// of serve under memload.
func (t *table) memory(ctx context.Context) error {
	mbytes, peak, base, err := manifestRSS(ctx)
	t.add("a manifest at the limits, read by deploybot", fmt.Sprintf("%d files, %.1f MB of JSON (the limits: %d files, %d MiB)", releases.MaxManifestFiles, float64(mbytes)/1e6,
		releases.MaxManifestFiles, releases.MaxManifestBytes>>20),
		fmt.Sprintf("peak RSS %.0f MiB (%.0f MiB with a one-file manifest); the chart's limit is 256 MiB", float64(peak)/(1<<20), float64(base)/(1<<20)), err == nil && peak < 200<<20)

	root, err := moduleRoot()
	if err != nil {
		return err
	}
	mem, err := memload.Run(ctx, memload.Options{Root: root})
	if err != nil {
		t.add("serve reading large manifests, diffs at once", "", err.Error(), false)
	} else {
		t.add("serve reading large manifests, diffs at once", memoryFigure(mem), memoryResult(mem), mem.Peak < 200<<20)
	}
	return nil
}

func (t *table) fuzzing(fuzztime time.Duration) {
	for _, f := range fuzzTargets {
		execs, err := fuzz(f.name, f.pkg, fuzztime)
		t.add("fuzz "+f.name+" ("+f.pkg+")", fmt.Sprintf("%s: %d execs in %s", f.input, execs, fuzztime), "no panic; the target's properties held on every input", err == nil)
	}
}

// write writes the table as the figures' Markdown file.
func (t *table) write(out string) error {
	var b bytes.Buffer
	fmt.Fprintf(&b, "# Reliability figures\n\nGenerated by `make reliability` (`go run ./bench/reliability`) on %s, %d cores, %s.\n",
		time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version())
	b.WriteString("Do not edit by hand: run it again.\n\n")
	b.WriteString("The atomicity runs load `/` and then every asset the page names, each page load at one of the edge's\n" +
		"points of presence, while the real promote/rollback flow flips the site (every fourth flip a rollback).\n" +
		"A page load is broken when an asset it names is not served with the bytes its fingerprint promises.\n\n")
	b.WriteString("| what | load / inputs | result |\n|---|---|---|\n")
	for _, r := range t.rows {
		fmt.Fprintf(&b, "| %s | %s | %s |\n", r.what, r.figure, r.result)
	}
	return os.WriteFile(out, b.Bytes(), 0o644)
}

func reasons(m map[string]int) string {
	var parts []string
	for k, v := range m {
		parts = append(parts, fmt.Sprintf("%d %s", v, k))
	}
	return strings.Join(parts, ", ")
}

// goTest runs go test -v and returns its output.
func goTest(args ...string) (string, error) { return goTestEnv(nil, args...) }

// goTestEnv is goTest with variables added to the environment.
func goTestEnv(env []string, args ...string) (string, error) {
	cmd := exec.Command("go", append([]string{"test", "-count=1", "-v"}, args...)...)
	cmd.Env = append(os.Environ(), env...)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	if err != nil {
		fmt.Fprint(os.Stderr, out.String())
	}
	return out.String(), err
}

var execsRE = regexp.MustCompile(`execs: (\d+)`)

// fuzz runs one target for d and returns how many inputs it tried.
func fuzz(name, pkg string, d time.Duration) (int, error) {
	cmd := exec.Command("go", "test", "-run", "^$", "-fuzz", "^"+name+"$", "-fuzztime", d.String(), pkg)
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	err := cmd.Run()
	execs := 0
	sc := bufio.NewScanner(bytes.NewReader(out.Bytes()))
	for sc.Scan() {
		if m := execsRE.FindStringSubmatch(sc.Text()); m != nil {
			execs, _ = strconv.Atoi(m[1])
		}
	}
	if err != nil {
		fmt.Fprint(os.Stderr, out.String())
	}
	return execs, err
}

// memoryFigure and memoryResult say what bench/internal/memload measured
// (bench/memory prints the same run in more detail).
func memoryFigure(m *memload.Result) string {
	return fmt.Sprintf("%d manifests of %d files (%.1f MB of JSON each) recorded by serve's reconcile, then %d diffs of them at once through the API (%d refused while one of the site ran, asked again)",
		m.Manifests, releases.MaxManifestFiles, float64(m.ManifestBytes)/1e6, m.Diffs, m.Refused)
}

func memoryResult(m *memload.Result) string {
	mib := func(n int64) float64 { return float64(n) / (1 << 20) }
	return fmt.Sprintf("peak RSS %.0f MiB (%.0f after the reconcile, %.0f at rest); the goal is under 200 MiB, the chart's limit 256 MiB",
		mib(m.Peak), mib(m.PeakSync), mib(m.Baseline))
}
