// Command memory measures the peak memory (VmHWM) of `deploybot serve`
// while its reconcile records twenty manifests at the file limit (about
// 46 MB of JSON each, in four sites) and eight diffs of them run at once
// through the API, on the local AWS stand-in. The Helm chart limits serve
// to 256 MiB; the goal is under 200 MiB. `make bench-memory` runs it.
//
//	go run ./bench/memory [-sites 4] [-releases 5] [-files 200000] [-diffs 8] [-bin PATH]
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"

	"github.com/deploybot/deploybot/bench/internal/memload"
)

func main() {
	var o memload.Options
	flag.IntVar(&o.Sites, "sites", 4, "sites")
	flag.IntVar(&o.Releases, "releases", 5, "manifests per site")
	flag.IntVar(&o.Files, "files", 200_000, "files per manifest")
	flag.IntVar(&o.Diffs, "diffs", 8, "diffs at once through the API")
	flag.StringVar(&o.Bin, "bin", "", "a deploybot binary to measure (default: built from this tree)")
	flag.Parse()
	o.Log = os.Stderr
	gomod, err := exec.Command("go", "env", "GOMOD").Output()
	if err != nil || strings.TrimSpace(string(gomod)) == "" {
		fmt.Fprintln(os.Stderr, "memory: finding the module root:", err)
		os.Exit(1)
	}
	o.Root = filepath.Dir(strings.TrimSpace(string(gomod)))
	res, err := memload.Run(context.Background(), o)
	if err != nil {
		fmt.Fprintln(os.Stderr, "memory:", err)
		os.Exit(1)
	}
	mib := func(n int64) string { return fmt.Sprintf("%.0f MiB", float64(n)/(1<<20)) }
	fmt.Printf("%s, %d cores, %s\n", time.Now().UTC().Format("2006-01-02"), runtime.NumCPU(), runtime.Version())
	fmt.Printf("manifests:            %d of %d files, %.1f MB of JSON each (in %d sites)\n", res.Manifests, o.Files, float64(res.ManifestBytes)/1e6, o.Sites)
	fmt.Printf("serve at rest:        %s RSS\n", mib(res.Baseline))
	fmt.Printf("reconcile:            recorded all in %s; peak RSS %s\n", res.SyncTime.Round(100*time.Millisecond), mib(res.PeakSync))
	if res.DiffAPI {
		fmt.Printf("%d diffs at once:      %d answered in %s (%d entries), %d refusals (a diff of the site running) asked again\n",
			o.Diffs, res.Diffs, res.DiffTime.Round(100*time.Millisecond), res.DiffEntries, res.Refused)
	} else {
		fmt.Printf("%d diffs at once:      this build has no diff API\n", o.Diffs)
	}
	fmt.Printf("peak RSS (VmHWM):     %s (goal: under 200 MiB; the chart's limit 256 MiB)\n", mib(res.Peak))
}
