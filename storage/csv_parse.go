package storage

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"time"
	"unsafe"

	"github.com/cespare/xxhash/v2"

	"github.com/sendcore/sendcore/dispatch"
)

// csvParser turns CSV lines into opt-out rows.
//
// Lines without a double quote (nearly every line of a real opt-out list, and every line
// our export writes for ordinary tenants and sources) are split on commas in place, in the
// reader's buffer, without allocating: encoding/csv allocates the record's string and
// copies every field, which was a fifth of an import's CPU. A line that holds a '"' goes
// to encoding/csv instead, with the lines it pulls in: quoting rules (doubled quotes,
// fields spanning lines, where a bad quote ends a record) are subtle and encoding/csv
// defines exactly what this importer has always accepted and rejected, so the fast path
// only takes lines on which both read the same fields: no quote means no quoting. The two
// paths share one line counter, so bad rows are reported by their exact line either way.
type csvParser struct {
	br      *bufio.Reader
	line    int // lines consumed from br
	opt     *ImportOptions
	now     time.Time
	cols    [ncols]int // index of each column in a record, -1 when absent
	started bool
	fields  [][]byte
	long    []byte // a line longer than br's buffer, assembled

	// The slow path: cr reads from feed, which hands it one line of br at a time.
	cr      *csv.Reader
	feed    lineFeeder
	allSlow bool // tests: every line through encoding/csv

	// The last tenant seen, with its hash: files rarely mix many tenants.
	tenant     []byte
	tenantHash uint64
	defTenantH uint64
}

func newCSVParser(r io.Reader, opt *ImportOptions, now time.Time) *csvParser {
	p := &csvParser{br: bufio.NewReaderSize(r, 1<<16), opt: opt, now: now, fields: make([][]byte, 0, ncols)}
	p.feed.p = p
	p.defTenantH = xxhash.Sum64String(opt.Tenant)
	return p
}

// readLine returns the next line with its end of line ("\n", "\r\n", or a "\r" before
// the end of the input) removed, and whether it had one. It is valid until the next read.
func (p *csvParser) readLine() (line []byte, err error) {
	b, err := p.br.ReadSlice('\n')
	if errors.Is(err, bufio.ErrBufferFull) {
		p.long = append(p.long[:0], b...)
		for errors.Is(err, bufio.ErrBufferFull) {
			b, err = p.br.ReadSlice('\n')
			p.long = append(p.long, b...)
		}
		b = p.long
	}
	if len(b) == 0 {
		if err == nil {
			err = io.ErrNoProgress
		}
		return nil, err
	}
	if err != nil && err != io.EOF {
		return nil, err
	}
	p.line++
	return b, nil
}

// next returns the next row (key nil for a header), or a bad row's line and message, or
// io.EOF at the end, or the error reading the input.
func (p *csvParser) next(buf *[]byte) (importRow, int, string, error) {
	for {
		raw, err := p.readLine()
		if err != nil {
			return importRow{}, 0, "", err
		}
		line := trimEOL(raw)
		if len(line) == 0 {
			continue // encoding/csv skips empty lines too
		}
		if p.allSlow || bytes.IndexByte(line, '"') >= 0 {
			return p.slow(raw, buf)
		}
		p.fields = p.fields[:0]
		for {
			i := bytes.IndexByte(line, ',')
			if i < 0 {
				p.fields = append(p.fields, line)
				break
			}
			p.fields = append(p.fields, line[:i])
			line = line[i+1:]
		}
		return p.row(p.fields, p.line, buf)
	}
}

// trimEOL removes "\n" or "\r\n", or a lone "\r" at the very end of the input, as
// encoding/csv does.
func trimEOL(b []byte) []byte {
	n := len(b)
	if n > 0 && b[n-1] == '\n' {
		n--
		if n > 0 && b[n-1] == '\r' {
			n--
		}
		return b[:n]
	}
	if n > 0 && b[n-1] == '\r' {
		n--
	}
	return b[:n]
}

// slow parses the record that starts with raw (already counted) with encoding/csv.
func (p *csvParser) slow(raw []byte, buf *[]byte) (importRow, int, string, error) {
	start := p.line
	if p.cr == nil {
		p.cr = csv.NewReader(&p.feed)
		p.cr.FieldsPerRecord = -1
		p.cr.ReuseRecord = true
		p.cr.TrimLeadingSpace = true
	}
	p.feed.pending = raw
	rec, err := p.cr.Read()
	if err != nil {
		var pe *csv.ParseError
		if errors.As(err, &pe) {
			return importRow{}, start, "csv: " + pe.Err.Error(), nil
		}
		if err == io.EOF {
			err = io.ErrUnexpectedEOF // raw was not empty
		}
		return importRow{}, 0, "", err
	}
	p.fields = p.fields[:0]
	for _, f := range rec {
		p.fields = append(p.fields, []byte(f))
	}
	return p.row(p.fields, start, buf)
}

// lineFeeder is encoding/csv's input: the line the fast path handed over, then further
// lines of the parser's reader, never more than one line per Read. csv.Reader reads
// through a bufio.Reader that stops filling once it holds a whole line, and a record
// always ends at the end of a line, so nothing is read ahead past the record: the fast
// path goes on exactly where encoding/csv stopped.
type lineFeeder struct {
	p       *csvParser
	pending []byte
}

