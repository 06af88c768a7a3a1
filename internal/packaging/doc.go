// Package packaging holds the tests of what ships around the binary: the
// Dockerfile and the Helm chart.
package packaging
