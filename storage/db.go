package storage

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/dgraph-io/badger/v4"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendcore/sendcore/dispatch"
)

// Errors. Every error of this package wraps one of them (or a Badger error on I/O).
var (
	// ErrInvalid: bad input; the message names the field and value.
	ErrInvalid = errors.New("storage: invalid")
	// ErrLocked: another process (or another Open in this one) holds the data dir.
	ErrLocked = errors.New("storage: data dir is locked by another process")
	// ErrCorrupt: the data dir holds files Badger cannot read.
	ErrCorrupt = errors.New("storage: data dir is corrupted")
	// ErrNotWritable: the data dir cannot be created or written (permissions, read-only fs).
	ErrNotWritable = errors.New("storage: data dir is not writable")
	// ErrDiskFull: no space left on the device of the data dir.
	ErrDiskFull = errors.New("storage: disk full")
	// ErrClosed: the database was closed.
	ErrClosed = errors.New("storage: closed")
)

// Compile-time proof that *DB is every store dispatch declares.
var (
	_ dispatch.OptOuts       = (*DB)(nil)
	_ dispatch.Ledger        = (*DB)(nil)
	_ dispatch.Receipts      = (*DB)(nil)
	_ dispatch.Schedule      = (*DB)(nil)
	_ dispatch.UsageCounters = (*DB)(nil)
	_ dispatch.Settings      = (*DB)(nil)
)

// DB is one Badger database in one data dir, holding every store. Safe for concurrent use.
// Open it once per process, Close it on shutdown; Run does background housekeeping.
type DB struct {
	bdb  *badger.DB
	opt  Options
	log  *slog.Logger
	m    *metrics
	dir  string
	once sync.Once

	memFid   int  // the oldest memtable file's number, as flushPending last saw it
	memKnown bool // memFid was seen

	closeMu sync.RWMutex // held for reading by every call that uses bdb; Close takes it
	closed  bool

	// Opt-outs: optMu serialises opt-out writers so that optCount stays exact; checks
	// never take it.
	optMu    sync.Mutex
	optCount atomic.Int64
	filter   *filter // nil when Options.NoOptOutFilter

	histSeq atomic.Uint64 // history and outbox sequence, seeded at open (seedSeq)
	ob      outbox        // what is appended and not yet published (outbox.go)

	claims claimBatcher // group commit of Claim (claim_batch.go)

	dueFrom atomic.Int64 // where Expiring starts reading the due index

	schedLen atomic.Int64
	usageMu  [64]sync.Mutex // stripes for usage read-modify-write
}

// Open opens (creating it if needed) the database in dir. It fails with ErrLocked,
// ErrCorrupt, ErrNotWritable or ErrDiskFull (wrapped, with the dir named) rather than
// panicking. reg may be nil (no metrics). The opt-out count and filter come from the
// state saved by the last clean Close when nothing was written since (about 0.1 s for 10M
// opt-outs); otherwise (first open, after a crash) Open reads every opt-out key once
// (about a second per million on a loaded machine). See filter_persist.go.
func Open(dir string, opts Options, log *slog.Logger, reg prometheus.Registerer) (*DB, error) {
	if dir == "" {
		return nil, fmt.Errorf("%w: data dir: must not be empty", ErrInvalid)
	}
	if err := opts.Validate(); err != nil {
		return nil, err
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts = opts.withDefaults()
	if err := probeDir(dir); err != nil {
		return nil, err
	}
	bo := badger.DefaultOptions(dir).
		WithLogger(badgerLogger{log}).
		WithSyncWrites(opts.SyncWrites).
		WithBlockCacheSize(opts.BlockCacheBytes).
		WithMemTableSize(opts.MemTableBytes).
		WithValueThreshold(opts.ValueThresholdBytes).
		WithNumVersionsToKeep(1).
		WithMetricsEnabled(false).
		WithCompression(compressions[opts.Compression]).
		WithCompactL0OnClose(opts.CompactL0OnClose)
	if err := checkTables(dir); err != nil {
		return nil, err
	}
	bdb, err := openBadger(bo)
	if err != nil {
		return nil, classifyOpen(dir, err)
	}
	db := &DB{bdb: bdb, opt: opts, log: log, dir: dir}
	if err := db.seedSeq(); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("storage: reading outbox of %s: %w", dir, err)
	}
	if err := db.migrateOptOuts(); err != nil {
		_ = bdb.Close()
		return nil, err
	}
	start := time.Now()
	if err := db.loadOptOuts(); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("storage: reading opt-outs of %s: %w", dir, err)
	}
	if err := db.loadSchedule(); err != nil {
		_ = bdb.Close()
		return nil, fmt.Errorf("storage: reading schedule of %s: %w", dir, err)
	}
	db.m = newMetrics(db)
	if reg != nil {
		if err := db.m.register(reg); err != nil {
			_ = bdb.Close()
			return nil, fmt.Errorf("storage: registering metrics: %w", err)
		}
	}
	log.Info("storage opened", "dir", dir, "optouts", db.optCount.Load(),
		"scheduled", db.schedLen.Load(), "took", time.Since(start))
	return db, nil
}

