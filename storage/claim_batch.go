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

// claimBatchMax is the most claims committed in one transaction.
const claimBatchMax = 256

// claimBatcher group-commits concurrent Claims: one Badger transaction per batch instead
// of one per request. There is no timer and no goroutine of its own: a Claim that finds
// no commit running commits at once (alone at light load, so no added latency); Claims
// that arrive while a commit runs queue up, and when it ends the first of them becomes
// the next leader and commits the whole queue (up to claimBatchMax) in one transaction.
// Each caller commits at most one batch, its own, so nobody serves the others for long.
// The zero value is ready to use.
type claimBatcher struct {
	mu    sync.Mutex
	queue []*claimReq
	busy  bool // a leader is committing
	pool  sync.Pool
}

// claimReq is one Claim call waiting for its batch.
type claimReq struct {
	id, source string
	at         time.Time
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
	b.queue = append(b.queue, r)
	if b.busy {
		b.mu.Unlock()
		if lead := <-r.wake; !lead {
			return
		}
		b.mu.Lock()
	} else {
		b.busy = true
	}
	// Leading: commit the queue (r is its first element).
	n := min(len(b.queue), claimBatchMax)
	batch := make([]*claimReq, n)
	copy(batch, b.queue)
	rest := copy(b.queue, b.queue[n:])
	clear(b.queue[rest:])
	b.queue = b.queue[:rest]
	b.mu.Unlock()

	db.commitClaims(batch)

	b.mu.Lock()
	var next *claimReq
	if len(b.queue) > 0 {
		next = b.queue[0]
	} else {
		b.busy = false
	}
	b.mu.Unlock()
	for _, q := range batch {
		if q != r {
			q.wake <- false
		}
	}
	if next != nil {
		next.wake <- true
	}
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
	*r = claimReq{wake: r.wake}
	b.pool.Put(r)
}

// commitClaims claims every request of batch, in order, in one transaction, and sets
// each one's result. A later request for an id claimed earlier in the same batch sees
// that claim (the transaction reads its own writes), so the first claim wins as it does
// across batches. A batch too big for one transaction is committed in halves.
func (db *DB) commitClaims(batch []*claimReq) {
	exp := db.expiry()
	err := db.update(func(txn *badger.Txn) error {
		for _, r := range batch {
			r.prev, r.existed, r.err = dispatch.Claim{}, false, nil
			if err := claimIn(txn, r, exp); err != nil {
				return err
			}
		}
		return nil
	})
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
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(r.source)), uint64(r.at.UnixNano()))
		return txn.SetEntry(&badger.Entry{Key: ck, Value: append(v, r.source...), ExpiresAt: exp})
	}
	if err != nil {
		return err
	}
	r.existed = true
	err = item.Value(func(v []byte) error {
		if len(v) < 8 {
			return fmt.Errorf("%w: claim of %q", ErrCorrupt, r.id)
		}
		r.prev = dispatch.Claim{Source: string(v[8:]), At: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()}
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
