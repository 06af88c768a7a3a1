//go:build !race

package localaws

// raceDetector: see race_on_test.go.
const raceDetector = false
