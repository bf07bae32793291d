package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math/bits"
	"sort"
	"strconv"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// The transactional outbox of the events topic. AppendSeqs writes every event it adds
// once, into the outbox entry of its transaction (x first -> the events with seqs first,
// first+1, …: outbox_batch.go), with the history index h id seq -> nil beside each, in
// one transaction: an event is durable in both or in neither. Both expire
// with the history (Options.Retention). The events writer publishes an event and then
// calls Published, which marks it published in memory and moves the published watermark
// (the key y: every entry up to it is published) over the longest published prefix. The
// watermark is one small write per call where the earlier design deleted every entry:
// three Badger entries per event instead of four, and no tombstones for compaction.
// After a crash, Outbox offers the entries above the watermark (Open finds them). The
// sequence counter is seeded at open above both the clock and the last outbox entry, so
// sequence numbers increase across restarts. Normal operation never reads the outbox: the
// writer knows what it appended.
//
// Earlier data dirs held the JSON in h and the history key in x; both forms are read.

func outboxKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), pOutbox), seq)
}

var outboxMarkKey = []byte{pOutboxMark}

// outbox is the in-memory side of the outbox: what is appended and not yet published.
type outbox struct {
	pubMu sync.Mutex // serialises Published: the watermark is written in increasing order
	mu    sync.Mutex // guards pend and the taking of seqs, so ranges register in seq order
	pend  pendingSeqs
	mark  uint64 // the persisted watermark; written under pubMu, read under pubMu or at Open
}

// published reports whether seq is marked published in memory.
func (o *outbox) published(seq uint64) bool {
	o.mu.Lock()
	defer o.mu.Unlock()
	return o.pend.isPublished(seq)
}

// reserveSeqs takes n consecutive sequence numbers and registers them pending before
// anything is written with them, so the watermark cannot pass a write in progress,
// however many commit at once. What is then not written (a skipped event, a claim that
// existed, a failed commit) is released.
func (db *DB) reserveSeqs(n int) uint64 {
	db.ob.mu.Lock()
	defer db.ob.mu.Unlock()
	last := db.histSeq.Add(uint64(n))
	first := last - uint64(n) + 1
	db.ob.pend.add(first, last)
	return first
}

// releaseSeqs marks the reserved seqs first..first+n-1 that were not written as done,
// for the watermark; written(i) tells whether first+i was.
func (db *DB) releaseSeqs(first uint64, n int, written func(i int) bool) {
	db.ob.mu.Lock()
	defer db.ob.mu.Unlock()
	for i := range n {
		if !written(i) {
			db.ob.pend.publish(first + uint64(i))
		}
	}
}

// pendingSeqs holds the outbox entries not yet published, as ranges of consecutive
// sequence numbers in increasing order (one per committed append, or per run found at
// Open), each with a bitset of its published members.
type pendingSeqs struct {
	ranges []seqRange
	head   int    // ranges[:head] are fully published
	top    uint64 // highest seq registered
}

type seqRange struct {
	first, last uint64
	left        int      // members not yet published
	done        []uint64 // bit i: first+i is published; nil once left is 0
}

func (p *pendingSeqs) add(first, last uint64) {
	n := last - first + 1
	p.ranges = append(p.ranges, seqRange{first: first, last: last, left: int(n), done: make([]uint64, (n+63)/64)})
	p.top = max(p.top, last)
}

// find returns the range that holds seq, or nil.
func (p *pendingSeqs) find(seq uint64) *seqRange {
	rs := p.ranges[p.head:]
	i := sort.Search(len(rs), func(i int) bool { return rs[i].last >= seq })
	if i == len(rs) || rs[i].first > seq {
		return nil
	}
	return &rs[i]
}

// publish marks seq published; unknown or already published seqs are ignored.
func (p *pendingSeqs) publish(seq uint64) {
	r := p.find(seq)
	if r == nil || r.left == 0 {
		return
	}
	i := seq - r.first
	w, b := i/64, uint64(1)<<(i%64)
	if r.done[w]&b != 0 {
		return
	}
	r.done[w] |= b
	if r.left--; r.left == 0 {
		r.done = nil
	}
}

