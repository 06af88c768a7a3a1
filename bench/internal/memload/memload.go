// Package memload measures the peak memory of `deploybot serve` while it
// reads large manifests: serve runs as its own process against the local
// AWS stand-in; manifests at the file limit (releases.MaxManifestFiles
// entries, about 46 MB of JSON each) are published into its sites; its
// reconcile records them; then diffs of them run at once through the
// API. The peak is the process's VmHWM (/proc/PID/status), so it counts
// everything serve touched, not only the Go heap.
package memload

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// Options say what to load serve with; zero values take the defaults.
type Options struct {
	// Bin is a deploybot binary to run; empty: built from Root.
	Bin string
	// Root is the module root to build from (the current directory's
	// module when empty).
	Root string
	// Sites and Releases (per site): 4 x 5, twenty manifests.
	Sites, Releases int
	// Files per manifest: releases.MaxManifestFiles.
	Files int
	// Diffs run at once through the API: 8.
	Diffs int
	// Log, when set, hears what the run is doing.
	Log io.Writer
}

// Result is what was measured. Sizes are bytes.
type Result struct {
	Manifests     int
	ManifestBytes int64 // the largest manifest's JSON
	Baseline      int64 // VmRSS once serve answers, before any manifest
	PeakSync      int64 // VmHWM once reconcile recorded every release
	Peak          int64 // VmHWM at the end: after the diffs too
	SyncTime      time.Duration
	DiffTime      time.Duration
	Diffs         int // diffs that answered
	Refused       int // 409 answers (a diff of the site was running), each asked again
	DiffAPI       bool
	DiffEntries   int // changed + added + removed, over every diff
}

func (o *Options) defaults() {
	if o.Sites <= 0 {
		o.Sites = 4
	}
	if o.Releases <= 0 {
		o.Releases = 5
	}
	if o.Files <= 0 {
		o.Files = releases.MaxManifestFiles
	}
	if o.Diffs <= 0 {
		o.Diffs = 8
	}
	if o.Log == nil {
		o.Log = io.Discard
	}
}

// Run measures serve under the load o describes.
func Run(ctx context.Context, o Options) (*Result, error) {
	o.defaults()
	dir, err := os.MkdirTemp("", "deploybot-memload-")
	if err != nil {
		return nil, err
	}
	defer os.RemoveAll(dir)
	bin := o.Bin
	if bin == "" {
		if bin, err = build(ctx, o.Root, dir); err != nil {
			return nil, err
		}
	}
	aws3, err := localaws.New(localaws.Options{DataDir: filepath.Join(dir, "aws")})
	if err != nil {
		return nil, err
	}
	api := httptest.NewServer(aws3.Handler())
	defer api.Close()
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: api.URL, Credentials: cloud.StaticCredentials("a", "b")})
	if err != nil {
		return nil, err
	}
	listen, err := freeAddr()
	if err != nil {
		return nil, err
	}
	const token = "memload-token"
	cfgPath, sites, err := writeConfig(dir, api.URL, listen, token, aws3, o.Sites)
	if err != nil {
		return nil, err
	}
	srv, err := startServe(bin, cfgPath)
	if err != nil {
		return nil, err
	}
	defer srv.stop()
	c := client{base: "http://" + listen, token: token}
	if err := c.waitReady(ctx, srv.exited); err != nil {
		return nil, fmt.Errorf("%v\n%s", err, srv.log.String())
	}
	return measure(ctx, o, s3c, c, srv, sites)
}

// measure publishes the manifests, waits for serve to record them, runs
// the diffs, and reads serve's memory after each step.
func measure(ctx context.Context, o Options, s3c *s3.Client, c client, srv *served, sites []releases.Site) (*Result, error) {
	res := &Result{}
	var err error
	pid := srv.cmd.Process.Pid
	if res.Baseline, err = procStatus(pid, "VmRSS"); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "serve answers, RSS %d MiB; publishing %d manifests of %d files\n", res.Baseline>>20, o.Sites*o.Releases, o.Files)
	if err := publishManifests(ctx, s3c, sites, o, res); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "published, %.1f MB each; waiting for reconcile to record them\n", float64(res.ManifestBytes)/1e6)
	start := time.Now()
	if err := waitRecorded(ctx, c, srv, sites, o.Releases); err != nil {
		return nil, err
	}
	res.SyncTime = time.Since(start)
	if res.PeakSync, err = procStatus(pid, "VmHWM"); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "recorded in %s, peak RSS %d MiB; %d diffs at once\n", res.SyncTime.Round(time.Second), res.PeakSync>>20, o.Diffs)
	start = time.Now()
	err = runDiffs(ctx, c, sites, o, res)
	res.DiffTime = time.Since(start)
	if err != nil {
		return nil, err
	}
	if res.Peak, err = procStatus(pid, "VmHWM"); err != nil {
		return nil, err
	}
	fmt.Fprintf(o.Log, "%d diffs in %s (%d refusals asked again), peak RSS %d MiB\n", res.Diffs, res.DiffTime.Round(time.Second), res.Refused, res.Peak>>20)
	return res, nil
}

