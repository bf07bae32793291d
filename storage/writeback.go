package storage

import (
	"os"
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
	dir string
	n   int // the open file's number
	f   *os.File
}

// flush fsyncs the newest value-log file: the one it holds until Badger has started the
// next (badgerfiles.go), then the newest in the dir. Errors are left to Badger, which
// syncs (and reports) at rotation and Close anyway.
func (w *writeback) flush() {
	if w.f == nil || vlogFiles.exists(w.dir, w.n+1) {
		_, newest, ok := vlogFiles.span(w.dir)
		if !ok {
			return
		}
		w.close()
		f, err := os.Open(vlogFiles.path(w.dir, newest))
		if err != nil {
			return
		}
		w.n, w.f = newest, f
	}
	_ = w.f.Sync()
}

func (w *writeback) close() {
	if w.f != nil {
		w.f.Close()
		w.f = nil
	}
}
