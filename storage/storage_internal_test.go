package storage

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendcore/sendcore/dispatch"
)

// TestWritebackFindsTheActiveValueLog guarantees that the background writeback
// (writeback.go) syncs the value-log file Badger is writing: the highest-numbered one,
// by number rather than name order, in a real data dir with event bodies in it.
func TestWritebackFindsTheActiveValueLog(t *testing.T) {
	dir := t.TempDir()
	for _, n := range []string{"000009.vlog", "000010.vlog", "1000000.vlog", "x.vlog", "2000000.mem"} {
		if err := os.WriteFile(filepath.Join(dir, n), nil, 0o600); err != nil {
			t.Fatal(err)
		}
	}
	if got := newestVlog(dir); filepath.Base(got) != "1000000.vlog" {
		t.Fatalf("newestVlog = %q, want 1000000.vlog", got)
	}
	if got := newestVlog(t.TempDir()); got != "" {
		t.Fatalf("newestVlog of an empty dir = %q", got)
	}

	dir = t.TempDir()
	db, err := Open(dir, Options{}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	at := time.Unix(1700000000, 0).UTC()
	evs := make([]dispatch.Event, 50)
	for i := range evs {
		evs[i] = dispatch.Event{ID: "w" + strings.Repeat("x", i), Status: dispatch.StatusSubmitted, TS: at, Reason: strings.Repeat("r", 200)}
	}
	if _, err := db.AppendSeqs(evs); err != nil {
		t.Fatal(err)
	}
	w := &writeback{dir: dir}
	defer w.close()
	w.flush()
	if w.f == nil || w.name != newestVlog(dir) || !strings.HasSuffix(w.name, ".vlog") {
		t.Fatalf("writeback holds %q (open %v), want the newest value log %q", w.name, w.f != nil, newestVlog(dir))
	}
}
