// Peak RSS of publish (-rss) and a CPU profile of it (-cpuprofile).

package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime/debug"
	"runtime/pprof"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/deploybot/deploybot/bench/internal/tools"
	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/publish"
	"github.com/deploybot/deploybot/releases"
)

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
	s3c, err := tools.VersityS3(ctx, endpoint)
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
