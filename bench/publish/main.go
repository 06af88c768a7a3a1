// Command publish benchmarks `deploybot publish` against its peers on the
// same S3 server (versitygw) in one run: a plain 16-worker PutObject loop,
// `rclone sync` (default and --transfers 16) and `aws s3 sync`. It prints
// the median of several rounds and the ratios, then a re-publish with 1% of
// the files changed and the peak RSS of publish for the site and one ten
// times larger.
//
//	go run ./bench/publish [-rounds 5] [-server-dir DIR] [-keep-alive] [-env V=X,...] [-bin LABEL=PATH,...]
//	go run ./bench/publish -rss-only [-rss 2000,20000,200000]
//	go run ./bench/publish -cpuprofile FILE [-rounds 8]
//
// Installs versitygw (go install) and Debian's rclone and awscli when
// they are missing (apt-get, through sudo when not root).
package main

import (
	"cmp"
	"context"
	"errors"
	"flag"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/bench/internal/tools"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
)

func main() {
	files := flag.Int("files", 2000, "files in the site")
	rounds := flag.Int("rounds", 5, "rounds per tool (the median is reported)")
	only := flag.String("tools", "", "comma-separated subset of tools to run (default all), e.g. deploybot,loop")
	conc := flag.String("concurrency", "", "comma-separated --concurrency values for deploybot publish, each its own tool (default: its default)")
	envs := flag.String("env", "", "comma-separated VAR=VALUE settings, each an extra deploybot publish run with it in its environment (e.g. GOGC=400), to compare tunings in the same rounds")
	bins := flag.String("bin", "", "comma-separated LABEL=PATH deploybot binaries (other builds) run in the same rounds, to compare versions in paired rounds")
	flag.BoolVar(&keepAlive, "keep-alive", false, "start versitygw with --keep-alive (S3 keeps connections open; versitygw by default answers every request with Connection: close)")
	flag.StringVar(&serverDir, "server-dir", defaultServerDir(), "where versitygw keeps the objects (default: tmpfs when there is one, so the run measures the tools rather than the disk; give a directory on disk to include it)")
	flag.StringVar(&rssSizes, "rss", "2000,20000,200000", "comma-separated file counts whose publish peak RSS is measured (a site of small files each)")
	flag.BoolVar(&rssOnly, "rss-only", false, "measure only the peak RSS of publish, not the comparison")
	flag.StringVar(&cpuProfile, "cpuprofile", "", "instead of the comparison, publish the site in this process -rounds times and write a CPU profile of it to `FILE` (go tool pprof FILE)")
	flag.Parse()
	toolFilter = *only
	if *envs != "" {
		envVariants = strings.Split(*envs, ",")
	}
	if *conc != "" {
		concurrencies = strings.Split(*conc, ",")
	}
	if *bins != "" {
		otherBuilds = strings.Split(*bins, ",")
	}
	if err := run(*files, *rounds); err != nil {
		fmt.Fprintln(os.Stderr, "bench/publish:", err)
		os.Exit(1)
	}
}

// makeSite writes a reproducible site: mostly small files (HTML, JS, CSS,
// JSON), some images of tens of KB, a few of a few hundred KB; a third of
// the assets fingerprinted.
func makeSite(dir string, n int, seed uint64) (int64, error) {
	r := rand.New(rand.NewPCG(seed, 7))
	var total int64
	exts := []string{".html", ".js", ".css", ".json", ".svg", ".png", ".woff2"}
	for i := 0; i < n; i++ {
		ext := exts[r.IntN(len(exts))]
		size := 200 + r.IntN(8_000)
		switch {
		case i%100 == 0:
			size = 200_000 + r.IntN(300_000)
		case ext == ".png" || ext == ".woff2":
			size = 10_000 + r.IntN(60_000)
		}
		name := fmt.Sprintf("section%02d/page%04d%s", i%40, i, ext)
		if ext != ".html" && i%3 == 0 {
			name = fmt.Sprintf("assets/chunk-%04d.%08x%s", i, r.Uint32(), ext)
		}
		b := make([]byte, size)
		for j := range b {
			b[j] = byte('a' + r.IntN(26))
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return 0, err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return 0, err
		}
		total += int64(size)
	}
	return total, nil
}

