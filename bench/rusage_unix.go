//go:build unix

package bench

import (
	"runtime"
	"syscall"
	"time"
)

// SampleUsage returns the process's CPU time (user + system, getrusage self) and peak RSS
// (ru_maxrss: kilobytes on Linux, bytes on macOS).
func SampleUsage() Usage {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return Usage{}
	}
	cpu := time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	rss := int64(ru.Maxrss)
	if runtime.GOOS != "darwin" && runtime.GOOS != "ios" {
		rss *= 1024
	}
	return Usage{CPU: cpu, PeakRSSBytes: rss}
}
