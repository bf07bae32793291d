package storage_test

import (
	"errors"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

// TestOpenErrors guarantees that a data dir Badger cannot use is reported at open as a
// clear, classified error, not a panic.
func TestOpenErrors(t *testing.T) {
	t.Run("LockedByAnotherOpen", func(t *testing.T) {
		dir := t.TempDir()
		db := openDB(t, dir, storage.Options{})
		defer db.Close()
		_, err := storage.Open(dir, storage.Options{}, nil, nil)
		if !errors.Is(err, storage.ErrLocked) {
			t.Fatalf("second Open: %v, want ErrLocked", err)
		}
	})
	corrupt := func(t *testing.T, dir string, match string, garbage []byte) {
		t.Helper()
		files, _ := filepath.Glob(filepath.Join(dir, match))
		if len(files) == 0 {
			t.Fatalf("no %s in %s", match, dir)
		}
		for _, f := range files {
			if err := os.WriteFile(f, garbage, 0o640); err != nil {
				t.Fatal(err)
			}
		}
	}
	for _, c := range []struct {
		name, match string
		garbage     []byte
	}{
		{"ManifestGarbage", "MANIFEST", []byte("this is not a manifest, it is garbage")},
		{"ManifestTruncated", "MANIFEST", []byte{}},
		{"TableGarbage", "*.sst", []byte("garbage table")},
	} {
		t.Run(c.name, func(t *testing.T) {
			dir := t.TempDir()
			db := openDB(t, dir, storage.Options{})
			// enough data to flush a table on close
			for i := range 100 {
				if err := db.SetOptOut(dispatch.OptOut{Channel: "sms", Address: "+35840100" + string(rune('0'+i/10)) + string(rune('0'+i%10)) + "00", OptedOut: true}); err != nil {
					t.Fatal(err)
				}
			}
			if err := db.Close(); err != nil {
				t.Fatal(err)
			}
			corrupt(t, dir, c.match, c.garbage)
			db, err := storage.Open(dir, storage.Options{}, nil, nil)
			if err == nil {
				db.Close()
				t.Fatal("Open of a corrupted dir succeeded")
			}
			t.Logf("Open: %v", err)
			if !errors.Is(err, storage.ErrCorrupt) {
				t.Fatalf("Open: %v, want ErrCorrupt", err)
			}
		})
	}
	t.Run("NotWritable", func(t *testing.T) {
		file := filepath.Join(t.TempDir(), "file")
		if err := os.WriteFile(file, nil, 0o640); err != nil {
			t.Fatal(err)
		}
		_, err := storage.Open(filepath.Join(file, "data"), storage.Options{}, nil, nil)
		if !errors.Is(err, storage.ErrNotWritable) {
			t.Fatalf("Open under a file: %v, want ErrNotWritable", err)
		}
	})
	t.Run("EmptyDir", func(t *testing.T) {
		if _, err := storage.Open("", storage.Options{}, nil, nil); !errors.Is(err, storage.ErrInvalid) {
			t.Fatalf("Open(\"\"): %v, want ErrInvalid", err)
		}
	})
}

// TestUseAfterClose guarantees ErrClosed, not a panic, from calls after Close.
func TestUseAfterClose(t *testing.T) {
	db := openDB(t, t.TempDir(), storage.Options{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	for name, err := range map[string]error{
		"SetOptOut":    db.SetOptOut(dispatch.OptOut{Channel: "sms", Address: "+358401234567", OptedOut: true}),
		"ListSettings": db.ListSettings("x", func(string, []byte) error { return nil }),
		"Append":       db.Append([]dispatch.Event{{ID: "x"}}),
		"Hold":         db.Hold(dispatch.Scheduled{ID: "x", Due: time.Now()}),
	} {
		if !errors.Is(err, storage.ErrClosed) {
			t.Errorf("%s after Close: %v, want ErrClosed", name, err)
		}
	}
	if _, err := db.Take(time.Now(), 10, time.Minute); !errors.Is(err, storage.ErrClosed) {
		t.Errorf("Take after Close: %v, want ErrClosed", err)
	}
}

// TestCompressionSwitchesAcrossReopens guarantees that storage.compression can change
// between runs of one data dir: tables keep the compression they were written with, so
// every record written under each setting is read under every other. A bad value is
// refused naming the key.
func TestCompressionSwitchesAcrossReopens(t *testing.T) {
	dir := t.TempDir()
	at := time.Unix(1700000000, 0).UTC()
	var ids []string
	for round, comp := range []string{"snappy", "none", "zstd", ""} {
		// Close flushes the memtable: every round writes a table under its setting.
		db := openDB(t, dir, storage.Options{Compression: comp})
		for i := range 2000 {
			id := "r" + string(rune('a'+round)) + "-" + time.Duration(i).String()
			if _, existed, err := db.Claim(id, "test", at); err != nil || existed {
				t.Fatalf("%s: Claim(%s): existed %v, %v", comp, id, existed, err)
			}
			ids = append(ids, id)
		}
		for _, id := range ids {
			if _, existed, err := db.Claim(id, "again", at); err != nil || !existed {
				t.Fatalf("compression %q: earlier claim of %s not read back (existed %v, %v)", comp, id, existed, err)
			}
		}
		if err := db.Close(); err != nil {
			t.Fatal(err)
		}
	}
	_, err := storage.Open(dir, storage.Options{Compression: "lz4"}, nil, nil)
	if !errors.Is(err, storage.ErrInvalid) || !strings.Contains(err.Error(), `compression: must be none, snappy or zstd, got "lz4"`) {
		t.Fatalf("Open with compression lz4: %v", err)
	}
}