type tool struct {
	name string
	cmd  func(round int) *exec.Cmd
}

var toolFilter string

// rssSizes and rssOnly: the peak-RSS measurement (-rss, -rss-only);
// cpuProfile: -cpuprofile.
var (
	rssSizes   string
	rssOnly    bool
	cpuProfile string
)

// concurrencies are extra deploybot runs with --concurrency set.
var concurrencies []string

func selected(name string) bool {
	if toolFilter == "" {
		return true
	}
	for _, f := range strings.Split(toolFilter, ",") {
		if f != "" && strings.Contains(strings.ToLower(name), strings.ToLower(f)) {
			return true
		}
	}
	return false
}

func median[T cmp.Ordered](xs []T) T {
	s := slices.Clone(xs)
	slices.Sort(s)
	return s[len(s)/2]
}

func without(env []string, name string) []string {
	var out []string
	for _, e := range env {
		if !strings.HasPrefix(e, name+"=") {
			out = append(out, e)
		}
	}
	return out
}

func build(dir, pkg string) (string, error) {
	out := filepath.Join(dir, filepath.Base(pkg))
	b, err := exec.Command("go", "build", "-o", out, pkg).CombinedOutput()
	if err != nil {
		return "", fmt.Errorf("go build %s: %v\n%s", pkg, err, b)
	}
	return out, nil
}

