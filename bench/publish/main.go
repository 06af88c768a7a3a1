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
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"
	s3types "github.com/aws/aws-sdk-go-v2/service/s3/types"

	"github.com/deploybot/deploybot/bench/internal/tools"
	"github.com/deploybot/deploybot/internal/testaws"
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
	rg, cleanup, err := setup(ctx, nFiles, rounds)
	defer cleanup()
	if err != nil {
		return err
	}
	if rssOnly {
		return peakRSS(rg.work, rg.deploybot, rg.env, rg.config)
	}
	if cpuProfile != "" {
		return profile(ctx, rg.endpoint, rg.site, rounds, rg.bucket)
	}
	var contenders []tool
	for _, t := range rg.contenders() {
		if selected(t.name) {
			contenders = append(contenders, t)
		}
	}
	m, err := rg.measure(contenders, rounds)
	if err != nil {
		return err
	}
	if err := m.print(contenders); err != nil {
		return err
	}
	if err := rg.republish(nFiles); err != nil {
		return err
	}
	return peakRSS(rg.work, rg.deploybot, rg.env, rg.config)
}

// rig is a run's parts: the tools built or found, versitygw and its
// client, the site, and the environment the tools run in.
type rig struct {
	ctx                                context.Context
	work, site, endpoint               string
	serverPID                          int
	deploybot, putloop, rclone, awscli string
	s3c                                *s3.Client
	env                                []string
}

// setup finds or builds the tools, starts versitygw and writes the site.
// cleanup is to be called even when it fails.
func setup(ctx context.Context, nFiles, rounds int) (_ *rig, cleanup func(), err error) {
	var undo []func()
	cleanup = func() {
		for i := len(undo) - 1; i >= 0; i-- {
			undo[i]()
		}
	}
	rg := &rig{ctx: ctx}
	vgw, err := tools.VersityGW()
	if err != nil {
		return nil, cleanup, err
	}
	if rg.rclone, err = tools.Debian("rclone", "rclone"); err != nil {
		return nil, cleanup, err
	}
	if rg.awscli, err = tools.Debian("aws", "awscli"); err != nil {
		return nil, cleanup, err
	}
	if rg.work, err = os.MkdirTemp("", "deploybot-bench-publish-"); err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() { os.RemoveAll(rg.work) })
	if rg.deploybot, err = build(rg.work, "./cmd/deploybot"); err != nil {
		return nil, cleanup, err
	}
	if rg.putloop, err = build(rg.work, "./bench/putloop"); err != nil {
		return nil, cleanup, err
	}
	vgwDir, err := os.MkdirTemp(serverDir, "deploybot-bench-versitygw-")
	if err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, func() { os.RemoveAll(vgwDir) })
	var vgwFlags []string
	if keepAlive {
		vgwFlags = append(vgwFlags, "--keep-alive")
	}
	endpoint, serverPID, stop, err := testaws.StartPID(vgw, vgwDir, vgwFlags...)
	if err != nil {
		return nil, cleanup, err
	}
	undo = append(undo, stop)
	rg.endpoint, rg.serverPID = endpoint, serverPID
	if rg.s3c, err = tools.VersityS3(ctx, endpoint); err != nil {
		return nil, cleanup, err
	}
	rg.site = filepath.Join(rg.work, "site")
	total, err := makeSite(rg.site, nFiles, 1)
	if err != nil {
		return nil, cleanup, err
	}
	fmt.Printf("site: %d files, %.1f MB; versitygw %s storing in %s%s; %s; %s; %d rounds, medians\n",
		nFiles, float64(total)/1e6, endpoint, vgwDir, map[bool]string{true: " with --keep-alive"}[keepAlive],
		version(rg.rclone, "version"), version(rg.awscli, "--version"), rounds)
	rg.env = append(without(os.Environ(), "AWS_CA_BUNDLE"), "AWS_ACCESS_KEY_ID="+testaws.AccessKey, "AWS_SECRET_ACCESS_KEY="+testaws.SecretKey,
		"AWS_REGION=us-east-1", "AWS_EC2_METADATA_DISABLED=true", "AWS_CONFIG_FILE=/dev/null", "AWS_SHARED_CREDENTIALS_FILE=/dev/null")
	return rg, cleanup, nil
}

