package gateway

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	"go.uber.org/goleak"
)

// TestRunStopsEverything guarantees that Run starts the parts, signals readiness, and
// returns on cancel with no goroutine left behind.
func TestRunStopsEverything(t *testing.T) {
	// fasthttp's idle-worker cleaner (workerPool.Start.func2) notices Shutdown only after
	// its current sleep of MaxIdleWorkerDuration; it then returns by itself. It is the one
	// goroutine of a dependency that outlives Run, by at most that duration.
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent(),
		goleak.IgnoreAnyFunction("github.com/valyala/fasthttp.(*workerPool).Start.func2"))
	cfg, err := LoadConfig("", nil, []string{"data_dir=" + t.TempDir(), "control.addr=127.0.0.1:0"})
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	select {
	case <-gw.Ready():
	case err := <-done:
		t.Fatalf("Run returned before ready: %v", err)
	case <-time.After(20 * time.Second):
		t.Fatal("not ready within 20s")
	}
	if len(gw.Brokers()) == 0 {
		t.Fatal("embedded broker has no address")
	}
	cancel()
	select {
	case err := <-done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return within 10s of cancel")
	}
}