func run(nFiles, rounds int) error {
	ctx := context.Background()
	vgw, err := tools.VersityGW()
	if err != nil {
		return err
	}
	rclone, err := tools.Debian("rclone", "rclone")
	if err != nil {
		return err
	}
	awscli, err := tools.Debian("aws", "awscli")
	if err != nil {
		return err
	}
	work, err := os.MkdirTemp("", "deploybot-bench-publish-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(work)
	deploybot, err := build(work, "./cmd/deploybot")
	if err != nil {
		return err
	}
	putloop, err := build(work, "./bench/putloop")
	if err != nil {
		return err
	}
	vgwDir, err := os.MkdirTemp(serverDir, "deploybot-bench-versitygw-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(vgwDir)
	var vgwFlags []string
	if keepAlive {
		vgwFlags = append(vgwFlags, "--keep-alive")
	}
	endpoint, serverPID, stop, err := testaws.StartPID(vgw, vgwDir, vgwFlags...)
	if err != nil {
		return err
	}
	defer stop()
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: endpoint,
		Credentials: cloud.StaticCredentials(testaws.AccessKey, testaws.SecretKey)})
	if err != nil {
		return err
	}
	site := filepath.Join(work, "site")
	total, err := makeSite(site, nFiles, 1)
	if err != nil {
		return err
	}
	fmt.Printf("site: %d files, %.1f MB; versitygw %s storing in %s%s; %s; %s; %d rounds, medians\n",
		nFiles, float64(total)/1e6, endpoint, vgwDir, map[bool]string{true: " with --keep-alive"}[keepAlive],
		version(rclone, "version"), version(awscli, "--version"), rounds)

	env := append(without(os.Environ(), "AWS_CA_BUNDLE"), "AWS_ACCESS_KEY_ID="+testaws.AccessKey, "AWS_SECRET_ACCESS_KEY="+testaws.SecretKey,
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	// Every run writes into a bucket of its own, so no tool finds the
	// server's directories fuller than another did.
	bucket := func(name string) string {
		if _, err := s3c.CreateBucket(ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
			var owned *s3types.BucketAlreadyOwnedByYou
			if !errors.As(err, &owned) {
				panic(err)
			}
		}
		return name
	}
	config := func(name string) (string, error) {
		p := filepath.Join(work, name+".yaml")
		return p, os.WriteFile(p, []byte(fmt.Sprintf("store: {path: %s/db}\naws: {endpoint: %q}\nsites:\n  - {name: www, bucket: %s, prefix: www/, distribution_id: EBENCH}\n",
			work, endpoint, bucket(name))), 0o644)
	}
	rcloneRemote := func(b string) string {
		return fmt.Sprintf(":s3,provider=Other,endpoint='%s',access_key_id=%s,secret_access_key=%s,force_path_style=true,region=us-east-1:%s/www",
			endpoint, testaws.AccessKey, testaws.SecretKey, bucket(b))
	}
	if rssOnly {
		return peakRSS(work, deploybot, env, config)
	}
	if cpuProfile != "" {
		return profile(ctx, endpoint, site, rounds, bucket)
	}
	contenders := []tool{
		{"deploybot publish", func(r int) *exec.Cmd {
			cfg, _ := config(fmt.Sprintf("dbt%d", r))
			return exec.Command(deploybot, "publish", "--config", cfg, "--version", "v1", site)
		}},
	}
	for _, c := range concurrencies {
		contenders = append(contenders, tool{"deploybot publish c" + c, func(r int) *exec.Cmd {
			cfg, _ := config(fmt.Sprintf("dbt%s-%d", c, r))
			return exec.Command(deploybot, "publish", "--config", cfg, "--concurrency", c, "--version", "v1", site)
		}})
	}
	for _, lb := range otherBuilds {
		label, bin, _ := strings.Cut(lb, "=")
		contenders = append(contenders, tool{"deploybot publish @" + label, func(r int) *exec.Cmd {
			cfg, _ := config(fmt.Sprintf("dbtbin%s-%d", strings.ToLower(label), r))
			cmd := exec.Command(bin, "publish", "--config", cfg, "--version", "v1", site)
			cmd.Env = env
			return cmd
		}})
	}
	for _, kv := range envVariants {
		contenders = append(contenders, tool{"deploybot publish " + kv, func(r int) *exec.Cmd {
			cfg, _ := config(fmt.Sprintf("dbt%s-%d", strings.ToLower(strings.NewReplacer("=", "", "_", "").Replace(kv)), r))
			cmd := exec.Command(deploybot, "publish", "--config", cfg, "--version", "v1", site)
			cmd.Env = append(slices.Clone(env), kv)
			return cmd
		}})
	}
	contenders = append(contenders, []tool{
		{"PutObject loop x16", func(r int) *exec.Cmd {
			return exec.Command(putloop, "-endpoint", endpoint, "-bucket", bucket(fmt.Sprintf("loop%d", r)), "-prefix", "www/", site)
		}},
		{"rclone sync", func(r int) *exec.Cmd {
			return exec.Command(rclone, "sync", site, rcloneRemote(fmt.Sprintf("rclone%d", r)))
		}},
		{"rclone sync x16", func(r int) *exec.Cmd {
			return exec.Command(rclone, "sync", "--transfers", "16", site, rcloneRemote(fmt.Sprintf("rclone16-%d", r)))
		}},
		{"aws s3 sync", func(r int) *exec.Cmd {
			return exec.Command(awscli, "s3", "sync", "--only-show-errors", "--endpoint-url", endpoint, site, "s3://"+bucket(fmt.Sprintf("aws%d", r))+"/www/")
		}},
	}...)
	var picked []tool
	for _, t := range contenders {
		if selected(t.name) {
			picked = append(picked, t)
		}
	}
	contenders = picked
	times := map[string][]time.Duration{}
	// CPU seconds each tool used itself and made the server use: on two
	// cores the server's share bounds everyone's wall time.
	clientCPU, serverCPU := map[string][]time.Duration{}, map[string][]time.Duration{}
	for r := 0; r < rounds; r++ {
		// A different tool goes first each round.
		order := append(contenders[r%len(contenders):len(contenders):len(contenders)], contenders[:r%len(contenders)]...)
		for _, t := range order {
			cmd := t.cmd(r)
			if cmd.Env == nil {
				cmd.Env = env
			}
			before := procCPU(serverPID)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return fmt.Errorf("%s: %v\n%s", t.name, err, out)
			}
			times[t.name] = append(times[t.name], time.Since(start))
			serverCPU[t.name] = append(serverCPU[t.name], procCPU(serverPID)-before)
			clientCPU[t.name] = append(clientCPU[t.name], cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
	}
	if len(times["deploybot publish"]) == 0 {
		return fmt.Errorf("the deploybot publish run is needed for the ratios")
	}
	// Two ratios: of the medians, and the median of each round's own
	// ratio. The second pairs runs made a few seconds apart, so a slow
	// spell of the machine (a 2-core VM's times drift by 10-20% over
	// minutes) weighs on both sides of a ratio alike.
	ours := times["deploybot publish"]
	fmt.Printf("%-30s %9s %12s %12s %11s %13s\n", "tool", "median s", "deploybot/", "median of", "tool CPU s", "server CPU s")
	fmt.Printf("%-30s %9s %12s %12s %11s %13s\n", "", "", "tool", "round ratios", "", "")
	for _, t := range contenders {
		m := median(times[t.name])
		var ratios []float64
		for r := range times[t.name] {
			ratios = append(ratios, ours[r].Seconds()/times[t.name][r].Seconds())
		}
		fmt.Printf("%-30s %9.2f %12.2f %12.2f %11.2f %13.2f\n", t.name, m.Seconds(), median(ours).Seconds()/m.Seconds(),
			median(ratios), median(clientCPU[t.name]).Seconds(), median(serverCPU[t.name]).Seconds())
	}

	// Re-publish with 1% of the files changed.
	changed := 0
	_ = filepath.WalkDir(site, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && changed < nFiles/100 && strings.HasSuffix(p, ".html") {
			changed++
			return os.WriteFile(p, []byte(fmt.Sprintf("<h1>changed %d</h1>", changed)), 0o644)
		}
		return nil
	})
	cfg, _ := config("dbt0")
	cmd := exec.Command(deploybot, "publish", "--config", cfg, "--version", "v2", "--json", site)
	cmd.Env = env
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("re-publish: %v", err)
	}
	fmt.Printf("re-publish with %d files (1%%) changed: %s", changed, compact(out))

	return peakRSS(work, deploybot, env, config)
}

