package storage

import (
	"bufio"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"strings"
	"time"

	"github.com/cespare/xxhash/v2"
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
	hash     uint64
}

const importChunk = 8192

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

	// A parser goroutine fills chunks while this one writes the previous chunk.
	type chunk struct {
		rows []importRow
		errs []RowError // bad rows, reported in order after the rows before them
		stop bool
		err  error
	}
	chunks := make(chan chunk, 2)
	quit := make(chan struct{})
	parseDone := make(chan struct{})
	go func() {
		defer close(parseDone)
		defer close(chunks)
		p := csvParser{cr: csv.NewReader(bufio.NewReaderSize(r, 1<<16)), opt: &opt, now: db.opt.Clock().UTC()}
		p.cr.FieldsPerRecord = -1
		p.cr.ReuseRecord = true
		p.cr.TrimLeadingSpace = true
		for {
			c := chunk{rows: make([]importRow, 0, importChunk)}
			buf := make([]byte, 0, importChunk*40)
			for len(c.rows) < importChunk {
				row, line, msg, err := p.next(&buf)
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

	w := &importWriter{db: db}
	defer w.abort()
	for c := range chunks {
		// Bad rows of a chunk are reported before its good rows are written; their
		// line numbers say where they were.
		for _, e := range c.errs {
			reject(e.Line, e.Err)
		}
		if len(c.rows) > 0 {
			if err := w.write(c.rows); err != nil {
				return res, err
			}
			res.Imported += len(c.rows)
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
	wb      *badger.WriteBatch
	chunks  int
	added   int64
	pending map[uint64]struct{} // xxhash of the keys not yet flushed
	start   time.Time
}

const importFlushChunks = 16

func (w *importWriter) write(rows []importRow) error {
	db := w.db
	if w.wb == nil {
		db.optMu.Lock()
		w.wb = db.bdb.NewWriteBatch()
		w.start = time.Now()
		if w.pending == nil {
			w.pending = make(map[uint64]struct{}, importChunk*importFlushChunks)
		}
	}
	var txn *badger.Txn
	defer func() {
		if txn != nil {
			txn.Discard()
		}
	}()
	for i := range rows {
		row := &rows[i]
		kh := xxhash.Sum64(row.key)
		known := db.filter == nil || db.filter.mayContain(row.hash)
		if !known {
			w.added++
		} else if _, dup := w.pending[kh]; !dup {
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
		w.pending[kh] = struct{}{}
		if db.filter != nil {
			db.filter.add(row.hash) // before the commit: no false negative
		}
		if err := w.wb.Set(row.key, row.val); err != nil {
			w.abort()
			return fmt.Errorf("storage: import: %w", err)
		}
	}
	w.chunks++
	if w.chunks >= importFlushChunks {
		return w.flush()
	}
	return nil
}

// flush commits what is pending and releases the opt-out lock.
func (w *importWriter) flush() error {
	if w.wb == nil {
		return nil
	}
	err := w.wb.Flush()
	if err == nil {
		w.db.optCount.Add(w.added)
		w.db.m.writeSeconds.WithLabelValues("import").Observe(time.Since(w.start).Seconds())
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

func (w *importWriter) finish() {
	w.wb = nil
	w.chunks = 0
	w.added = 0
	clear(w.pending)
	w.db.optMu.Unlock()
}

type csvParser struct {
	cr      *csv.Reader
	opt     *ImportOptions
	now     time.Time
	cols    [ncols]int // index of each column in a record, -1 when absent
	started bool
}

// next returns the next row (key nil for a header), or a bad row's line and message.
func (p *csvParser) next(buf *[]byte) (importRow, int, string, error) {
	rec, err := p.cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return importRow{}, pe.StartLine, "csv: " + pe.Err.Error(), nil
		}
		return importRow{}, 0, "", err
	}
	line, _ := p.cr.FieldPos(0)
	if !p.started {
		p.started = true
		if p.header(rec) {
			return importRow{}, line, "", nil
		}
	}
	field := func(c int) string {
		if i := p.cols[c]; i >= 0 && i < len(rec) {
			return strings.TrimSpace(rec[i])
		}
		return ""
	}
	addr := field(colAddress)
	if addr == "" {
		return importRow{}, line, "address: missing", nil
	}
	tenant, ch, source := field(colTenant), field(colChannel), field(colSource)
	if tenant == "" {
		tenant = p.opt.Tenant
	}
	if ch == "" {
		ch = p.opt.Channel
	}
	if source == "" {
		source = p.opt.Source
	}
	code, err := chanCode(ch)
	if err != nil {
		return importRow{}, line, fmt.Sprintf("channel: must be sms, voice or all, got %q", ch), nil
	}
	a, err := dispatch.NormalizeE164(addr, p.opt.Region)
	if err != nil {
		return importRow{}, line, fmt.Sprintf("address: %q is not a phone number", addr), nil
	}
	ts := p.now
	if s := field(colTS); s != "" {
		if ts, err = time.Parse(time.RFC3339Nano, s); err != nil {
			return importRow{}, line, fmt.Sprintf("ts: must be RFC 3339, got %q", s), nil
		}
	}
	b := *buf
	if cap(b)-len(b) < 64+len(tenant)+len(a)+len(source) {
		b = make([]byte, 0, importChunk*40)
	}
	start := len(b)
	b = appendOptKey(b, tenant, code, a)
	k := b[start:len(b):len(b)]
	start = len(b)
	b = appendOptValue(b, ts, source)
	v := b[start:len(b):len(b)]
	*buf = b
	return importRow{key: k, val: v, hash: filterHash(tenant, a)}, line, "", nil
}

// header maps columns; it reports whether rec is a header row.
func (p *csvParser) header(rec []string) bool {
	for i := range p.cols {
		p.cols[i] = -1
	}
	isHeader := false
	for _, f := range rec {
		if strings.EqualFold(strings.TrimSpace(f), "address") {
			isHeader = true
		}
	}
	if isHeader {
		for i, f := range rec {
			for c, name := range CSVHeader {
				if strings.EqualFold(strings.TrimSpace(f), name) {
					p.cols[c] = i
				}
			}
		}
		return true
	}
	if len(rec) == 1 {
		p.cols[colAddress] = 0
		return false
	}
	for c := 0; c < ncols && c < len(rec); c++ {
		p.cols[c] = c
	}
	return false
}

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
