// Package packaging holds the tests of what ships around the binary: the
// Dockerfile, the Helm chart and the release (GoReleaser and its workflow).
package packaging