// peakRSS publishes sites of each -rss size and prints the peak RSS
// (getrusage) of deploybot publish. The sites are of small files (0.2-8
// KB, one page and one fingerprinted asset in three): what publish holds
// grows, if at all, with the number of files, not with their bytes.
func peakRSS(work, deploybot string, env []string, config func(string) (string, error)) error {
	for _, f := range strings.Split(rssSizes, ",") {
		n, err := strconv.Atoi(strings.TrimSpace(f))
		if err != nil || n <= 0 {
			return fmt.Errorf("-rss: %q is not a file count", f)
		}
		dir := filepath.Join(work, fmt.Sprintf("rss%d", n))
		if err := makeSmallSite(dir, n); err != nil {
			return err
		}
		cfg, _ := config(fmt.Sprintf("rss%d", n))
		// v1 is a first publish; v2 and v3 re-publish the same files,
		// which reads the newest manifests (two, with the default skew
		// protection, for v3) to copy every file server-side.
		for _, v := range []string{"v1", "v2", "v3"} {
			cmd := exec.Command(deploybot, "publish", "--config", cfg, "--version", v, "--json", dir)
			cmd.Env = env
			start := time.Now()
			out, err := cmd.CombinedOutput()
			if err != nil {
				return fmt.Errorf("publish for RSS: %v\n%s", err, out)
			}
			took := time.Since(start)
			ru := cmd.ProcessState.SysUsage().(*syscall.Rusage)
			what := "publish"
			if v != "v1" {
				what = "re-publish " + v
			}
			fmt.Printf("peak RSS of %s, %d files: %.1f MiB (%.1f s)\n", what, n, float64(ru.Maxrss)/1024, took.Seconds())
		}
		_ = os.RemoveAll(dir)
	}
	return nil
}