// build builds deploybot from the module at root into dir.
func build(ctx context.Context, root, dir string) (string, error) {
	bin := filepath.Join(dir, "deploybot")
	cmd := exec.CommandContext(ctx, "go", "build", "-o", bin, "./cmd/deploybot")
	cmd.Dir = root
	if out, err := cmd.CombinedOutput(); err != nil {
		return "", fmt.Errorf("building deploybot: %v\n%s", err, out)
	}
	return bin, nil
}

// writeConfig makes n sites in one bucket of the stand-in and writes the
// configuration serve runs with.
func writeConfig(dir, apiURL, listen, token string, aws3 *localaws.Server, n int) (string, []releases.Site, error) {
	var sites []releases.Site
	var cfg strings.Builder
	fmt.Fprintf(&cfg, "store: {path: %q}\naws: {endpoint: %q}\nhttp: {listen: %q, api_token: %q}\nreconcile: {interval: 1s}\nsites:\n",
		filepath.Join(dir, "deploybot.db"), apiURL, listen, token)
	for i := range n {
		site := releases.Site{Name: fmt.Sprintf("site%d", i), Bucket: "memload", Prefix: fmt.Sprintf("site%d/", i), DistributionID: fmt.Sprintf("EMEM%d", i)}
		if err := aws3.EnsureSite(site.DistributionID, site.Bucket); err != nil {
			return "", nil, err
		}
		sites = append(sites, site)
		// No scheduled prune: it would delete what the diffs read.
		fmt.Fprintf(&cfg, "  - {name: %s, bucket: %s, prefix: %s, distribution_id: %s, retention: {schedule: \"\"}}\n", site.Name, site.Bucket, site.Prefix, site.DistributionID)
	}
	cfgPath := filepath.Join(dir, "deploybot.yaml")
	return cfgPath, sites, os.WriteFile(cfgPath, []byte(cfg.String()), 0o644)
}

// served is `deploybot serve` running as its own process.
type served struct {
	cmd    *exec.Cmd
	log    *bytes.Buffer
	exited chan error
}

func startServe(bin, cfgPath string) (*served, error) {
	cmd := exec.Command(bin, "serve", "--config", cfgPath)
	cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=b", "AWS_EC2_METADATA_DISABLED=true")
	srv := &served{cmd: cmd, log: &bytes.Buffer{}, exited: make(chan error, 1)}
	cmd.Stdout, cmd.Stderr = srv.log, srv.log
	if err := cmd.Start(); err != nil {
		return nil, err
	}
	go func() { srv.exited <- cmd.Wait() }()
	return srv, nil
}

// stop interrupts serve, killing it after 10 s.
func (srv *served) stop() {
	_ = srv.cmd.Process.Signal(os.Interrupt)
	select {
	case <-srv.exited:
	case <-time.After(10 * time.Second):
		_ = srv.cmd.Process.Kill()
		<-srv.exited
	}
}

func publishManifests(ctx context.Context, s3c *s3.Client, sites []releases.Site, o Options, res *Result) error {
	for _, site := range sites {
		for r := range o.Releases {
			raw := manifest(version(r), r, o.Files)
			res.ManifestBytes = max(res.ManifestBytes, int64(len(raw)))
			if _, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(site.ManifestKey(version(r))),
				Body: bytes.NewReader(raw), ContentLength: aws.Int64(int64(len(raw)))}); err != nil {
				return err
			}
			res.Manifests++
		}
	}
	return nil
}

// waitRecorded waits until serve lists n releases of every site.
func waitRecorded(ctx context.Context, c client, srv *served, sites []releases.Site, n int) error {
	for _, site := range sites {
		for {
			var vs []json.RawMessage
			if err := c.get(ctx, "/api/v1/sites/"+site.Name+"/releases", &vs); err != nil {
				return fmt.Errorf("%v\n%s", err, srv.log.String())
			}
			if len(vs) == n {
				break
			}
			select {
			case err := <-srv.exited:
				return fmt.Errorf("serve exited: %v\n%s", err, srv.log.String())
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(200 * time.Millisecond):
			}
		}
	}
	return nil
}

