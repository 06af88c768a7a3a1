//go:build unix

package wiring

import (
	"errors"
	"syscall"
)

// processAlive tells whether pid is a live process on this host: signal 0
// checks without sending anything; EPERM means it exists under another user.
func processAlive(pid int) bool {
	if pid <= 0 {
		return false
	}
	err := syscall.Kill(pid, 0)
	return err == nil || errors.Is(err, syscall.EPERM)
}

var aliveCheck = processAlive
