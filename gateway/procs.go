package gateway

import (
	"log/slog"
	"os"
	"runtime"
)

// ApplyProcs sets GOMAXPROCS from the `procs` key: n > 0 exactly n, 0 Go's default (one
// per CPU the process may use). A GOMAXPROCS environment variable wins over the key. It
// returns the value in effect. Gateway.Run calls it first; the setting is the process's
// and stays after Run returns.
//
// Why more processors than cores can help: Badger flushes memtables and compacts on
// goroutines of its own, several at once, each busy for up to seconds. Go's scheduler
// gives a busy goroutine its processor for 10 ms slices, round robin, so with one
// processor per core those goroutines held most of them and the pipeline's short-lived
// goroutines queued behind: at 15k requests/s on 2 cores the first level-0 compaction
// (~90 s in) cut throughput to 5–10k/s for ~6 s, p99 2.0–2.6 s over 120 s. With more
// processors than cores the kernel shares the cores between the threads and favours
// those that sleep often (the pipeline's): with `procs: 8` p99 over 120 s was 54–502 ms
// and over 60 s 43 ms (54–64 with 2). The price: ~10% less throughput flat out and
// ~15–20% more CPU at 15k/s, so it is not the default (docs/benchmarks/pipeline.md);
// with procs 0 the gateway raises it only while Badger flushes or compacts (compactionProcs).
func ApplyProcs(procs int, log *slog.Logger) int {
	if env := os.Getenv("GOMAXPROCS"); env != "" {
		n := runtime.GOMAXPROCS(0)
		if procs > 0 && procs != n {
			log.Info("GOMAXPROCS from the environment; procs ignored", "gomaxprocs", n, "procs", procs)
		}
		return n
	}
	if procs > 0 {
		runtime.GOMAXPROCS(procs)
	}
	return runtime.GOMAXPROCS(0)
}

// CompactionProcs is how many Go processors the gateway runs with while Badger flushes a
// memtable or has a compaction due or running, when `procs` is 0 and GOMAXPROCS is not in
// the environment (at least; Go's default if that is more). A flush lasts ~0.5 s, every
// ~22 s at 15k requests/s; a compaction seconds, every minute or two; outside them Go's
// default stands, so the flat-out rate is not taxed. Raising it for flushes too took
// the 60 s p99 at 15k/s from 38–133 ms to 33–64 ms, medians 80 and 39 (pipeline.md). See
// ApplyProcs for why more processors than cores shorten the tail.
const CompactionProcs = 8

// compactionProcs returns storage's OnCompaction hook for a gateway configured with
// procs, or nil when the setting is fixed (procs > 0, or GOMAXPROCS in the environment).
func compactionProcs(procs int, log *slog.Logger) func(busy bool) {
	if procs > 0 || os.Getenv("GOMAXPROCS") != "" {
		return nil
	}
	var base int
	return func(busy bool) {
		if busy {
			base = runtime.GOMAXPROCS(0)
			if n := max(base, CompactionProcs); n != base {
				runtime.GOMAXPROCS(n)
				log.Debug("badger flushing or compacting: more Go processors", "gomaxprocs", n)
			}
			return
		}
		if base > 0 && runtime.GOMAXPROCS(0) != base {
			runtime.GOMAXPROCS(base)
			log.Debug("badger idle: Go processors back", "gomaxprocs", base)
		}
	}
}