// isPublished reports whether seq is registered and marked published.
func (p *pendingSeqs) isPublished(seq uint64) bool {
	r := p.find(seq)
	if r == nil {
		return false
	}
	if r.left == 0 {
		return true
	}
	i := seq - r.first
	return r.done[i/64]&(1<<(i%64)) != 0
}

// advance drops the published prefix of ranges and returns the watermark: every
// registered seq up to it is published.
func (p *pendingSeqs) advance() uint64 {
	for p.head < len(p.ranges) && p.ranges[p.head].left == 0 {
		p.head++
	}
	if p.head == len(p.ranges) {
		p.ranges, p.head = p.ranges[:0], 0
		return p.top
	}
	// The head range is partly published: up to its first member that is not.
	h := &p.ranges[p.head]
	w := h.first - 1
	for i, word := range h.done {
		if word != ^uint64(0) {
			w = h.first + uint64(i*64+bits.TrailingZeros64(^word)) - 1
			break
		}
	}
	if p.head > 64 && p.head > len(p.ranges)/2 {
		p.ranges = append(p.ranges[:0], p.ranges[p.head:]...)
		p.head = 0
	}
	// A range stuck unpublished at the head (its events topic write failed) keeps the
	// ones after it; drop those fully published so that memory stays bounded by what is
	// really pending.
	if len(p.ranges)-p.head > 4096 {
		keep := p.ranges[:p.head+1]
		for _, r := range p.ranges[p.head+1:] {
			if r.left > 0 {
				keep = append(keep, r)
			}
		}
		clear(p.ranges[len(keep):])
		p.ranges = keep
	}
	return w
}

// seedSeq loads the watermark, registers the outbox entries above it as pending, and sets
// the sequence counter above the clock, the watermark and the last of those entries.
func (db *DB) seedSeq() error {
	seed := uint64(time.Now().UnixNano())
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(outboxMarkKey)
		switch {
		case err == nil:
			if err := item.Value(func(v []byte) error {
				if len(v) != 8 {
					return fmt.Errorf("%w: outbox watermark of %d bytes", ErrCorrupt, len(v))
				}
				db.ob.mark = binary.BigEndian.Uint64(v)
				return nil
			}); err != nil {
				return err
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		io := badger.DefaultIteratorOptions
		io.Prefix = []byte{pOutbox}
		it := txn.NewIterator(io)
		defer it.Close()
		// From the batch that holds mark+1, which may start at or below the watermark.
		seek := batchStart(txn, db.ob.mark+1)
		if seek == nil {
			seek = outboxKey(db.ob.mark + 1)
		}
		var first, last uint64
		for it.Seek(seek); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 9 {
				continue
			}
			lo := binary.BigEndian.Uint64(k[1:])
			var n int
			if err := it.Item().Value(func(v []byte) error {
				var err error
				n, _, err = batchHeader(v)
				return err
			}); err != nil {
				return fmt.Errorf("%w: outbox entry %d: %v", ErrCorrupt, lo, err)
			}
			hi := lo + uint64(n) - 1
			if hi <= db.ob.mark || hi < lo {
				continue // at or below the watermark (or mark+1 overflowed)
			}
			lo = max(lo, db.ob.mark+1)
			if first != 0 && lo != last+1 {
				db.ob.pend.add(first, last)
				first = 0
			}
			if first == 0 {
				first = lo
			}
			last = hi
			seed = max(seed, hi+1)
		}
		if first != 0 {
			db.ob.pend.add(first, last)
		}
		return nil // entries at or below the watermark are below mark+1, the floor below
	})
	db.ob.pend.top = max(db.ob.pend.top, db.ob.mark)
	db.histSeq.Store(max(seed, db.ob.mark+1))
	return err
}

// AppendSeqs adds events to the status histories of their ids, in order, marks an id
// terminal on a terminal event, and puts every added event into the outbox, in one
// transaction (a batch too big for one is split in order); durable when it returns. A
// terminal event other than duplicate for an id that already has a terminal status
// (stored, or earlier in the batch) is not added: its seq is 0. duplicate never marks an
// id terminal. Records expire after Options.Retention.
func (db *DB) AppendSeqs(events []dispatch.Event) ([]uint64, error) {
	seqs, _, err := db.AppendSeqsJSON(events)
	return seqs, err
}

