package storage

import (
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// writebackInterval is how often Run writes the value log's dirty pages back to disk.
//
// Badger syncs a value-log file when it moves on to the next one (every ~1 GiB): an msync
// of every page of it not yet written back, inside its write path, so every write waits
// for it. With the kernel's default of writing dirty pages back after 30 s, 200–400 MB
// were still dirty during a run at 15k requests/s; written back every second here they
// stay under ~55 MB, and a rotation finds about a second's worth to sync. (The multi-
// second stall such runs show ~90 s in is Badger's first level-0 compaction, not this:
// it stayed with the writeback; see gateway/procs.go.) Written by hand: it works around
// Badger's rotation, and an fsync of the newest file is all it takes.
const writebackInterval = time.Second

// writeback keeps the newest value-log file open and fsyncs it.
type writeback struct {
	dir  string
	name string
	f    *os.File
}

// newestVlog returns the path of the value-log file with the highest number in dir
// ("" if none). Badger names them by a zero-padded number; the number decides, not the
// name's order.
func newestVlog(dir string) string {
	names, _ := filepath.Glob(filepath.Join(dir, "*.vlog"))
	best, bestN := "", int64(-1)
	for _, p := range names {
		n, err := strconv.ParseInt(strings.TrimSuffix(filepath.Base(p), ".vlog"), 10, 64)
		if err == nil && n > bestN {
			best, bestN = p, n
		}
	}
	return best
}

// flush fsyncs the newest value-log file. Errors are left to Badger, which syncs (and
// reports) at rotation and Close anyway.
func (w *writeback) flush() {
	name := newestVlog(w.dir)
	if name == "" {
		return
	}
	if name != w.name {
		w.close()
		f, err := os.Open(name)
		if err != nil {
			return
		}
		w.name, w.f = name, f
	}
	_ = w.f.Sync()
}

func (w *writeback) close() {
	if w.f != nil {
		w.f.Close()
		w.f, w.name = nil, ""
	}
}