// openBadger turns a Badger panic on a damaged directory into an error.
func openBadger(bo badger.Options) (db *badger.DB, err error) {
	defer func() {
		if r := recover(); r != nil {
			db, err = nil, fmt.Errorf("%w: badger panicked: %v", ErrCorrupt, r)
		}
	}()
	return badger.Open(bo)
}

// checkTables checks the footer of every table file: Badger opens tables on goroutines of
// its own and panics (killing the process) on a footer that points outside the file.
func checkTables(dir string) error {
	files, err := filepath.Glob(filepath.Join(dir, "*.sst"))
	if err != nil {
		return fmt.Errorf("%w: %s: %v", ErrCorrupt, dir, err)
	}
	for _, name := range files {
		if err := checkTable(name); err != nil {
			return fmt.Errorf("%w: %s: %v", ErrCorrupt, dir, err)
		}
	}
	return nil
}

func checkTable(name string) error {
	f, err := os.Open(name)
	if err != nil {
		return err
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return err
	}
	size := st.Size()
	bad := fmt.Errorf("table %s: footer out of range", filepath.Base(name))
	var b [4]byte
	if size < 8 {
		return bad
	}
	if _, err := f.ReadAt(b[:], size-4); err != nil {
		return err
	}
	sumLen := int64(binary.BigEndian.Uint32(b[:]))
	if sumLen > size-8 {
		return bad
	}
	if _, err := f.ReadAt(b[:], size-8-sumLen); err != nil {
		return err
	}
	if idxLen := int64(binary.BigEndian.Uint32(b[:])); idxLen > size-8-sumLen {
		return bad
	}
	return nil
}

// probeDir creates dir and writes a small file into it, to report permissions and a full
// disk clearly before Badger starts.
func probeDir(dir string) error {
	if err := os.MkdirAll(dir, 0o750); err != nil {
		return classifyOpen(dir, err)
	}
	p := filepath.Join(dir, ".sendcore-probe")
	f, err := os.OpenFile(p, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return classifyOpen(dir, err)
	}
	_, werr := f.Write(make([]byte, 4096))
	if werr == nil {
		werr = f.Sync()
	}
	cerr := f.Close()
	_ = os.Remove(p)
	if werr != nil {
		return classifyOpen(dir, werr)
	}
	if cerr != nil {
		return classifyOpen(dir, cerr)
	}
	return nil
}

func classifyOpen(dir string, err error) error {
	if errors.Is(err, ErrCorrupt) {
		return fmt.Errorf("storage: opening %s: %w", dir, err)
	}
	var sentinel error
	msg := err.Error()
	switch {
	case errors.Is(err, syscall.ENOSPC) || errors.Is(err, syscall.EDQUOT) ||
		strings.Contains(msg, "no space left"):
		sentinel = ErrDiskFull
	case errors.Is(err, syscall.EACCES) || errors.Is(err, syscall.EPERM) ||
		errors.Is(err, syscall.EROFS) || errors.Is(err, syscall.ENOTDIR) || errors.Is(err, os.ErrPermission):
		sentinel = ErrNotWritable
	case strings.Contains(msg, "Cannot acquire directory lock") || errors.Is(err, syscall.EWOULDBLOCK):
		sentinel = ErrLocked
	default:
		// Anything else Badger refuses at open is a directory it cannot read: bad
		// magic, checksum mismatch, truncated manifest or tables, missing files.
		sentinel = ErrCorrupt
	}
	return fmt.Errorf("%w: %s: %v", sentinel, dir, err)
}

// Run runs value-log garbage collection every Options.GCInterval, and writes the value
// log back every second (writeback.go), until ctx is done. It returns nil then; Badger
// compacts (and drops expired records) on its own goroutines.
func (db *DB) Run(ctx context.Context) error {
	t := time.NewTicker(db.opt.GCInterval)
	defer t.Stop()
	// Without SyncWrites, the value log's dirty pages are written back every second
	// (writeback.go); with it Badger syncs every write itself.
	var wb <-chan time.Time
	w := &writeback{dir: db.dir}
	defer w.close()
	if !db.opt.SyncWrites {
		wt := time.NewTicker(writebackInterval)
		defer wt.Stop()
		wb = wt.C
	}
	// Background work: a pending flush is checked every tick (two stats), a due
	// compaction every fourth (Levels computes every level's score under its lock) and
	// every tick while busy, to see its end soon. A flush starts ~0.3 CPU-s on one
	// goroutine at once, so its check is the frequent one.
	var cc <-chan time.Time
	busy, ticks := false, 0
	if db.opt.OnCompaction != nil {
		ct := time.NewTicker(25 * time.Millisecond)
		defer ct.Stop()
		cc = ct.C
		defer func() {
			if busy {
				db.opt.OnCompaction(false)
			}
		}()
	}
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
			db.gc(ctx)
		case <-wb:
			if db.acquire() == nil {
				w.flush()
				db.release()
			}
		case <-cc:
			if db.acquire() == nil {
				ticks++
				b := db.flushPending() || (busy || ticks%4 == 0) && db.compactionDue()
				db.release()
				if b != busy {
					busy = b
					db.opt.OnCompaction(b)
				}
			}
		}
	}
}

