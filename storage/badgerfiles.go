package storage

import (
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
)

// Badger's numbered files, which it offers no API for: the write-ahead file of each
// memtable (NNNNN.mem, deleted once its flush is written) and the value-log files
// (NNNNNN.vlog), each numbered one up from the one before. Run follows them on disk
// (flushPending, writeback) by a stat of the next number, listing the data dir only to
// find where to start: a large store's dir holds tens of thousands of table files.
type fileKind struct {
	ext   string
	width int // zero-padded to at least this many digits
}

var (
	memFiles  = fileKind{".mem", 5}
	vlogFiles = fileKind{".vlog", 6}
)

// path is the file numbered n in dir.
func (k fileKind) path(dir string, n int) string {
	return filepath.Join(dir, fmt.Sprintf("%0*d%s", k.width, n, k.ext))
}

// exists reports whether the file numbered n is in dir.
func (k fileKind) exists(dir string, n int) bool {
	_, err := os.Stat(k.path(dir, n))
	return err == nil
}

// span lists dir and returns the lowest and highest number of its files of kind k (by
// number, not by name); ok is false when there is none.
func (k fileKind) span(dir string) (lo, hi int, ok bool) {
	names, _ := filepath.Glob(filepath.Join(dir, "*"+k.ext))
	for _, p := range names {
		n, err := strconv.Atoi(strings.TrimSuffix(filepath.Base(p), k.ext))
		if err != nil || n < 0 {
			continue
		}
		if !ok || n < lo {
			lo = n
		}
		if !ok || n > hi {
			hi = n
		}
		ok = true
	}
	return lo, hi, ok
}