// runDiffs runs o.Diffs diffs at once, round the sites, each of a pair of
// releases; one refused because a diff of its site runs asks again, as a
// person would, until it answers.
func runDiffs(ctx context.Context, c client, sites []releases.Site, o Options, res *Result) error {
	var mu sync.Mutex
	var errs []error
	var wg sync.WaitGroup
	res.DiffAPI = true
	for i := range o.Diffs {
		site := sites[i%len(sites)]
		from, to := version(i%o.Releases), version((i+1)%o.Releases)
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				var d releases.Diff
				err := c.get(ctx, "/api/v1/sites/"+site.Name+"/diff?from="+from+"&to="+to, &d)
				var he *httpError
				mu.Lock()
				switch {
				case errors.As(err, &he) && he.status == http.StatusConflict:
					res.Refused++
					mu.Unlock()
					time.Sleep(100 * time.Millisecond)
					continue
				case errors.As(err, &he) && he.status == http.StatusNotFound && strings.Contains(he.body, "no such route"):
					res.DiffAPI = false
				case err != nil:
					errs = append(errs, err)
				default:
					res.Diffs++
					res.DiffEntries += len(d.Added) + len(d.Removed) + len(d.Changed)
				}
				mu.Unlock()
				return
			}
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func version(r int) string { return fmt.Sprintf("v%d", r+1) }

// manifest is a manifest as publish writes it (path, size, SHA-256,
// headers: about 230 bytes an entry). Each release changes a quarter of
// its files (hash and size) and renames one in a hundred, so a diff of
// two neighbours lists about half the files as changed and 2% as added
// or removed: tens of thousands of entries.
func manifest(v string, r, files int) []byte {
	var b bytes.Buffer
	b.Grow(files * 235)
	fmt.Fprintf(&b, `{"version":%q,"commit":"%040x","published_at":"2026-01-01T00:%02d:00Z","files":[`, v, r, r)
	for i := range files {
		if i > 0 {
			b.WriteByte(',')
		}
		gen := 0
		if (i+r)%4 == 0 {
			gen = r // changed in this release
		}
		name := "page"
		if (i+r)%100 == 0 {
			name = "p" + strconv.Itoa(r) // renamed: added here, removed from the one before
		}
		fmt.Fprintf(&b, `{"path":"assets/section-%03d/%s-%06d.html","size":%d,"sha256":"%056x%08x","content_type":"text/html; charset=utf-8","cache_control":"public, max-age=0, must-revalidate"}`,
			i%1000, name, i, 1000+i+gen, i, gen)
	}
	b.WriteString("]}")
	return b.Bytes()
}

// procStatus reads one field of /proc/PID/status, in bytes.
func procStatus(pid int, field string) (int64, error) {
	raw, err := os.ReadFile(fmt.Sprintf("/proc/%d/status", pid))
	if err != nil {
		return 0, fmt.Errorf("reading the memory of serve (Linux only): %w", err)
	}
	for _, line := range strings.Split(string(raw), "\n") {
		if v, ok := strings.CutPrefix(line, field+":"); ok {
			kb, err := strconv.ParseInt(strings.TrimSuffix(strings.TrimSpace(v), " kB"), 10, 64)
			return kb << 10, err
		}
	}
	return 0, fmt.Errorf("no %s in /proc/%d/status", field, pid)
}

func freeAddr() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	return ln.Addr().String(), nil
}

type client struct{ base, token string }

type httpError struct {
	status int
	body   string
}

func (e *httpError) Error() string { return fmt.Sprintf("HTTP %d: %s", e.status, e.body) }

func (c client) get(ctx context.Context, path string, v any) error {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, c.base+path, nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+c.token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		raw, _ := io.ReadAll(io.LimitReader(resp.Body, 4096))
		return &httpError{resp.StatusCode, string(raw)}
	}
	return json.NewDecoder(resp.Body).Decode(v)
}

func (c client) waitReady(ctx context.Context, exited <-chan error) error {
	for {
		resp, err := http.Get(c.base + "/healthz")
		if err == nil {
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return nil
			}
		}
		select {
		case err := <-exited:
			return fmt.Errorf("serve exited: %v", err)
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(100 * time.Millisecond):
		}
	}
}