func (f *lineFeeder) Read(b []byte) (int, error) {
	if len(f.pending) == 0 {
		raw, err := f.p.br.ReadSlice('\n')
		if len(raw) == 0 {
			if err == nil {
				err = io.ErrNoProgress
			}
			return 0, err
		}
		if err != nil && err != io.EOF && !errors.Is(err, bufio.ErrBufferFull) {
			return 0, err
		}
		if raw[len(raw)-1] == '\n' || err == io.EOF {
			f.p.line++ // a line ends in this piece
		}
		f.pending = raw
	}
	n := copy(b, f.pending)
	f.pending = f.pending[n:]
	return n, nil
}

// row builds the row of one record (fields valid until the next read) at line.
func (p *csvParser) row(rec [][]byte, line int, buf *[]byte) (importRow, int, string, error) {
	if !p.started {
		p.started = true
		if p.header(rec) {
			return importRow{}, line, "", nil
		}
	}
	field := func(c int) []byte {
		if i := p.cols[c]; i >= 0 && i < len(rec) {
			return bytes.TrimSpace(rec[i])
		}
		return nil
	}
	addr := field(colAddress)
	if len(addr) == 0 {
		return importRow{}, line, "address: missing", nil
	}
	tenant, ch, source := field(colTenant), field(colChannel), field(colSource)
	var code byte
	if len(ch) == 0 {
		code, _ = chanCode(p.opt.Channel)
	} else if code = chanCodeBytes(ch); code == 0 {
		return importRow{}, line, fmt.Sprintf("channel: must be sms, voice or all, got %q", ch), nil
	}
	a, err := normalizeBytes(addr, p.opt.Region)
	if err != nil {
		return importRow{}, line, fmt.Sprintf("address: %q is not a phone number", addr), nil
	}
	ts := p.now
	if s := field(colTS); len(s) != 0 {
		if ts, err = time.Parse(time.RFC3339Nano, string(s)); err != nil {
			return importRow{}, line, fmt.Sprintf("ts: must be RFC 3339, got %q", s), nil
		}
	}
	th := p.defTenantH
	if len(tenant) != 0 {
		if !bytes.Equal(tenant, p.tenant) {
			p.tenant = append(p.tenant[:0], tenant...)
			p.tenantHash = xxhash.Sum64(tenant)
		}
		th = p.tenantHash
	}
	b := *buf
	need := 24 + len(p.opt.Tenant) + len(tenant) + len(a) + len(source) + len(p.opt.Source)
	if cap(b)-len(b) < need {
		// The chunk's buffer is full: rows already taken keep pointing into the old one.
		b = make([]byte, 0, max(importChunkBuf, need))
	}
	start := len(b)
	b = append(b, pOptOut)
	if len(tenant) != 0 {
		b = binary.AppendUvarint(b, uint64(len(tenant)))
		b = append(b, tenant...)
	} else {
		b = appendLP(b, p.opt.Tenant)
	}
	b = append(append(b, code), a...)
	k := b[start:len(b):len(b)]
	start = len(b)
	b = binary.BigEndian.AppendUint64(b, uint64(ts.UnixNano()))
	if len(source) != 0 {
		b = append(b, source...)
	} else {
		b = append(b, p.opt.Source...)
	}
	v := b[start:len(b):len(b)]
	*buf = b
	return importRow{key: k, val: v, hash: xxhash.Sum64String(a) ^ (th * 0x9E3779B97F4A7C15), kh: xxhash.Sum64(k)}, line, "", nil
}

// chanCodeBytes is chanCode of a CSV field; 0 for an unknown channel.
func chanCodeBytes(b []byte) byte {
	switch string(b) { // no allocation: the compiler compares in place
	case string(dispatch.ChannelAll):
		return 'a'
	case string(dispatch.ChannelSMS):
		return 's'
	case string(dispatch.ChannelVoice):
		return 'v'
	}
	return 0
}

// normalizeBytes is dispatch.NormalizeE164 of a CSV field. A field that looks canonical
// ("+" and digits, the common case) is passed without copying, through a string that
// aliases the reader's buffer: NormalizeE164 then returns it as is (its fast path) or an
// error, and the caller copies the result into the key before the buffer is reused.
// Anything else is copied first: the phonenumbers parser then runs anyway.
func normalizeBytes(b []byte, region string) (string, error) {
	if looksCanonical(b) {
		return dispatch.NormalizeE164(unsafe.String(unsafe.SliceData(b), len(b)), region)
	}
	return dispatch.NormalizeE164(string(b), region)
}

func looksCanonical(b []byte) bool {
	if len(b) < 8 || len(b) > 16 || b[0] != '+' {
		return false
	}
	for _, c := range b[1:] {
		if c < '0' || c > '9' {
			return false
		}
	}
	return true
}

// header maps columns; it reports whether rec is a header row.
func (p *csvParser) header(rec [][]byte) bool {
	for i := range p.cols {
		p.cols[i] = -1
	}
	isHeader := false
	for _, f := range rec {
		if bytes.EqualFold(bytes.TrimSpace(f), []byte("address")) {
			isHeader = true
		}
	}
	if isHeader {
		for i, f := range rec {
			for c, name := range CSVHeader {
				if bytes.EqualFold(bytes.TrimSpace(f), []byte(name)) {
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
