package gateway

import (
	"io"
	"log/slog"
	"runtime"
	"testing"
)

// TestApplyProcs guarantees the `procs` key's meaning: n > 0 is exactly n, 0 leaves the
// setting as it is, and a GOMAXPROCS environment variable wins over the key.
func TestApplyProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if n := ApplyProcs(3, log); n != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Fatalf("procs 3: got %d, GOMAXPROCS %d", n, runtime.GOMAXPROCS(0))
	}
	if n := ApplyProcs(0, log); n != 3 || runtime.GOMAXPROCS(0) != 3 {
		t.Fatalf("procs 0 after 3: got %d, GOMAXPROCS %d, want it left at 3", n, runtime.GOMAXPROCS(0))
	}
	runtime.GOMAXPROCS(5)
	t.Setenv("GOMAXPROCS", "5")
	if n := ApplyProcs(7, log); n != 5 || runtime.GOMAXPROCS(0) != 5 {
		t.Fatalf("with GOMAXPROCS=5 in the environment, procs 7: got %d, GOMAXPROCS %d", n, runtime.GOMAXPROCS(0))
	}
}

// TestCompactionProcs guarantees the compaction hook's contract: while a compaction runs
// Go has at least CompactionProcs processors, afterwards the setting before it again; no
// hook when procs is fixed by the key or the environment.
func TestCompactionProcs(t *testing.T) {
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	if compactionProcs(4, log) != nil {
		t.Fatal("procs 4: a hook, want none")
	}
	runtime.GOMAXPROCS(2)
	hook := compactionProcs(0, log)
	if hook == nil {
		t.Fatal("procs 0: no hook")
	}
	hook(true)
	if n := runtime.GOMAXPROCS(0); n < CompactionProcs {
		t.Fatalf("during a compaction GOMAXPROCS %d, want at least %d", n, CompactionProcs)
	}
	hook(false)
	if n := runtime.GOMAXPROCS(0); n != 2 {
		t.Fatalf("after the compaction GOMAXPROCS %d, want 2 again", n)
	}
	t.Setenv("GOMAXPROCS", "2")
	if compactionProcs(0, log) != nil {
		t.Fatal("GOMAXPROCS in the environment: a hook, want none")
	}
}