// AppendSeqsJSON is AppendSeqs that also returns each added event's JSON as stored (nil
// for one not added): dispatch.EncodingLedger. The slices are the caller's.
func (db *DB) AppendSeqsJSON(events []dispatch.Event) ([]uint64, [][]byte, error) {
	if len(events) == 0 {
		return nil, nil, nil
	}
	for i := range events {
		if err := checkID("event.id", events[i].ID); err != nil {
			return nil, nil, err
		}
	}
	// One buffer holds every value: Badger keeps the slices until the commit, and an
	// append that grows buf leaves the earlier ones intact.
	vals := make([][]byte, len(events))
	buf := make([]byte, 0, 320*len(events))
	for i := range events {
		start := len(buf)
		var err error
		if buf, err = dispatch.AppendEventJSON(buf, &events[i]); err != nil {
			return nil, nil, fmt.Errorf("%w: event %q: %v", ErrInvalid, events[i].ID, err)
		}
		vals[i] = buf[start:len(buf):len(buf)]
	}
	if err := db.acquire(); err != nil {
		return nil, nil, err
	}
	defer db.release()
	start := time.Now()
	seqs := make([]uint64, len(events))
	first := db.reserveSeqs(len(events))
	err := db.appendTxn(events, vals, seqs, first)
	// What was not written: skipped events' seqs, and a failed transaction's (appendTxn
	// clears their seqs; a half committed before keeps its own). Written seqs increase
	// with i, and releaseSeqs asks in increasing order.
	j := 0
	db.releaseSeqs(first, len(events), func(i int) bool {
		s := first + uint64(i)
		for j < len(seqs) && seqs[j] < s { // 0 (not written) sorts first
			j++
		}
		return j < len(seqs) && seqs[j] == s
	})
	db.m.write("append", time.Since(start).Seconds())
	if err != nil {
		return nil, nil, fmt.Errorf("storage: append events: %w", err)
	}
	for i := range vals {
		if seqs[i] == 0 {
			vals[i] = nil
		}
	}
	return seqs, vals, nil
}

// appendTxn commits events in one transaction (halves when too big). The events added
// take the seqs first, first+1, … in order (events[i]'s in seqs[i]; 0 for one not added),
// and are one outbox entry (outbox_batch.go), each with its history index h id seq.
func (db *DB) appendTxn(events []dispatch.Event, vals [][]byte, seqs []uint64, first uint64) error {
	exp := db.expiry()
	size := 0
	for i := range events {
		size += 2*(12+len(events[i].ID)) + 9
	}
	err := db.update(func(txn *badger.Txn) error {
		clear(seqs)
		// One arena for every key and one slice of entries per attempt: Badger keeps
		// them until the commit.
		arena := make([]byte, 0, size)
		ents := make([]badger.Entry, 0, len(events)+1)
		added := make([][]byte, 0, len(events))
		var terminal map[string]bool
		for i := range events {
			e := &events[i]
			if e.Status.Terminal() && e.Status != dispatch.StatusDuplicate {
				if terminal == nil {
					terminal = map[string]bool{}
				}
				done, seen := terminal[e.ID]
				start := len(arena)
				arena = append(append(arena, pTerminal), e.ID...)
				tk := arena[start:len(arena):len(arena)]
				if !seen {
					_, err := txn.Get(tk)
					switch {
					case err == nil:
						done = true
					case !errors.Is(err, badger.ErrKeyNotFound):
						return err
					}
				}
				terminal[e.ID] = true
				if done {
					continue // the first terminal status stands, alone
				}
				if err := txn.SetEntry(&badger.Entry{Key: tk, Value: []byte(e.Status), ExpiresAt: exp}); err != nil {
					return err
				}
			}
			seq := first + uint64(len(added))
			start := len(arena)
			arena = binary.BigEndian.AppendUint64(appendLP(append(arena, pHistory), e.ID), seq)
			ents = append(ents, badger.Entry{Key: arena[start:len(arena):len(arena)], ExpiresAt: exp})
			if err := txn.SetEntry(&ents[len(ents)-1]); err != nil {
				return err
			}
			added = append(added, vals[i])
			seqs[i] = seq
		}
		if len(added) == 0 {
			return nil
		}
		ents = append(ents, badger.Entry{Key: outboxKey(first), Value: batchValue(added), ExpiresAt: exp})
		return txn.SetEntry(&ents[len(ents)-1])
	})
	if errors.Is(err, badger.ErrTxnTooBig) && len(events) > 1 {
		clear(seqs)
		h := len(events) / 2
		if err = db.appendTxn(events[:h], vals[:h], seqs[:h], first); err == nil {
			err = db.appendTxn(events[h:], vals[h:], seqs[h:], first+uint64(h))
		}
		return err
	}
	if err != nil {
		clear(seqs)
	}
	return err
}

