//go:build controlbench

package control

// A control plane for load generators (docs/benchmarks/control.md): built only with
// -tags controlbench. Environment:
//
//	SENDCORE_CONTROL_BENCH_ADDR     listen address (default 127.0.0.1:18080)
//	SENDCORE_CONTROL_BENCH_BACKEND  "map" (default) or "storage" (Badger in a temp dir)
//	SENDCORE_CONTROL_BENCH_SECONDS  how long to serve (default 60)
//	SENDCORE_CONTROL_BENCH_OPTOUTS  opt-outs preloaded (default 100000): +35840{0000000+i}, sms

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

func envOr(k, def string) string {
	if v := os.Getenv(k); v != "" {
		return v
	}
	return def
}

func TestBenchServer(t *testing.T) {
	addr := envOr("SENDCORE_CONTROL_BENCH_ADDR", "127.0.0.1:18080")
	secs, _ := strconv.Atoi(envOr("SENDCORE_CONTROL_BENCH_SECONDS", "60"))
	n, _ := strconv.Atoi(envOr("SENDCORE_CONTROL_BENCH_OPTOUTS", "100000"))
	var store OptOutStore
	switch envOr("SENDCORE_CONTROL_BENCH_BACKEND", "map") {
	case "map":
		store = newMemOptOuts()
	case "storage":
		db, err := storage.Open(t.TempDir(), storage.Options{}, slogDiscard(), nil)
		if err != nil {
			t.Fatal(err)
		}
		defer db.Close()
		store = db
	default:
		t.Fatal("SENDCORE_CONTROL_BENCH_BACKEND: map or storage")
	}
	start := time.Now()
	for i := 0; i < n; i++ {
		o := dispatch.OptOut{Tenant: "default", Channel: "sms", Address: fmt.Sprintf("+35840%07d", i), OptedOut: true, Source: "bench", TS: time.Now()}
		if err := store.SetOptOut(o); err != nil {
			t.Fatal(err)
		}
	}
	t.Logf("preloaded %d opt-outs in %v", n, time.Since(start))
	cfg := DefaultConfig()
	cfg.Addr = addr
	s, err := New(cfg, Backend{OptOuts: store, LookupEnv: func(string) (string, bool) { return adminTok, true }}, slogDiscard(), nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), time.Duration(secs)*time.Second)
	defer cancel()
	fmt.Printf("serving on %s token %s\n", s.Addr(), adminTok)
	if err := s.Run(ctx); err != nil {
		t.Fatal(err)
	}
}
