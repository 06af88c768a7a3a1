//go:build race

package cloud_test

// raceDetector: the race detector slows the stand-in's JavaScript
// interpreter some twentyfold, so the simulations with thousands of
// visitors run a fifth of them under it (their full size runs without
// it: make test-short).
const raceDetector = true