// bucket makes a bucket called name. Every run writes into a bucket of
// its own, so no tool finds the server's directories fuller than another
// did.
func (rg *rig) bucket(name string) string {
	if _, err := rg.s3c.CreateBucket(rg.ctx, &s3.CreateBucketInput{Bucket: aws.String(name)}); err != nil {
		var owned *s3types.BucketAlreadyOwnedByYou
		if !errors.As(err, &owned) {
			panic(err)
		}
	}
	return name
}

// config writes a deploybot configuration publishing to bucket name.
func (rg *rig) config(name string) (string, error) {
	p := filepath.Join(rg.work, name+".yaml")
	return p, os.WriteFile(p, []byte(fmt.Sprintf("store: {path: %s/db}\naws: {endpoint: %q}\nsites:\n  - {name: www, bucket: %s, prefix: www/, distribution_id: EBENCH}\n",
		rg.work, rg.endpoint, rg.bucket(name))), 0o644)
}

func (rg *rig) rcloneRemote(b string) string {
	return fmt.Sprintf(":s3,provider=Other,endpoint='%s',access_key_id=%s,secret_access_key=%s,force_path_style=true,region=us-east-1:%s/www",
		rg.endpoint, testaws.AccessKey, testaws.SecretKey, rg.bucket(b))
}

// contenders are every tool of the comparison, -tools filtering them
// after.
func (rg *rig) contenders() []tool {
	deploybot, site, env := rg.deploybot, rg.site, rg.env
	contenders := []tool{
		{"deploybot publish", func(r int) *exec.Cmd {
			cfg, _ := rg.config(fmt.Sprintf("dbt%d", r))
			return exec.Command(deploybot, "publish", "--config", cfg, "--version", "v1", site)
		}},
	}
	for _, c := range concurrencies {
		contenders = append(contenders, tool{"deploybot publish c" + c, func(r int) *exec.Cmd {
			cfg, _ := rg.config(fmt.Sprintf("dbt%s-%d", c, r))
			return exec.Command(deploybot, "publish", "--config", cfg, "--concurrency", c, "--version", "v1", site)
		}})
	}
	for _, lb := range otherBuilds {
		label, bin, _ := strings.Cut(lb, "=")
		contenders = append(contenders, tool{"deploybot publish @" + label, func(r int) *exec.Cmd {
			cfg, _ := rg.config(fmt.Sprintf("dbtbin%s-%d", strings.ToLower(label), r))
			cmd := exec.Command(bin, "publish", "--config", cfg, "--version", "v1", site)
			cmd.Env = env
			return cmd
		}})
	}
	for _, kv := range envVariants {
		contenders = append(contenders, tool{"deploybot publish " + kv, func(r int) *exec.Cmd {
			cfg, _ := rg.config(fmt.Sprintf("dbt%s-%d", strings.ToLower(strings.NewReplacer("=", "", "_", "").Replace(kv)), r))
			cmd := exec.Command(deploybot, "publish", "--config", cfg, "--version", "v1", site)
			cmd.Env = append(slices.Clone(env), kv)
			return cmd
		}})
	}
	return append(contenders, []tool{
		{"PutObject loop x16", func(r int) *exec.Cmd {
			return exec.Command(rg.putloop, "-endpoint", rg.endpoint, "-bucket", rg.bucket(fmt.Sprintf("loop%d", r)), "-prefix", "www/", site)
		}},
		{"rclone sync", func(r int) *exec.Cmd {
			return exec.Command(rg.rclone, "sync", site, rg.rcloneRemote(fmt.Sprintf("rclone%d", r)))
		}},
		{"rclone sync x16", func(r int) *exec.Cmd {
			return exec.Command(rg.rclone, "sync", "--transfers", "16", site, rg.rcloneRemote(fmt.Sprintf("rclone16-%d", r)))
		}},
		{"aws s3 sync", func(r int) *exec.Cmd {
			return exec.Command(rg.awscli, "s3", "sync", "--only-show-errors", "--endpoint-url", rg.endpoint, site, "s3://"+rg.bucket(fmt.Sprintf("aws%d", r))+"/www/")
		}},
	}...)
}

