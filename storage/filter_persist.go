package storage

import (
	"bufio"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"

	"github.com/cespare/xxhash/v2"
)

// The opt-out state file holds the opt-out count and the filter as they were at a clean
// Close, so that Open need not read every opt-out key again (16 s for 10M on a loaded
// machine). It is trusted only when nothing can have changed since it was written:
//
//   - it records Badger's sequence (MaxVersion: the commit timestamp of the newest write;
//     every commit takes a higher one) after the last write before Close, and Open uses
//     it only when the database's sequence is still exactly that;
//   - Open removes it (and syncs the directory) before returning, so after a crash there
//     is no file and Open scans, whatever the process wrote before dying.
//
// A bad magic, checksum or sequence, a missing file, or a file without a filter when one
// is wanted: Open scans, as before. It never gives a wrong answer, only a slower Open.
//
// Removed opt-outs stay in the filter (as before, until a scan rebuilds it), and now also
// across clean restarts: each costs a Badger read when its number is checked, never a
// wrong answer. So that they cannot pile up, and so that a filter grown by imports into
// many layers is rebuilt compact, Close saves the filter only while its layers hold at
// most 2×count + 2^20 additions and number at most maxSavedLayers; otherwise it saves
// nothing and the next Open scans.
const (
	optStateFile   = "sendcore-optouts.state"
	optStateMagic  = "SCOPTST1"
	maxSavedLayers = 6
)

// saveOptOutState writes the state file; Close calls it after the last write.
func (db *DB) saveOptOutState() error {
	path := filepath.Join(db.dir, optStateFile)
	if db.filter != nil && !db.filter.compact(db.optCount.Load()) {
		db.log.Info("storage: opt-out filter not saved: stale or layered; next open rebuilds it")
		if err := os.Remove(path); err != nil && !errors.Is(err, os.ErrNotExist) {
			return err
		}
		return nil
	}
	tmp := path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o640)
	if err != nil {
		return err
	}
	defer os.Remove(tmp) //nolint:errcheck // gone after the rename
	h := xxhash.New()
	bw := bufio.NewWriterSize(io.MultiWriter(f, h), 1<<20)
	var hdr []byte
	hdr = append(hdr, optStateMagic...)
	hdr = binary.LittleEndian.AppendUint64(hdr, db.bdb.MaxVersion())
	hdr = binary.LittleEndian.AppendUint64(hdr, uint64(db.optCount.Load()))
	var layers []*bloomLayer
	if db.filter != nil {
		layers = *db.filter.layers.Load()
	}
	hdr = binary.LittleEndian.AppendUint32(hdr, uint32(len(layers)))
	_, err = bw.Write(hdr)
	buf := make([]byte, 0, 1<<16)
	for _, l := range layers {
		if err != nil {
			break
		}
		buf = binary.LittleEndian.AppendUint64(buf[:0], uint64(l.cap))
		buf = binary.LittleEndian.AppendUint64(buf, uint64(l.n))
		buf = binary.LittleEndian.AppendUint64(buf, l.nblocks)
		for i, w := range l.words {
			buf = binary.LittleEndian.AppendUint64(buf, w)
			if len(buf) >= cap(buf)-8 || i == len(l.words)-1 {
				if _, err = bw.Write(buf); err != nil {
					break
				}
				buf = buf[:0]
			}
		}
	}
	if err == nil {
		err = bw.Flush()
	}
	if err == nil {
		_, err = f.Write(binary.LittleEndian.AppendUint64(nil, h.Sum64()))
	}
	if err == nil {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = os.Rename(tmp, path)
	}
	if err == nil {
		err = syncDir(db.dir)
	}
	return err
}

// loadOptOutState reads the state file into optCount and the filter when it can be
// trusted (see optStateFile), and removes it. It reports whether it was used; a file it
// cannot use is not an error.
func (db *DB) loadOptOutState() (bool, error) {
	path := filepath.Join(db.dir, optStateFile)
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return false, nil
	}
	if err != nil {
		return false, err
	}
	count, fl, why := db.readOptOutState(f)
	f.Close()
	// From now on writes may happen: the file must be gone before Open returns.
	if err := os.Remove(path); err != nil {
		return false, err
	}
	if err := syncDir(db.dir); err != nil {
		return false, err
	}
	if why != "" {
		db.log.Info("storage: not using saved opt-out state; scanning", "reason", why)
		return false, nil
	}
	db.filter = fl
	db.optCount.Store(count)
	return true, nil
}

