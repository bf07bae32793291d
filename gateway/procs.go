package gateway

import (
	"log/slog"
	"os"
	"runtime"
)

// MinAutoProcs is the fewest Go processors (GOMAXPROCS) that `procs: 0` runs with.
//
// Badger flushes memtables and compacts on goroutines of its own, several at once, each
// busy for up to seconds. Go's scheduler gives a busy goroutine its processor for 10 ms
// slices, round robin, so with one processor per core those goroutines held most of them
// and the pipeline's short-lived goroutines queued behind: at 15k requests/s on 2 cores
// the first level-0 compaction (~90 s in) cut throughput to 5–10k/s for ~6 s, p99 2.0–2.6 s
// over 120–180 s. With more processors than cores the kernel shares the cores between
// the threads, and it favours threads that sleep often (the pipeline's) over the ones
// that do not (Badger's): p99 over 120 s was 54–502 ms with 8 processors (4: 1.4 s; 16:
// 131–460 ms, and 45 ms instead of 26–36 in 16 s runs), for ~15–20% more CPU at that
// rate and no loss flat out (docs/benchmarks/pipeline.md#session-4).
const MinAutoProcs = 8

// ApplyProcs sets GOMAXPROCS from the `procs` key: n > 0 exactly n; 0 at least
// MinAutoProcs (more on larger machines: Go's default then). A GOMAXPROCS environment
// variable wins over the key. It returns the value in effect.
func ApplyProcs(procs int, log *slog.Logger) int {
	if env := os.Getenv("GOMAXPROCS"); env != "" {
		n := runtime.GOMAXPROCS(0)
		log.Info("GOMAXPROCS from the environment; procs ignored", "gomaxprocs", n)
		return n
	}
	n := procs
	if n <= 0 {
		n = max(runtime.GOMAXPROCS(0), MinAutoProcs)
	}
	runtime.GOMAXPROCS(n)
	return n
}