// profile publishes site in this process, rounds times into fresh
// buckets, under the CPU profiler, with the settings the command line
// uses (its S3 client, 16 workers, GOGC 200).
func profile(ctx context.Context, endpoint, site string, rounds int, bucket func(string) string) error {
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: endpoint,
		Credentials: cloud.StaticCredentials(testaws.AccessKey, testaws.SecretKey)})
	if err != nil {
		return err
	}
	f, err := os.Create(cpuProfile)
	if err != nil {
		return err
	}
	defer f.Close()
	defer debug.SetGCPercent(debug.SetGCPercent(200))
	if err := pprof.StartCPUProfile(f); err != nil {
		return err
	}
	defer pprof.StopCPUProfile()
	// As `deploybot publish` builds it: uploads go directly (cloud.DirectPut).
	p := &publish.Publisher{Bucket: &cloud.S3Bucket{Client: s3c, Uploads: cloud.NewDirectPut(s3c, nil)}}
	for r := range rounds {
		b := bucket(fmt.Sprintf("prof%d", r))
		start := time.Now()
		if _, err := p.Publish(ctx, publish.Request{Site: releases.Site{Name: "www", Bucket: b, Prefix: "www/"}, Version: "v1", Dir: site}); err != nil {
			return err
		}
		fmt.Printf("round %d: %.2f s\n", r+1, time.Since(start).Seconds())
	}
	return nil
}

// makeSmallSite writes n files of 0.2-8 KB in 40 folders.
func makeSmallSite(dir string, n int) error {
	r := rand.New(rand.NewPCG(uint64(n), 9))
	buf := make([]byte, 8200)
	for i := range n {
		name := fmt.Sprintf("section%02d/page%06d.html", i%40, i)
		if i%3 == 0 {
			name = fmt.Sprintf("assets/chunk-%06d.%08x.js", i, r.Uint32())
		}
		b := buf[:200+r.IntN(8000)]
		for j := range b {
			b[j] = byte('a' + (i+j*7)%26)
		}
		p := filepath.Join(dir, filepath.FromSlash(name))
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			return err
		}
		if err := os.WriteFile(p, b, 0o644); err != nil {
			return err
		}
	}
	return nil
}

func compact(b []byte) string {
	return strings.Join(strings.Fields(string(b)), " ") + "\n"
}

// procCPU is the user+system CPU time a process has used, from
// /proc/PID/stat (fields 14 and 15, in clock ticks of 1/100 s on Linux).
func procCPU(pid int) time.Duration {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid))
	if err != nil {
		return 0
	}
	// The command name (field 2) may hold spaces; fields resume after ")".
	f := strings.Fields(string(raw[strings.LastIndexByte(string(raw), ')')+1:]))
	if len(f) < 13 {
		return 0
	}
	utime, _ := strconv.ParseInt(f[11], 10, 64)
	stime, _ := strconv.ParseInt(f[12], 10, 64)
	return time.Duration(utime+stime) * 10 * time.Millisecond
}

var (
	envVariants []string
	// otherBuilds are -bin LABEL=PATH.
	otherBuilds []string
	serverDir   string
	keepAlive   bool
)

// defaultServerDir is tmpfs when the machine has one. On disk, versitygw's
// file system work (ext4 block allocation and journal, about 0.5 ms of
// server CPU per object on the 2-core machine) is the same for every tool
// but varies from run to run by more than the differences between the
// fastest tools, so the ratios would mostly measure the disk.
func defaultServerDir() string {
	if f, err := os.CreateTemp("/dev/shm", "probe-"); err == nil {
		f.Close()
		os.Remove(f.Name())
		return "/dev/shm"
	}
	return os.TempDir()
}

// version is the first line a tool prints about its version.
func version(bin string, arg string) string {
	out, err := exec.Command(bin, arg).CombinedOutput()
	if err != nil {
		return filepath.Base(bin) + " (version unknown)"
	}
	line, _, _ := strings.Cut(strings.TrimSpace(string(out)), "\n")
	return line
}
