//go:build race

package localaws

// raceDetector: the race detector slows the JavaScript interpreter some
// twentyfold, so the simulations with thousands of visitors run a fifth
// of them under it (their full size runs without it: make test-short).
const raceDetector = true
