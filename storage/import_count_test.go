package storage_test

import (
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

// TestImportCountsDistinctKeys guarantees that CountOptOuts stays exact when an import
// repeats rows (next to each other, in the same chunk, across chunks and across flushed
// batches) and re-adds opt-outs that already exist, with and without the filter.
func TestImportCountsDistinctKeys(t *testing.T) {
	distinct := 3 * 8192 * 16 / 2 // spans several flushed batches of 16 chunks of 8192 rows
	if raceEnabled {
		distinct = 20_000 // several chunks; the race detector makes it 10x slower
	}
	for _, opts := range []storage.Options{{}, {NoOptOutFilter: true}} {
		t.Run(fmt.Sprintf("nofilter=%v", opts.NoOptOutFilter), func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, dir, opts)
			defer func() { db.Close() }()
			for i := 0; i < distinct; i += 1000 { // already there before the import
				if err := db.SetOptOut(dispatch.OptOut{Channel: "sms", Address: fmt.Sprintf("+3584%08d", i), OptedOut: true}); err != nil {
					t.Fatal(err)
				}
			}
			var b strings.Builder
			for i := range distinct {
				fmt.Fprintf(&b, "default,sms,+3584%08d\n", i)
				if i%7 == 0 {
					fmt.Fprintf(&b, "default,sms,+3584%08d\n", i) // adjacent repeat
				}
				if i%5 == 0 && i >= 100_000 {
					fmt.Fprintf(&b, "default,sms,+3584%08d\n", i-100_000) // an earlier batch
				}
				if i%11 == 0 && i >= 3000 {
					fmt.Fprintf(&b, "default,sms,+3584%08d\n", i-3000) // same chunk or the one before
				}
			}
			res, err := db.ImportOptOutsCSV(strings.NewReader(b.String()), storage.ImportOptions{})
			if err != nil {
				t.Fatal(err)
			}
			if n, _ := db.CountOptOuts(); n != distinct {
				t.Fatalf("CountOptOuts = %d after importing %d rows of %d distinct numbers", n, res.Imported, distinct)
			}
			// And after a reopen that counts by scan.
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			if err := os.Remove(filepath.Join(dir, "sendcore-optouts.state")); err != nil {
				t.Fatal(err)
			}
			db = openDB(t, dir, opts)
			if n, _ := db.CountOptOuts(); n != distinct {
				t.Fatalf("count by scan = %d, want %d", n, distinct)
			}
		})
	}
}