// Outbox calls fn for every outbox entry with a sequence number above after that is
// not published, in sequence order, as of one snapshot; an error from fn stops it and
// is returned. Entries that expired are skipped.
func (db *DB) Outbox(after uint64, fn func(seq uint64, e dispatch.Event) error) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	db.ob.pubMu.Lock()
	from := max(after, db.ob.mark)
	db.ob.pubMu.Unlock()
	if from == ^uint64(0) {
		return nil
	}
	return db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = []byte{pOutbox}
		io.PrefetchSize = 256
		it := txn.NewIterator(io)
		defer it.Close()
		// From the batch that holds from+1, which may start below it.
		seek := batchStart(txn, from+1)
		if seek == nil {
			seek = outboxKey(from + 1)
		}
		for it.Seek(seek); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 9 {
				continue
			}
			first := binary.BigEndian.Uint64(k[1:])
			var evs []dispatch.Event
			var seqs []uint64
			var hk []byte
			err := it.Item().Value(func(v []byte) error {
				if len(v) > 0 && v[0] == pHistory {
					if first > from {
						hk = append(hk, v...) // an earlier data dir: x -> history key
					}
					return nil
				}
				return eachInBatch(v, func(i int, ev []byte) error {
					seq := first + uint64(i)
					if seq <= from {
						return nil
					}
					if db.ob.published(seq) {
						return nil
					}
					var e dispatch.Event
					if err := json.Unmarshal(ev, &e); err != nil {
						return err
					}
					evs, seqs = append(evs, e), append(seqs, seq)
					return nil
				})
			})
			if err != nil {
				return fmt.Errorf("%w: outbox entry %d: %v", ErrCorrupt, first, err)
			}
			if hk != nil {
				published := db.ob.published(first)
				var e dispatch.Event
				ok, err := getJSON(txn, hk, &e, "outbox entry", strconv.FormatUint(first, 10))
				if err != nil {
					return err
				}
				if ok && !published {
					evs, seqs = append(evs, e), append(seqs, first)
				}
			}
			for i := range evs {
				if err := fn(seqs[i], evs[i]); err != nil {
					return err
				}
			}
		}
		return nil
	})
}

// Published marks the outbox entries seqs published (unknown ones are ignored) and
// moves the watermark over the published prefix: one small write, not durable at once.
// After a restart the entries above the watermark are offered again, so an event
// published out of order, or just before a crash, can be published twice (identical
// bytes).
func (db *DB) Published(seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	start := time.Now()
	db.ob.pubMu.Lock()
	defer db.ob.pubMu.Unlock()
	db.ob.mu.Lock()
	for _, s := range seqs {
		if s != 0 {
			db.ob.pend.publish(s)
		}
	}
	w := db.ob.pend.advance()
	db.ob.mu.Unlock()
	if w <= db.ob.mark {
		return nil
	}
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(outboxMarkKey, binary.BigEndian.AppendUint64(make([]byte, 0, 8), w))
	})
	db.m.write("published", time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("storage: published: %w", err)
	}
	db.ob.mark = w
	return nil
}
