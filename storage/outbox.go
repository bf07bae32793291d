package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"strconv"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// The transactional outbox of the events topic. AppendSeqs writes every event it adds
// to the status history (h id seq) and an outbox entry (x seq -> the history key) in the
// same transaction, so an event is durable in both or in neither. The events writer
// publishes it and then calls Published, which deletes the entries in one write batch;
// after a crash, Outbox offers what is left. Sequence numbers come from one counter,
// seeded at open above both the clock and the last outbox entry, so they increase across
// restarts. Normal operation never reads the outbox: the writer knows what it appended.

func outboxKey(seq uint64) []byte {
	return binary.BigEndian.AppendUint64(append(make([]byte, 0, 9), pOutbox), seq)
}

// seedSeq sets the sequence counter above the clock and above the last outbox entry.
func (db *DB) seedSeq() error {
	seed := uint64(time.Now().UnixNano())
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Reverse, io.PrefetchValues = true, false
		io.Prefix = []byte{pOutbox}
		it := txn.NewIterator(io)
		defer it.Close()
		it.Seek([]byte{pOutbox, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff})
		if it.Valid() {
			if k := it.Item().Key(); len(k) == 9 {
				seed = max(seed, binary.BigEndian.Uint64(k[1:])+1)
			}
		}
		return nil
	})
	db.histSeq.Store(seed)
	return err
}

// AppendSeqs adds events to the status histories of their ids, in order, marks an id
// terminal on a terminal event, and puts every added event into the outbox, in one
// transaction (a batch too big for one is split in order); durable when it returns. A
// terminal event other than duplicate for an id that already has a terminal status
// (stored, or earlier in the batch) is not added: its seq is 0. duplicate never marks an
// id terminal. Records expire after Options.Retention.
func (db *DB) AppendSeqs(events []dispatch.Event) ([]uint64, error) {
	if len(events) == 0 {
		return nil, nil
	}
	for i := range events {
		if err := checkID("event.id", events[i].ID); err != nil {
			return nil, err
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
			return nil, fmt.Errorf("%w: event %q: %v", ErrInvalid, events[i].ID, err)
		}
		vals[i] = buf[start:len(buf):len(buf)]
	}
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()
	start := time.Now()
	seqs := make([]uint64, len(events))
	err := db.appendTxn(events, vals, seqs)
	db.m.write("append", time.Since(start).Seconds())
	if err != nil {
		return nil, fmt.Errorf("storage: append events: %w", err)
	}
	return seqs, nil
}

func (db *DB) appendTxn(events []dispatch.Event, vals [][]byte, seqs []uint64) error {
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
		ents := make([]badger.Entry, 0, 2*len(events))
		set := func(k, v []byte) error {
			ents = append(ents, badger.Entry{Key: k, Value: v, ExpiresAt: exp})
			return txn.SetEntry(&ents[len(ents)-1])
		}
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
			seq := db.histSeq.Add(1)
			start := len(arena)
			arena = binary.BigEndian.AppendUint64(appendLP(append(arena, pHistory), e.ID), seq)
			hk := arena[start:len(arena):len(arena)]
			start = len(arena)
			arena = binary.BigEndian.AppendUint64(append(arena, pOutbox), seq)
			ok := arena[start:len(arena):len(arena)]
			if err := set(hk, vals[i]); err != nil {
				return err
			}
			if err := set(ok, hk); err != nil {
				return err
			}
			seqs[i] = seq
		}
		return nil
	})
	if errors.Is(err, badger.ErrTxnTooBig) && len(events) > 1 {
		h := len(events) / 2
		if err = db.appendTxn(events[:h], vals[:h], seqs[:h]); err == nil {
			err = db.appendTxn(events[h:], vals[h:], seqs[h:])
		}
	}
	return err
}

// Outbox calls fn for every outbox entry with a sequence number above after, in
// sequence order, as of one snapshot; an error from fn stops it and is returned. Entries
// whose history record expired are skipped.
func (db *DB) Outbox(after uint64, fn func(seq uint64, e dispatch.Event) error) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	return db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = []byte{pOutbox}
		io.PrefetchSize = 256
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Seek(outboxKey(after + 1)); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != 9 {
				continue
			}
			seq := binary.BigEndian.Uint64(k[1:])
			if seq <= after {
				continue // after+1 overflowed
			}
			hk, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			var e dispatch.Event
			if ok, err := getJSON(txn, hk, &e, "outbox entry", strconv.FormatUint(seq, 10)); !ok {
				if err != nil {
					return err
				}
				continue
			}
			if err := fn(seq, e); err != nil {
				return err
			}
		}
		return nil
	})
}

// Published removes the outbox entries seqs in one write batch (no conflict checks, no
// read). Not durable at once: an entry may come back after a crash.
func (db *DB) Published(seqs []uint64) error {
	if len(seqs) == 0 {
		return nil
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	start := time.Now()
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, s := range seqs {
		if s == 0 {
			continue
		}
		if err := wb.Delete(outboxKey(s)); err != nil {
			return fmt.Errorf("storage: published: %w", err)
		}
	}
	err := wb.Flush()
	db.m.write("published", time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("storage: published: %w", err)
	}
	return nil
}
