package storage

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/dgraph-io/badger/v4"
)

// Outbox batches. One transaction's events (a claim batch's accepted events, or an
// append's) are one outbox entry, x first -> batch, holding the events with the
// consecutive seqs first, first+1, … in order. A batch of one is the event's JSON alone
// (the format of every entry before batches, still read). Each Badger entry costs a
// skiplist insert, a value-log record and its share of every flush and compaction, the
// CPU bursts that set the tail latency; per request that was four entries (claim,
// accepted, submitted, history index) and is now about two.
//
// A batch value is batchMark, the count (uvarint), then each event as its length
// (uvarint) and JSON. A JSON value starts with '{', and the earliest format's x values
// (a history key) with 'h', so the three are told apart by their first byte.
const batchMark = 0xB1

// batchValue is the outbox value of events (their JSON, in seq order): the one event's
// JSON itself (not copied), or a new batch.
func batchValue(events [][]byte) []byte {
	if len(events) == 1 {
		return events[0]
	}
	n := 1 + binary.MaxVarintLen64
	for _, e := range events {
		n += binary.MaxVarintLen64 + len(e)
	}
	b := make([]byte, 0, n)
	b = append(b, batchMark)
	b = binary.AppendUvarint(b, uint64(len(events)))
	for _, e := range events {
		b = binary.AppendUvarint(b, uint64(len(e)))
		b = append(b, e...)
	}
	return b
}

// batchHeader returns how many events an outbox value holds and the bytes after its
// header (for one of the earlier formats: 1 and nil).
func batchHeader(v []byte) (int, []byte, error) {
	if len(v) == 0 || v[0] != batchMark {
		return 1, nil, nil
	}
	n, k := binary.Uvarint(v[1:])
	if k <= 0 || n == 0 || n > uint64(len(v)) {
		return 0, nil, errors.New("bad outbox batch header")
	}
	return int(n), v[1+k:], nil
}

// eachInBatch calls fn with the index and value of every event of an outbox value, in
// order (for one of the earlier formats: index 0 and the whole value). The slices are
// v's.
func eachInBatch(v []byte, fn func(i int, ev []byte) error) error {
	if len(v) == 0 || v[0] != batchMark {
		return fn(0, v)
	}
	n, rest, err := batchHeader(v)
	if err != nil {
		return err
	}
	for i := range n {
		l, k := binary.Uvarint(rest)
		if k <= 0 || uint64(len(rest)-k) < l {
			return fmt.Errorf("outbox batch event %d of %d truncated", i, n)
		}
		if err := fn(i, rest[k:k+int(l)]); err != nil {
			return err
		}
		rest = rest[k+int(l):]
	}
	if len(rest) != 0 {
		return errors.New("outbox batch has trailing bytes")
	}
	return nil
}

// batchStart returns the key of the outbox entry whose batch may hold seq: the last x
// key at or below x seq (nil when there is none). Reads are of the earliest entries
// first, so the iterator only steps back over keys.
func batchStart(txn *badger.Txn, seq uint64) []byte {
	io := badger.DefaultIteratorOptions
	io.PrefetchValues = false
	io.Reverse = true
	io.Prefix = []byte{pOutbox}
	it := txn.NewIterator(io)
	defer it.Close()
	for it.Seek(outboxKey(seq)); it.Valid(); it.Next() {
		if k := it.Item().Key(); len(k) == 9 {
			return append([]byte(nil), k...)
		}
	}
	return nil
}

// outboxEvent returns a copy of the JSON of the outbox event seq, or nil when there is
// none (expired, or never written).
func outboxEvent(txn *badger.Txn, seq uint64) ([]byte, error) {
	k := batchStart(txn, seq)
	if k == nil {
		return nil, nil
	}
	first := binary.BigEndian.Uint64(k[1:])
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, err
	}
	var out []byte
	err = item.Value(func(v []byte) error {
		return eachInBatch(v, func(i int, ev []byte) error {
			if first+uint64(i) == seq {
				out = append([]byte(nil), ev...)
			}
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("%w: outbox entry %d: %v", ErrCorrupt, first, err)
	}
	return out, nil
}