// compactionDue reports whether a level of Badger's tree is over its target: a
// compaction is due or running (a level's tables leave it only when one ends).
func (db *DB) compactionDue() bool {
	for _, l := range db.bdb.Levels() {
		if l.Score >= 1 {
			return true
		}
	}
	return false
}

// flushPending reports whether Badger has a full memtable to flush (or is flushing it):
// each memtable has a write-ahead file NNNNN.mem, numbered one up from the last, and the
// full one's is deleted once its level-0 table is written, so a file after the oldest
// means a flush is due. Badger has no API for it; the files are its on-disk format. A
// flush is ~0.3 CPU-s on one goroutine per 64 MiB memtable, every ~22 s at 15k
// requests/s. It follows the files by number (badgerfiles.go). Not safe for concurrent
// use (Run's goroutine).
func (db *DB) flushPending() bool {
	if !db.memKnown || !memFiles.exists(db.dir, db.memFid) {
		// Unknown, or flushed: find the oldest memtable file again (once per flush).
		if db.memFid, _, db.memKnown = memFiles.span(db.dir); !db.memKnown {
			return false
		}
	}
	return memFiles.exists(db.dir, db.memFid+1)
}

// acquire makes Close wait for the calling method; it fails with ErrClosed after Close.
func (db *DB) acquire() error {
	db.closeMu.RLock()
	if db.closed {
		db.closeMu.RUnlock()
		return ErrClosed
	}
	return nil
}

func (db *DB) release() { db.closeMu.RUnlock() }

func (db *DB) gc(ctx context.Context) {
	if db.acquire() != nil {
		return
	}
	defer db.release()
	for i := 0; i < 16 && ctx.Err() == nil; i++ {
		err := db.bdb.RunValueLogGC(0.5)
		if err != nil {
			if !errors.Is(err, badger.ErrNoRewrite) && !errors.Is(err, badger.ErrRejected) {
				db.log.Warn("storage: value log GC", "err", err)
			}
			return
		}
	}
}

// Close waits for running calls, then flushes and closes the database; later calls
// return nil. Methods called after Close fail with ErrClosed.
func (db *DB) Close() error {
	var err error
	db.once.Do(func() {
		db.closeMu.Lock()
		db.closed = true
		db.closeMu.Unlock()
		if e := db.saveOptOutHint(); e != nil {
			db.log.Warn("storage: saving opt-out count", "err", e)
		}
		if e := db.bdb.Close(); e != nil {
			err = fmt.Errorf("storage: closing %s: %w", db.dir, e)
		}
	})
	return err
}

// Size returns the bytes of the LSM tree and of the value log (0, 0 after Close).
func (db *DB) Size() (lsm, vlog int64) {
	if db.acquire() != nil {
		return 0, 0
	}
	defer db.release()
	return db.bdb.Size()
}

// retry runs fn in a read-write transaction, again on a conflict with a concurrent one.
func (db *DB) update(fn func(txn *badger.Txn) error) error {
	for i := 0; ; i++ {
		err := db.bdb.Update(fn)
		if !errors.Is(err, badger.ErrConflict) || i >= 1000 {
			return err
		}
	}
}

// badgerLogger sends Badger's log to slog; Badger's info lines are debug here. Each line is
// formatted only when its level is enabled: Badger logs a debug line per write batch.
type badgerLogger struct{ l *slog.Logger }

func (b badgerLogger) logf(level slog.Level, f string, a []any) {
	if !b.l.Enabled(context.Background(), level) {
		return
	}
	b.l.Log(context.Background(), level, "badger: "+strings.TrimSpace(fmt.Sprintf(f, a...)))
}

func (b badgerLogger) Errorf(f string, a ...any)   { b.logf(slog.LevelError, f, a) }
func (b badgerLogger) Warningf(f string, a ...any) { b.logf(slog.LevelWarn, f, a) }
func (b badgerLogger) Infof(f string, a ...any)    { b.logf(slog.LevelDebug, f, a) }
func (b badgerLogger) Debugf(f string, a ...any)   { b.logf(slog.LevelDebug, f, a) }

// getJSON reads the JSON value of key into v within txn. It reports false and no error
// when key is absent (never written, expired or deleted); a value that does not decode is
// ErrCorrupt naming kind and id (formatted only then: this is on the receipt hot path).
func getJSON(txn *badger.Txn, key []byte, v any, kind, id string) (bool, error) {
	item, err := txn.Get(key)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	if err := item.Value(func(b []byte) error { return json.Unmarshal(b, v) }); err != nil {
		return false, fmt.Errorf("%w: %s %q: %v", ErrCorrupt, kind, id, err)
	}
	return true, nil
}
