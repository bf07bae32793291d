package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"sync"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// claimBatchMax is the most claims committed in one transaction, and claimLeaders the
// most batches committing at once: Badger pipelines concurrent commits, and with one batch
// in flight the claims of 256 workers were capped at one commit latency per 256 claims
// (12k claims/s in the bench, every worker waiting in claim).
const (
	claimBatchMax = 256
	claimLeaders  = 4
)

// claimBatcher group-commits concurrent Claims: one Badger transaction per batch instead
// of one per request. There is no timer and no goroutine of its own: a Claim that finds
// fewer than claimLeaders commits running commits at once (alone at light load, so no
// added latency); otherwise it queues, and when a commit ends its leader hands the lead
// to the oldest queued Claim, which commits itself with what queued up behind it (up to
// claimBatchMax) in one transaction. Each caller commits at most one batch, its own.
// Two batches claiming one id at once conflict in Badger and the retried one then sees
// the other's claim, so the first claim wins as with one transaction per claim.
// The zero value is ready to use.
type claimBatcher struct {
	mu      sync.Mutex
	queue   []*claimReq // waiting for a leader, oldest first
	leaders int         // batches committing
	pool    sync.Pool
}

// claimReq is one Claim call waiting for its batch.
type claimReq struct {
	id, source string
	at         time.Time
	accepted   []byte // the accepted event's JSON, written with a new claim; nil: none
	buf        []byte // accepted's storage, kept across uses of the pooled request
	seq        uint64 // accepted's outbox seq when written
	prev       dispatch.Claim
	existed    bool
	err        error
	// wake receives false when the result is set, true when the request leads the next batch.
	wake chan bool
}

// claim runs r through a batch and returns once r's result is set (durable, as the
// transaction of its batch has committed).
func (b *claimBatcher) claim(db *DB, r *claimReq) {
	b.mu.Lock()
	if b.leaders >= claimLeaders {
		b.queue = append(b.queue, r)
		b.mu.Unlock()
		if lead := <-r.wake; !lead {
			return
		}
		b.mu.Lock()
	} else {
		b.leaders++
	}
	// Leading: r (the oldest) and what queued behind it. Invariant: the queue is empty
	// whenever fewer than claimLeaders lead, so nothing older than r waits.
	n := min(len(b.queue), claimBatchMax-1)
	batch := make([]*claimReq, 0, n+1)
	batch = append(batch, r)
	batch = append(batch, b.queue[:n]...)
	b.queue = popFront(b.queue, n)
	b.mu.Unlock()

	db.commitClaims(batch)

	b.mu.Lock()
	var next *claimReq
	if len(b.queue) > 0 {
		next = b.queue[0]
		b.queue = popFront(b.queue, 1)
	} else {
		b.leaders--
	}
	b.mu.Unlock()
	for _, q := range batch[1:] {
		q.wake <- false
	}
	if next != nil {
		next.wake <- true
	}
}

// popFront removes the first n elements of q in place.
func popFront(q []*claimReq, n int) []*claimReq {
	rest := copy(q, q[n:])
	clear(q[rest:])
	return q[:rest]
}

func (b *claimBatcher) get(id, source string, at time.Time) *claimReq {
	r, _ := b.pool.Get().(*claimReq)
	if r == nil {
		r = &claimReq{wake: make(chan bool, 1)}
	}
	r.id, r.source, r.at = id, source, at
	return r
}

func (b *claimBatcher) put(r *claimReq) {
	if cap(r.buf) > 4<<10 { // an outsized event: do not keep its buffer
		r.buf = nil
	}
	*r = claimReq{wake: r.wake, buf: r.buf[:0]}
	b.pool.Put(r)
}