// measurements are each tool's wall times, and the CPU seconds it used
// itself and made the server use (on two cores the server's share bounds
// everyone's wall time), one a round.
type measurements struct {
	times, clientCPU, serverCPU map[string][]time.Duration
}

func (rg *rig) measure(contenders []tool, rounds int) (measurements, error) {
	m := measurements{times: map[string][]time.Duration{}, clientCPU: map[string][]time.Duration{}, serverCPU: map[string][]time.Duration{}}
	for r := 0; r < rounds; r++ {
		// A different tool goes first each round.
		order := append(contenders[r%len(contenders):len(contenders):len(contenders)], contenders[:r%len(contenders)]...)
		for _, t := range order {
			cmd := t.cmd(r)
			if cmd.Env == nil {
				cmd.Env = rg.env
			}
			before := procCPU(rg.serverPID)
			start := time.Now()
			if out, err := cmd.CombinedOutput(); err != nil {
				return m, fmt.Errorf("%s: %v\n%s", t.name, err, out)
			}
			m.times[t.name] = append(m.times[t.name], time.Since(start))
			m.serverCPU[t.name] = append(m.serverCPU[t.name], procCPU(rg.serverPID)-before)
			m.clientCPU[t.name] = append(m.clientCPU[t.name], cmd.ProcessState.UserTime()+cmd.ProcessState.SystemTime())
		}
	}
	return m, nil
}

// print prints the table. Two ratios: of the medians, and the median of
// each round's own ratio. The second pairs runs made a few seconds apart,
// so a slow spell of the machine (a 2-core VM's times drift by 10-20%
// over minutes) weighs on both sides of a ratio alike.
func (m measurements) print(contenders []tool) error {
	ours := m.times["deploybot publish"]
	if len(ours) == 0 {
		return fmt.Errorf("the deploybot publish run is needed for the ratios")
	}
	fmt.Printf("%-30s %9s %12s %12s %11s %13s\n", "tool", "median s", "deploybot/", "median of", "tool CPU s", "server CPU s")
	fmt.Printf("%-30s %9s %12s %12s %11s %13s\n", "", "", "tool", "round ratios", "", "")
	for _, t := range contenders {
		med := median(m.times[t.name])
		var ratios []float64
		for r := range m.times[t.name] {
			ratios = append(ratios, ours[r].Seconds()/m.times[t.name][r].Seconds())
		}
		fmt.Printf("%-30s %9.2f %12.2f %12.2f %11.2f %13.2f\n", t.name, med.Seconds(), median(ours).Seconds()/med.Seconds(),
			median(ratios), median(m.clientCPU[t.name]).Seconds(), median(m.serverCPU[t.name]).Seconds())
	}
	return nil
}

// republish publishes again with 1% of the files changed.
func (rg *rig) republish(nFiles int) error {
	changed := 0
	_ = filepath.WalkDir(rg.site, func(p string, d os.DirEntry, err error) error {
		if err == nil && !d.IsDir() && changed < nFiles/100 && strings.HasSuffix(p, ".html") {
			changed++
			return os.WriteFile(p, []byte(fmt.Sprintf("<h1>changed %d</h1>", changed)), 0o644)
		}
		return nil
	})
	cfg, _ := rg.config("dbt0")
	cmd := exec.Command(rg.deploybot, "publish", "--config", cfg, "--version", "v2", "--json", rg.site)
	cmd.Env = rg.env
	out, err := cmd.Output()
	if err != nil {
		return fmt.Errorf("re-publish: %v", err)
	}
	fmt.Printf("re-publish with %d files (1%%) changed: %s", changed, compact(out))
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
