package testaws

import (
	"os"
	"path/filepath"
	"syscall"
)

// xattrsWork reports whether dir's file system keeps user extended
// attributes, where versitygw's posix backend stores object metadata by
// default (one setxattr per attribute).
func xattrsWork(dir string) bool {
	p := filepath.Join(dir, ".xattr-probe")
	if err := os.WriteFile(p, nil, 0o600); err != nil {
		return false
	}
	defer os.Remove(p)
	return syscall.Setxattr(p, "user.deploybot-probe", []byte("1"), 0) == nil
}