// commitClaims claims every request of batch, in order, in one transaction, and sets
// each one's result. A later request for an id claimed earlier in the same batch sees
// that claim (the transaction reads its own writes), so the first claim wins as it does
// across batches. A new claim that carries an accepted event writes it too, with a seq
// reserved before the transaction; the batch's accepted events are one outbox entry. A
// batch too big for one transaction is committed in halves.
func (db *DB) commitClaims(batch []*claimReq) {
	exp := db.expiry()
	var with []*claimReq
	for _, r := range batch {
		if r.accepted != nil {
			with = append(with, r)
		}
	}
	var first uint64
	if len(with) > 0 {
		first = db.reserveSeqs(len(with))
	}
	written := 0 // accepted events written: seqs first..first+written-1
	err := db.update(func(txn *badger.Txn) error {
		evs := make([][]byte, 0, len(with))
		written = 0
		for _, r := range batch {
			r.prev, r.existed, r.err = dispatch.Claim{}, false, nil
			if r.accepted != nil {
				// The seq this claim's accepted event gets if the claim is new: new
				// claims take the reserved seqs in order, so the batch has no holes.
				r.seq = first + uint64(written)
			}
			if err := claimIn(txn, r, exp); err != nil {
				return err
			}
			if r.accepted != nil && !r.existed {
				// The claim holds the accepted event's seq: its history index (accepted
				// is the first event of a request), one Badger entry fewer per request.
				evs = append(evs, r.accepted)
				written++
			}
		}
		if written == 0 {
			return nil
		}
		// Every accepted event of the batch in one outbox entry (outbox_batch.go); one
		// alone is the pooled request's JSON, which Badger holds only until the commit.
		return txn.SetEntry(&badger.Entry{Key: outboxKey(first), Value: batchValue(evs), ExpiresAt: exp})
	})
	if len(with) > 0 {
		// Release what was not written: the seqs after the written ones, or all of them.
		db.releaseSeqs(first, len(with), func(i int) bool { return err == nil && i < written })
		for _, r := range with {
			if err != nil || r.existed {
				r.seq = 0
			}
		}
	}
	if errors.Is(err, badger.ErrTxnTooBig) && len(batch) > 1 {
		h := len(batch) / 2
		db.commitClaims(batch[:h])
		db.commitClaims(batch[h:])
		return
	}
	if err != nil {
		for _, r := range batch {
			r.prev, r.existed, r.err = dispatch.Claim{}, false, err
		}
	}
}

// claimIn claims r.id in txn, or reads the claim that exists.
func claimIn(txn *badger.Txn, r *claimReq, exp uint64) error {
	ck := key1(pClaim, r.id)
	item, err := txn.Get(ck)
	if errors.Is(err, badger.ErrKeyNotFound) {
		var seq uint64
		if r.accepted != nil {
			seq = r.seq
		}
		return txn.SetEntry(&badger.Entry{Key: ck, Value: appendClaim(nil, r.at, seq, r.source), ExpiresAt: exp})
	}
	if err != nil {
		return err
	}
	r.existed = true
	err = item.Value(func(v []byte) error {
		at, _, source, ok := parseClaim(v)
		if !ok {
			return fmt.Errorf("%w: claim of %q", ErrCorrupt, r.id)
		}
		r.prev = dispatch.Claim{Source: source, At: at}
		return nil
	})
	if err != nil {
		return err
	}
	item, err = txn.Get(key1(pTerminal, r.id))
	if errors.Is(err, badger.ErrKeyNotFound) {
		return nil
	}
	if err != nil {
		return err
	}
	return item.Value(func(v []byte) error { r.prev.Terminal = dispatch.Status(v); return nil })
}

// claimV2 marks a claim value that holds the seq of its accepted event. A claim of an
// earlier data dir starts with its time (positive unix nanoseconds, so below 0x80).
const claimV2 = 0xC2

// appendClaim appends a claim value: claimV2, at(8), the accepted event's outbox seq(8)
// (0: none written with the claim), source.
func appendClaim(b []byte, at time.Time, seq uint64, source string) []byte {
	b = append(b, claimV2)
	b = binary.BigEndian.AppendUint64(b, uint64(at.UnixNano()))
	b = binary.BigEndian.AppendUint64(b, seq)
	return append(b, source...)
}

// parseClaim reads a claim value of either format; seq is 0 in the earlier one (whose
// accepted event, if any, has a history index entry of its own).
func parseClaim(v []byte) (at time.Time, seq uint64, source string, ok bool) {
	if len(v) > 0 && v[0] == claimV2 {
		if len(v) < 17 {
			return time.Time{}, 0, "", false
		}
		return time.Unix(0, int64(binary.BigEndian.Uint64(v[1:]))).UTC(), binary.BigEndian.Uint64(v[9:]), string(v[17:]), true
	}
	if len(v) < 8 {
		return time.Time{}, 0, "", false
	}
	return time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(), 0, string(v[8:]), true
}
