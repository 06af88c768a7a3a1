//go:build !unix

package wiring

// Without a cheap liveness check for a pid, a runner is judged by its
// heartbeat alone.
var aliveCheck func(pid int) bool
