package storage

import (
	"bytes"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// TestOptOutsOfAnEarlierDataDirAreMoved guarantees that opt-outs stored under the
// earlier key prefix are still found after an upgrade (moved once at Open, none left
// behind), with their source and time, and counted once.
func TestOptOutsOfAnEarlierDataDirAreMoved(t *testing.T) {
	dir := t.TempDir()
	db, err := Open(dir, Options{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	const n = 45000 // more than one batch of the move
	wb := db.bdb.NewWriteBatch()
	for i := range n {
		k := appendOptKey(nil, "default", 's', fmt.Sprintf("+35840%07d", i))
		k[0] = pOptOutV1
		if err := wb.Set(k, appendOptValue(nil, ts, "import")); err != nil {
			t.Fatal(err)
		}
	}
	if err := wb.Flush(); err != nil {
		t.Fatal(err)
	}
	// A half-done earlier move: one record in both places.
	k := appendOptKey(nil, "default", 's', fmt.Sprintf("+35840%07d", 7))
	if err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Set(k, appendOptValue(nil, ts, "import")) }); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	// Written under the API's back: the saved count and filter do not know them.
	if err := os.Remove(filepath.Join(dir, optStateFile)); err != nil {
		t.Fatal(err)
	}

	db, err = Open(dir, Options{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	for _, i := range []int{0, 7, n - 1} {
		ok, err := db.OptedOut("default", dispatch.ChannelSMS, fmt.Sprintf("+35840%07d", i))
		if err != nil || !ok {
			t.Fatalf("opt-out %d not found after the move (%v)", i, err)
		}
	}
	if got := db.optCount.Load(); got != n {
		t.Fatalf("%d opt-outs counted, want %d", got, n)
	}
	left := 0
	_ = db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = []byte{pOptOutV1}
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			left++
		}
		return nil
	})
	if left != 0 {
		t.Fatalf("%d records left under the earlier prefix", left)
	}
	var csv bytes.Buffer
	if err := db.ExportOptOutsCSV(&csv); err != nil {
		t.Fatal(err)
	}
	if lines := strings.Count(csv.String(), "\n"); lines < n || !strings.Contains(csv.String(), "import") || !strings.Contains(csv.String(), "2026-01-02") {
		t.Fatalf("export after the move: %d lines, source or time lost: %.200s", lines, csv.String())
	}
}
