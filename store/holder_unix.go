//go:build linux || darwin || freebsd || netbsd || openbsd || dragonfly

package store

import (
	"errors"
	"os"
	"syscall"
)

// holder is the mark a long-running process (serve, dev) keeps on a store
// it holds open: an exclusive flock on <path>.holder, released when the
// process closes the store or dies (the kernel drops flocks with their
// file). A command-line process that finds the mark does not wait for the
// store, which will not come free; one that does not find it waits out
// other command lines, each of which holds the file for milliseconds.
type holder struct{ f *os.File }

func holderPath(path string) string { return path + ".holder" }

// hold marks path as held by this process for as long as it is open. It
// waits for the lock: the caller holds the store's own lock, so the only
// other holders are command lines looking at the mark for a moment. A
// mark that cannot be made (a read-only directory around a mounted store
// file) is none: command lines then wait their 30 seconds before saying
// the store is held, as they did before marks.
func hold(path string) *holder {
	f, err := os.OpenFile(holderPath(path), os.O_RDWR|os.O_CREATE, 0o600)
	if err != nil {
		return nil
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil
	}
	return &holder{f: f}
}

func (h *holder) release() error {
	if h == nil {
		return nil
	}
	return h.f.Close()
}

// heldLong reports whether a long-running process holds path's store now.
// A mark that cannot be read (no file, no permission) says no: the wait
// for the store itself still bounds how long a command line waits.
func heldLong(path string) bool {
	f, err := os.Open(holderPath(path))
	if err != nil {
		return false
	}
	defer f.Close()
	err = syscall.Flock(int(f.Fd()), syscall.LOCK_SH|syscall.LOCK_NB)
	if err == nil {
		_ = syscall.Flock(int(f.Fd()), syscall.LOCK_UN)
		return false
	}
	return errors.Is(err, syscall.EWOULDBLOCK)
}
