//go:build !race

package cloud_test

// raceDetector: see race_on_test.go.
const raceDetector = false
