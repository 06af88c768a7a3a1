package main

import (
	"bytes"
	"context"
	"fmt"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"syscall"

	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/localaws"
	"github.com/deploybot/deploybot/releases"
)

// manifestRSS measures the peak memory of a deploybot process that reads
// a manifest at the limits (MaxManifestFiles files, with paths, sizes,
// hashes and headers as publish writes them): `deploybot versions` records
// an unknown release exactly as serve's reconcile does. It returns the
// manifest's size and the peak RSS, in bytes, with that manifest and with
// a one-file one, for comparison.
func manifestRSS(ctx context.Context) (manifestBytes int, peak, baseline int64, err error) {
	dir, err := os.MkdirTemp("", "deploybot-manifest-rss-")
	if err != nil {
		return 0, 0, 0, err
	}
	defer os.RemoveAll(dir)
	bin := filepath.Join(dir, "deploybot")
	root, err := moduleRoot()
	if err != nil {
		return 0, 0, 0, err
	}
	build := exec.Command("go", "build", "-o", bin, "./cmd/deploybot")
	build.Dir = root
	if out, err := build.CombinedOutput(); err != nil {
		return 0, 0, 0, fmt.Errorf("building deploybot: %v\n%s", err, out)
	}
	srv, err := localaws.New(localaws.Options{DataDir: filepath.Join(dir, "aws")})
	if err != nil {
		return 0, 0, 0, err
	}
	if err := srv.EnsureSite("ERSS", "rss"); err != nil {
		return 0, 0, 0, err
	}
	api := httptest.NewServer(srv.Handler())
	defer api.Close()
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: api.URL, Credentials: cloud.StaticCredentials("a", "b")})
	if err != nil {
		return 0, 0, 0, err
	}
	site := releases.Site{Name: "www", Bucket: "rss", Prefix: "www/"}
	put := func(version string, files int) (int, error) {
		var b bytes.Buffer
		fmt.Fprintf(&b, `{"version":%q,"published_at":"2026-01-01T00:00:00Z","files":[`, version)
		for i := range files {
			if i > 0 {
				b.WriteByte(',')
			}
			fmt.Fprintf(&b, `{"path":"assets/section-%03d/page-%06d.html","size":%d,"sha256":"%064x","content_type":"text/html; charset=utf-8","cache_control":"public, max-age=0, must-revalidate"}`,
				i%1000, i, 1000+i, i)
		}
		b.WriteString("]}")
		_, err := s3c.PutObject(ctx, &s3.PutObjectInput{Bucket: aws.String(site.Bucket), Key: aws.String(site.ManifestKey(version)), Body: bytes.NewReader(b.Bytes())})
		return b.Len(), err
	}
	cfg := filepath.Join(dir, "deploybot.yaml")
	measure := func(store string) (int64, error) {
		body := fmt.Sprintf("store: {path: %q}\naws: {endpoint: %q}\nsites:\n  - {name: www, bucket: rss, prefix: www/, distribution_id: ERSS}\n", filepath.Join(dir, store), api.URL)
		if err := os.WriteFile(cfg, []byte(body), 0o644); err != nil {
			return 0, err
		}
		cmd := exec.Command(bin, "versions", "--config", cfg, "--json")
		cmd.Env = append(os.Environ(), "AWS_ACCESS_KEY_ID=a", "AWS_SECRET_ACCESS_KEY=b", "AWS_EC2_METADATA_DISABLED=true")
		if out, err := cmd.CombinedOutput(); err != nil {
			return 0, fmt.Errorf("deploybot versions: %v\n%s", err, out)
		}
		ru, ok := cmd.ProcessState.SysUsage().(*syscall.Rusage)
		if !ok {
			return 0, fmt.Errorf("no resource usage on this system")
		}
		return ru.Maxrss * 1024, nil // Linux reports KiB
	}
	if _, err := put("small", 1); err != nil {
		return 0, 0, 0, err
	}
	if baseline, err = measure("small.db"); err != nil {
		return 0, 0, 0, err
	}
	if manifestBytes, err = put("large", releases.MaxManifestFiles); err != nil {
		return 0, 0, 0, err
	}
	peak, err = measure("large.db")
	return manifestBytes, peak, baseline, err
}
