package storage

import (
	"bufio"
	"bytes"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// ImportOptions tune ImportOptOutsCSV. Tenant, Channel and Source are the values of rows
// whose file has no such column or leaves it empty (defaults "default", "all", "import").
type ImportOptions struct {
	Tenant, Channel, Source string
	// Region reads national-form numbers ("" uses Options.DefaultRegion).
	Region string
	// StopOnError stops at the first bad row; rows before it stay imported.
	StopOnError bool
	// OnReject is called for every bad row, in file order. When nil, the first
	// MaxErrors bad rows are kept in ImportResult.Errors.
	OnReject func(RowError)
	// MaxErrors bounds ImportResult.Errors when OnReject is nil; default 1000.
	MaxErrors int
}

// RowError is one rejected row.
type RowError struct {
	Line int    `json:"line"` // 1-based line of the row in the file
	Err  string `json:"error"`
}

func (e RowError) Error() string { return fmt.Sprintf("line %d: %s", e.Line, e.Err) }

// ImportResult counts an import.
type ImportResult struct {
	Imported int        `json:"imported"` // rows written (new or replacing an opt-out)
	Rejected int        `json:"rejected"` // bad rows
	Errors   []RowError `json:"errors,omitempty"`
}

// CSVHeader is the header of ExportOptOutsCSV (contract §8).
var CSVHeader = []string{"tenant", "channel", "address", "source", "ts"}

const (
	colTenant = iota
	colChannel
	colAddress
	colSource
	colTS
	ncols
)

type importRow struct {
	key, val []byte
	hash     uint64 // filterHash(tenant, address)
	kh       uint64 // xxhash of key, for the import's set of unflushed keys
}

// importChunk is a batch of parsed rows handed from the parser goroutine to the writer.
// Its rows' key and val point into buf; Badger keeps referencing them until the WriteBatch
// that took them is flushed, so a chunk is recycled only after that flush.
type importChunk struct {
	rows []importRow
	buf  []byte
	errs []RowError // bad rows, reported in order after the rows before them
	stop bool
	err  error
}

const (
	importChunkRows = 8192
	importChunkBuf  = importChunkRows * 48
)

func newImportChunk() *importChunk {
	return &importChunk{rows: make([]importRow, 0, importChunkRows), buf: make([]byte, 0, importChunkBuf)}
}

func (c *importChunk) reset() {
	c.rows, c.buf, c.errs = c.rows[:0], c.buf[:0], c.errs[:0]
	c.stop, c.err = false, nil
}

// ImportOptOutsCSV reads opt-outs as CSV (contract §8) from r and adds them, streaming:
// memory does not grow with the file. The header row is optional; it is recognised by a
// column named "address" and columns are then taken by name. Without a header a one-column
// file is addresses, and wider files follow the export order tenant,channel,address,source,ts.
// A bad row (unparseable CSV, bad address, channel or ts) is reported with its line and the
// rest is imported unless opt.StopOnError. Rows are durable when it returns; the error is
// for reading r or writing the database, not for bad rows.
func (db *DB) ImportOptOutsCSV(r io.Reader, opt ImportOptions) (ImportResult, error) {
	var res ImportResult
	if opt.Tenant == "" {
		opt.Tenant = DefaultTenant
	}
	if opt.Channel == "" {
		opt.Channel = dispatch.ChannelAll
	}
	if opt.Source == "" {
		opt.Source = "import"
	}
	if opt.Region == "" {
		opt.Region = db.opt.DefaultRegion
	}
	if opt.MaxErrors == 0 {
		opt.MaxErrors = 1000
	}
	if _, err := chanCode(opt.Channel); err != nil {
		return res, err
	}
	if err := db.acquire(); err != nil {
		return res, err
	}
	defer db.release()
	reject := func(line int, msg string) {
		res.Rejected++
		if opt.OnReject != nil {
			opt.OnReject(RowError{Line: line, Err: msg})
		} else if len(res.Errors) < opt.MaxErrors {
			res.Errors = append(res.Errors, RowError{Line: line, Err: msg})
		}
	}

	// A parser goroutine fills chunks while this one writes the previous chunk; chunks
	// come back through free once their WriteBatch is flushed.
	chunks := make(chan *importChunk, 2)
	free := make(chan *importChunk, importFlushChunks+4)
	quit := make(chan struct{})
	parseDone := make(chan struct{})
	go func() {
		defer close(parseDone)
		defer close(chunks)
		p := newCSVParser(r, &opt, db.opt.Clock().UTC())
		for {
			var c *importChunk
			select {
			case c = <-free:
				c.reset()
			default:
				c = newImportChunk()
			}
			for len(c.rows) < importChunkRows {
				row, line, msg, err := p.next(&c.buf)
				if err == io.EOF {
					c.stop = true
					break
				}
				if err != nil {
					c.err, c.stop = err, true
					break
				}
				if msg != "" {
					c.errs = append(c.errs, RowError{Line: line, Err: msg})
					if opt.StopOnError {
						c.stop = true
						break
					}
					continue
				}
				if row.key != nil {
					c.rows = append(c.rows, row)
				}
			}
			select {
			case chunks <- c:
			case <-quit:
				return
			}
			if c.stop {
				return
			}
		}
	}()
	defer func() { close(quit); <-parseDone }()

	w := &importWriter{db: db, free: free}
	defer w.abort()
	for c := range chunks {
		// Bad rows of a chunk are reported before its good rows are written; their
		// line numbers say where they were.
		for _, e := range c.errs {
			reject(e.Line, e.Err)
		}
		if len(c.rows) > 0 {
			if err := w.write(c); err != nil {
				return res, err
			}
			res.Imported += len(c.rows)
		} else {
			w.recycle(c)
		}
		if c.err != nil {
			if err := w.flush(); err != nil {
				return res, err
			}
			return res, fmt.Errorf("storage: reading CSV: %w", c.err)
		}
		if c.stop {
			break
		}
	}
	return res, w.flush()
}

// importWriter writes the chunks of one import. It holds the opt-out lock for up to
// importFlushChunks chunks, written by one WriteBatch that commits in the background, then
// flushes and lets other opt-out writers in. The count stays exact: a row is new unless
// the filter knows its (tenant, address) and either an unflushed row of this import or
// Badger has its key.
type importWriter struct {
	db      *DB
	wb      *txnBatch
	chunks  []*importChunk // written since the last flush; recycled after it
	free    chan<- *importChunk
	added   int64
	pending hashSet // key hashes not yet flushed
	known   []bool
	hashes  []uint64
	order   []*importRow // rows of the batch, sorted by key at flush
	start   time.Time
}

const importFlushChunks = 16

func (w *importWriter) write(c *importChunk) error {
	db := w.db
	if w.wb == nil {
		db.optMu.Lock()
		w.wb = newTxnBatch(db.bdb)
		w.start = time.Now()
		w.pending.init(importChunkRows * importFlushChunks)
	}
	w.chunks = append(w.chunks, c)
	rows := c.rows
	// Which rows the filter knows is decided before the chunk's own keys are added;
	// duplicates inside the import are caught by the pending set. The keys go into the
	// filter before any of them can be committed: no false negative.
	w.known = w.known[:0]
	w.hashes = w.hashes[:0]
	for i := range rows {
		w.known = append(w.known, db.filter == nil || db.filter.mayContain(rows[i].hash))
		w.hashes = append(w.hashes, rows[i].hash)
	}
	if db.filter != nil {
		db.filter.addMany(w.hashes)
	}
	var txn *badger.Txn
	defer func() {
		if txn != nil {
			txn.Discard()
		}
	}()
	for i := range rows {
		row := &rows[i]
		if w.pending.add(row.kh) {
			if !w.known[i] {
				w.added++
			} else {
				if txn == nil {
					txn = db.bdb.NewTransaction(false)
				}
				_, err := txn.Get(row.key)
				if errors.Is(err, badger.ErrKeyNotFound) {
					w.added++
				} else if err != nil {
					w.abort()
					return fmt.Errorf("storage: import: %w", err)
				}
			}
		}
		w.order = append(w.order, row)
	}
	if len(w.chunks) >= importFlushChunks {
		return w.flush()
	}
	return nil
}

// txnBatch writes like badger.WriteBatch, but one transaction per chunk (commit),
// committed in the background, at most txnBatchInFlight at a time. WriteBatch fills one
// transaction until Badger finds it too big (a few hundred thousand keys here): its maps
// of pending keys then outgrow the CPU caches. The transactions only write, so they
// cannot conflict.
type txnBatch struct {
	db       *badger.DB
	txn      *badger.Txn
	n        int // keys in txn
	wg       sync.WaitGroup
	inFlight chan struct{}
	mu       sync.Mutex
	err      error // first commit error
}

// Transactions of txnBatchRows keys; a commit is cheap, and small transactions keep
// Badger's maps of pending keys in the CPU caches.
const (
	txnBatchRows     = 1024
	txnBatchInFlight = 32
)

func newTxnBatch(db *badger.DB) *txnBatch {
	return &txnBatch{db: db, inFlight: make(chan struct{}, txnBatchInFlight)}
}

// Set adds k=v to the current transaction; k and v must not change until Flush.
func (b *txnBatch) Set(k, v []byte) error {
	if b.txn == nil {
		b.txn = b.db.NewTransaction(true)
	}
	err := b.txn.Set(k, v)
	if b.n++; err == nil && b.n >= txnBatchRows {
		err = b.commit()
	}
	if errors.Is(err, badger.ErrTxnTooBig) {
		if err = b.commit(); err == nil {
			b.txn = b.db.NewTransaction(true)
			err = b.txn.Set(k, v)
		}
	}
	return err
}

// commit starts committing the current transaction; it returns the first error of an
// earlier commit.
func (b *txnBatch) commit() error {
	if b.txn != nil {
		txn := b.txn
		b.txn, b.n = nil, 0
		b.inFlight <- struct{}{}
		b.wg.Add(1)
		txn.CommitWith(func(err error) {
			if err != nil {
				b.mu.Lock()
				if b.err == nil {
					b.err = err
				}
				b.mu.Unlock()
			}
			<-b.inFlight
			b.wg.Done()
		})
	}
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Flush commits and waits for every commit; it returns the first error.
func (b *txnBatch) Flush() error {
	_ = b.commit() // its error is returned below, after the wait
	b.wg.Wait()
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.err
}

// Cancel drops the current transaction and waits for the commits already started.
func (b *txnBatch) Cancel() {
	if b.txn != nil {
		b.txn.Discard()
		b.txn = nil
	}
	b.wg.Wait()
}

// recycle hands c back to the parser (or drops it when the free list is full).
func (w *importWriter) recycle(c *importChunk) {
	select {
	case w.free <- c:
	default:
	}
}

// flush commits what is pending and releases the opt-out lock.
func (w *importWriter) flush() error {
	if w.wb == nil {
		return nil
	}
	// Badger inserts every key into its memtable's skiplist on one goroutine, the
	// importer's bottleneck; keys written in order land next to each other there and
	// cost half as much as keys in file order (tens of cache misses each).
	slices.SortFunc(w.order, func(a, b *importRow) int { return bytes.Compare(a.key, b.key) })
	var err error
	for _, row := range w.order {
		if err = w.wb.Set(row.key, row.val); err != nil {
			break
		}
	}
	if err != nil {
		w.wb.Cancel()
	} else {
		err = w.wb.Flush()
	}
	if err == nil {
		w.db.optCount.Add(w.added)
		w.db.m.write("import", time.Since(w.start).Seconds())
	}
	w.finish()
	if err != nil {
		// Some rows may be committed; recount so that CountOptOuts stays exact.
		if rerr := w.db.recountOptOuts(); rerr != nil {
			w.db.log.Error("storage: recounting opt-outs", "err", rerr)
		}
		return fmt.Errorf("storage: import: %w", err)
	}
	return nil
}

func (w *importWriter) abort() {
	if w.wb != nil {
		w.wb.Cancel()
		w.finish()
		if err := w.db.recountOptOuts(); err != nil {
			w.db.log.Error("storage: recounting opt-outs", "err", err)
		}
	}
}

// finish ends a batch: its chunks are no longer referenced by Badger (flushed or
// cancelled), so they go back to the parser.
func (w *importWriter) finish() {
	w.wb = nil
	for i, c := range w.chunks {
		w.recycle(c)
		w.chunks[i] = nil
	}
	w.chunks = w.chunks[:0]
	clear(w.order)
	w.order = w.order[:0]
	w.added = 0
	w.pending.reset()
	w.db.optMu.Unlock()
}

// hashSet is an open-addressing set of non-zero uint64 hashes (0 is stored as 1): the
// import's unflushed keys, without the allocations of a map.
type hashSet struct {
	slots []uint64
	mask  uint64
}

// init sizes the set for n entries (load factor at most 1/2); it keeps a large enough table.
func (s *hashSet) init(n int) {
	size := 1
	for size < 2*n {
		size <<= 1
	}
	if len(s.slots) < size {
		s.slots = make([]uint64, size)
		s.mask = uint64(size - 1)
	}
}

// add inserts h and reports whether it was absent.
func (s *hashSet) add(h uint64) bool {
	if h == 0 {
		h = 1
	}
	for i := h & s.mask; ; i = (i + 1) & s.mask {
		switch s.slots[i] {
		case 0:
			s.slots[i] = h
			return true
		case h:
			return false
		}
	}
}

func (s *hashSet) reset() { clear(s.slots) }

// ExportOptOutsCSV writes every opt-out as CSV with the header tenant,channel,address,
// source,ts (ts RFC 3339 UTC with nanoseconds), in tenant, channel, address order,
// streaming from one consistent snapshot.
func (db *DB) ExportOptOutsCSV(w io.Writer) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	bw := bufio.NewWriterSize(w, 1<<16)
	cw := csv.NewWriter(bw)
	if err := cw.Write(CSVHeader); err != nil {
		return err
	}
	rec := make([]string, ncols)
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = []byte{pOptOut}
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			err := item.Value(func(v []byte) error {
				o, err := decodeOptOut(item.Key(), v)
				if err != nil {
					return err
				}
				rec[colTenant], rec[colChannel], rec[colAddress] = o.Tenant, o.Channel, o.Address
				rec[colSource], rec[colTS] = o.Source, o.TS.Format(time.RFC3339Nano)
				return cw.Write(rec)
			})
			if err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	cw.Flush()
	if err := cw.Error(); err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	if err := bw.Flush(); err != nil {
		return fmt.Errorf("storage: export: %w", err)
	}
	return nil
}
