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
