// Package tools finds, and installs when missing, what the benchmarks run:
// versitygw (go install) and the peers they are compared with (Debian's
// packages).
package tools

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"

	"github.com/aws/aws-sdk-go-v2/service/s3"

	"github.com/deploybot/deploybot/cloud"
	"github.com/deploybot/deploybot/internal/testaws"
)

// VersityGWVersion is the versitygw the benchmarks and tests run (the
// Makefile's VERSITYGW_VERSION).
const VersityGWVersion = "v1.8.0"

// VersityGW finds versitygw, installing it with go install when missing.
func VersityGW() (string, error) {
	if p := testaws.VersityGWPath(); p != "" {
		return p, nil
	}
	fmt.Fprintf(os.Stderr, "bench: versitygw not found; go install github.com/versity/versitygw/cmd/versitygw@%s\n", VersityGWVersion)
	if out, err := exec.Command("go", "install", "github.com/versity/versitygw/cmd/versitygw@"+VersityGWVersion).CombinedOutput(); err != nil {
		return "", fmt.Errorf("installing versitygw: %v\n%s", err, out)
	}
	if p := testaws.VersityGWPath(); p != "" {
		return p, nil
	}
	return "", fmt.Errorf("versitygw installed but not found in $GOBIN or $GOPATH/bin")
}

// Debian finds a peer tool as Debian packages it, installing the
// package when it is missing. /usr/bin comes first: the peers are
// Debian's builds, and a PATH may put another (say, a pip-installed awscli
// 1) ahead of them.
func Debian(name, pkg string) (string, error) {
	if p := filepath.Join("/usr/bin", name); isExecutable(p) {
		return p, nil
	}
	install := asRoot("apt-get", "install", "-y", "-q", pkg)
	fmt.Fprintf(os.Stderr, "bench: %s not in /usr/bin; running %s\n", name, strings.Join(install.Args, " "))
	if out, err := install.CombinedOutput(); err != nil {
		// A stale package index is the usual reason; refresh it once.
		if uout, uerr := asRoot("apt-get", "update", "-q").CombinedOutput(); uerr != nil {
			return "", fmt.Errorf("installing %s: %v\n%s\n%s", pkg, err, out, uout)
		}
		if out, err := asRoot("apt-get", "install", "-y", "-q", pkg).CombinedOutput(); err != nil {
			return "", fmt.Errorf("installing %s: %v\n%s", pkg, err, out)
		}
	}
	if p := filepath.Join("/usr/bin", name); isExecutable(p) {
		return p, nil
	}
	return exec.LookPath(name)
}

// asRoot runs a package manager command, through sudo when not root.
func asRoot(args ...string) *exec.Cmd {
	if os.Geteuid() != 0 {
		args = append([]string{"sudo", "-n"}, args...)
	}
	cmd := exec.Command(args[0], args[1:]...)
	cmd.Env = append(os.Environ(), "DEBIAN_FRONTEND=noninteractive")
	return cmd
}

func isExecutable(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// VersityS3 is an S3 client of versitygw at endpoint, as testaws starts
// it (its access key).
func VersityS3(ctx context.Context, endpoint string) (*s3.Client, error) {
	s3c, _, err := cloud.NewClients(ctx, cloud.Settings{Region: "us-east-1", Endpoint: endpoint,
		Credentials: cloud.StaticCredentials(testaws.AccessKey, testaws.SecretKey)})
	return s3c, err
}
