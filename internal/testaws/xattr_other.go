//go:build !linux

package testaws

// xattrsWork is false off Linux: versitygw then keeps metadata in a
// sidecar directory, which works everywhere.
func xattrsWork(string) bool { return false }
