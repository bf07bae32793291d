//go:build race

package kafka_test

// raceEnabled is true under the race detector.
const raceEnabled = true
