package storage

import (
	"context"
	"os"
	"path/filepath"
	"strconv"
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
	if lo, hi, ok := vlogFiles.span(dir); !ok || lo != 9 || hi != 1000000 || filepath.Base(vlogFiles.path(dir, hi)) != "1000000.vlog" {
		t.Fatalf("value logs %d..%d (%v), want 9..1000000 (1000000.vlog: by number, not by name)", lo, hi, ok)
	}
	if _, _, ok := vlogFiles.span(t.TempDir()); ok {
		t.Fatal("value logs found in an empty dir")
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
	_, newest, _ := vlogFiles.span(dir)
	if w.f == nil || w.f.Name() != vlogFiles.path(dir, newest) || !strings.HasSuffix(w.f.Name(), ".vlog") {
		t.Fatalf("writeback holds file %d (open %v), want the newest value log %d", w.n, w.f != nil, newest)
	}
	// Badger starts the next file: the writeback moves to it (found by its number).
	next := vlogFiles.path(dir, newest+1)
	if err := os.WriteFile(next, nil, 0o600); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(next)
	w.flush()
	if w.f == nil || w.f.Name() != next {
		t.Fatalf("after %s appeared, writeback holds file %d (open %v)", filepath.Base(next), w.n, w.f != nil)
	}
}

// TestOnCompactionReportsBadgersCompactions guarantees that Run tells OnCompaction when
// Badger has a compaction due or running and when that is over: writes that fill level 0
// (memtables of 1 MiB) bring true, and Badger's own compaction then brings false.
func TestOnCompactionReportsBadgersCompactions(t *testing.T) {
	if testing.Short() {
		t.Skip("fills level 0")
	}
	states := make(chan bool, 16)
	db, err := Open(t.TempDir(), Options{MemTableBytes: 1 << 20, OnCompaction: func(b bool) { states <- b }}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- db.Run(ctx) }()
	defer func() { cancel(); <-ran }()

	at := time.Unix(1700000000, 0).UTC()
	deadline := time.After(60 * time.Second)
	for i := 0; ; i++ {
		if _, _, err := db.Claim("c-"+strconv.Itoa(i)+strings.Repeat("p", 40), "test", at); err != nil {
			t.Fatal(err)
		}
		select {
		case b := <-states:
			if !b {
				t.Fatal("OnCompaction(false) before any true")
			}
			goto due
		case <-deadline:
			t.Fatalf("no compaction reported after %d claims", i)
		default:
		}
	}
due:
	select {
	case b := <-states:
		if b {
			t.Fatal("OnCompaction(true) twice")
		}
	case <-time.After(60 * time.Second):
		t.Fatal("the compaction was never reported over")
	}
}

// TestFlushPendingSeesBadgersMemtableFiles guarantees what flushPending relies on in
// Badger's on-disk format: one NNNNN.mem file per memtable, a second one from the moment
// a full memtable waits for its flush until the flush is written. A Badger that named or
// kept them otherwise fails here instead of silently never reporting a flush.
func TestFlushPendingSeesBadgersMemtableFiles(t *testing.T) {
	db, err := Open(t.TempDir(), Options{MemTableBytes: 1 << 20}, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if m, _ := filepath.Glob(filepath.Join(db.dir, "*.mem")); len(m) != 1 || db.flushPending() {
		t.Fatalf("idle: memtable files %v, flushPending %v", m, db.flushPending())
	}
	// Two flushes one after the other: flushPending follows the files by number, so the
	// second is seen only if it moved on from the first's.
	at := time.Unix(1700000000, 0).UTC()
	i := 0
	for flush := 1; flush <= 2; flush++ {
		for deadline := time.Now().Add(60 * time.Second); !db.flushPending(); i++ {
			if time.Now().After(deadline) {
				t.Fatalf("flush %d not seen after %d claims of a 1 MiB memtable", flush, i)
			}
			if _, _, err := db.Claim("c-"+strconv.Itoa(i)+strings.Repeat("p", 40), "test", at); err != nil {
				t.Fatal(err)
			}
		}
		for deadline := time.Now().Add(60 * time.Second); db.flushPending(); time.Sleep(5 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatalf("flush %d never ended", flush)
			}
		}
	}
}