// readOptOutState decodes the file; why says what makes it unusable ("" when usable).
func (db *DB) readOptOutState(f *os.File) (count int64, fl *filter, why string) {
	st, err := f.Stat()
	if err != nil {
		return 0, nil, err.Error()
	}
	size := st.Size()
	const hdrLen = len(optStateMagic) + 8 + 8 + 4
	if size < int64(hdrLen)+8 {
		return 0, nil, "short file"
	}
	h := xxhash.New()
	br := bufio.NewReaderSize(io.TeeReader(io.LimitReader(f, size-8), h), 1<<20)
	hdr := make([]byte, hdrLen)
	if _, err := io.ReadFull(br, hdr); err != nil {
		return 0, nil, err.Error()
	}
	if string(hdr[:len(optStateMagic)]) != optStateMagic {
		return 0, nil, "bad magic"
	}
	p := hdr[len(optStateMagic):]
	if seq, now := binary.LittleEndian.Uint64(p), db.bdb.MaxVersion(); seq != now {
		return 0, nil, fmt.Sprintf("written at sequence %d, database is at %d", seq, now)
	}
	count = int64(binary.LittleEndian.Uint64(p[8:]))
	nl := int(binary.LittleEndian.Uint32(p[16:]))
	if count < 0 || nl > 64 {
		return 0, nil, "bad header"
	}
	if !db.opt.NoOptOutFilter && nl == 0 {
		return 0, nil, "saved without a filter"
	}
	var layers []*bloomLayer
	rest := size - 8 - int64(hdrLen)
	var lh [24]byte
	slab := make([]byte, 1<<16)
	for range nl {
		if _, err := io.ReadFull(br, lh[:]); err != nil {
			return 0, nil, err.Error()
		}
		lcap, n, nb := int64(binary.LittleEndian.Uint64(lh[:])), int64(binary.LittleEndian.Uint64(lh[8:])), binary.LittleEndian.Uint64(lh[16:])
		rest -= 24
		if lcap <= 0 || n < 0 || nb == 0 || nb > uint64(rest)/64 {
			return 0, nil, "bad layer"
		}
		rest -= int64(nb) * 64
		if db.opt.NoOptOutFilter {
			if _, err := br.Discard(int(nb) * 64); err != nil {
				return 0, nil, err.Error()
			}
			continue
		}
		l := &bloomLayer{words: make([]uint64, nb*8), nblocks: nb, cap: lcap, n: n}
		for w := l.words; len(w) > 0; {
			k := min(len(w), len(slab)/8)
			if _, err := io.ReadFull(br, slab[:k*8]); err != nil {
				return 0, nil, err.Error()
			}
			for i := range k {
				w[i] = binary.LittleEndian.Uint64(slab[i*8:])
			}
			w = w[k:]
		}
		layers = append(layers, l)
	}
	if rest != 0 {
		return 0, nil, "trailing bytes"
	}
	var sum [8]byte
	if _, err := f.ReadAt(sum[:], size-8); err != nil {
		return 0, nil, err.Error()
	}
	if binary.LittleEndian.Uint64(sum[:]) != h.Sum64() {
		return 0, nil, "checksum mismatch"
	}
	if db.opt.NoOptOutFilter {
		return count, nil, ""
	}
	fl = &filter{}
	fl.layers.Store(&layers)
	return count, fl, ""
}

// compact reports whether the filter is worth saving: few removed or duplicate keys
// (additions at most 2×count + 2^20) and at most maxSavedLayers layers.
func (f *filter) compact(count int64) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	ls := *f.layers.Load()
	var n int64
	for _, l := range ls {
		n += l.n
	}
	return len(ls) <= maxSavedLayers && n <= 2*count+1<<20
}

func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}
