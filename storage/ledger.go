package storage

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

var _ dispatch.EncodingLedger = (*DB)(nil)

func (db *DB) expiry() uint64 {
	return expiresAt(db.opt.Clock().Add(db.opt.Retention))
}

func checkID(field, id string) error {
	if id == "" {
		return fmt.Errorf("%w: %s: must not be empty", ErrInvalid, field)
	}
	return nil
}

// Claim records that id was read from source at at, unless id is already claimed; it then
// returns the earlier claim (with its terminal status, if reached) and true. Claims expire
// after Options.Retention. Durable when it returns.
func (db *DB) Claim(id, source string, at time.Time) (dispatch.Claim, bool, error) {
	prev, existed, _, _, err := db.claim(id, source, at, nil, false)
	return prev, existed, err
}

// ClaimAccepted is Claim that, when it makes a new claim, also adds accepted (an event of
// id) to the history and the outbox in the same transaction, and returns its outbox
// seq; when the claim exists nothing is written and seq is 0.
func (db *DB) ClaimAccepted(id, source string, at time.Time, accepted dispatch.Event) (dispatch.Claim, bool, uint64, error) {
	prev, existed, seq, _, err := db.claimAccepted(id, source, at, accepted, false)
	return prev, existed, seq, err
}

// ClaimAcceptedJSON is ClaimAccepted that also returns a copy of accepted's JSON as
// stored when it was written (dispatch.EncodingLedger).
func (db *DB) ClaimAcceptedJSON(id, source string, at time.Time, accepted dispatch.Event) (dispatch.Claim, bool, uint64, []byte, error) {
	return db.claimAccepted(id, source, at, accepted, true)
}

func (db *DB) claimAccepted(id, source string, at time.Time, accepted dispatch.Event, wantJSON bool) (dispatch.Claim, bool, uint64, []byte, error) {
	if accepted.ID != id {
		return dispatch.Claim{}, false, 0, nil, fmt.Errorf("%w: accepted.id: %q is not the claimed id %q", ErrInvalid, accepted.ID, id)
	}
	return db.claim(id, source, at, &accepted, wantJSON)
}

// claim claims id; with accepted, a new claim also writes it, and with wantJSON its JSON
// as stored is returned (a copy: the stored bytes are the pooled claim request's).
func (db *DB) claim(id, source string, at time.Time, accepted *dispatch.Event, wantJSON bool) (dispatch.Claim, bool, uint64, []byte, error) {
	if err := checkID("id", id); err != nil {
		return dispatch.Claim{}, false, 0, nil, err
	}
	if err := db.acquire(); err != nil {
		return dispatch.Claim{}, false, 0, nil, err
	}
	defer db.release()
	start := time.Now()
	r := db.claims.get(id, source, at)
	defer db.claims.put(r)
	if accepted != nil {
		// Encoded into the pooled request's buffer: Badger holds the value only until
		// the batch commits, which is before r goes back to the pool.
		var err error
		if r.buf, err = dispatch.AppendEventJSON(r.buf[:0], accepted); err != nil {
			return dispatch.Claim{}, false, 0, nil, fmt.Errorf("%w: event %q: %v", ErrInvalid, id, err)
		}
		r.accepted = r.buf
	}
	db.claims.claim(db, r)
	db.m.write("claim", time.Since(start).Seconds())
	if r.err != nil {
		return dispatch.Claim{}, false, 0, nil, fmt.Errorf("storage: claim %q: %w", id, r.err)
	}
	var js []byte
	if wantJSON && r.seq != 0 {
		js = append([]byte(nil), r.accepted...)
	}
	return r.prev, r.existed, r.seq, js, nil
}

// Append adds events to the status histories of their ids, in order, marks an id
// terminal on a terminal event and puts each added event into the outbox, in one atomic
// write (see AppendSeqs). Durable when it returns.
func (db *DB) Append(events []dispatch.Event) error {
	_, err := db.AppendSeqs(events)
	return err
}

// History returns the status history of id, oldest first; nil and no error if unknown
// (or expired).
func (db *DB) History(id string) ([]dispatch.Event, error) {
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()
	var out []dispatch.Event
	err := db.bdb.View(func(txn *badger.Txn) error {
		// The event at outbox seq, if it has not expired.
		event := func(seq uint64) error {
			v, err := outboxEvent(txn, seq)
			if err != nil || v == nil {
				return err // nil: expired
			}
			var e dispatch.Event
			if err := json.Unmarshal(v, &e); err != nil {
				return fmt.Errorf("%w: history of %q: %v", ErrCorrupt, id, err)
			}
			out = append(out, e)
			return nil
		}
		// A claim made with its accepted event holds that event's seq: the first of
		// the history (the others are indexed under h id).
		item, err := txn.Get(key1(pClaim, id))
		switch {
		case err == nil:
			var seq uint64
			if err := item.Value(func(v []byte) error {
				var ok bool
				if _, seq, _, ok = parseClaim(v); !ok {
					return fmt.Errorf("%w: claim of %q", ErrCorrupt, id)
				}
				return nil
			}); err != nil {
				return err
			}
			if seq != 0 {
				if err := event(seq); err != nil {
					return err
				}
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		io := badger.DefaultIteratorOptions
		io.Prefix = appendLP([]byte{pHistory}, id)
		io.PrefetchValues = false
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			k := it.Item().Key()
			if len(k) != len(io.Prefix)+8 {
				continue
			}
			if it.Item().ValueSize() > 0 { // an earlier data dir kept the event here
				var e dispatch.Event
				if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
					return fmt.Errorf("%w: history of %q: %v", ErrCorrupt, id, err)
				}
				out = append(out, e)
				continue
			}
			if err := event(binary.BigEndian.Uint64(k[len(k)-8:])); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: history %q: %w", id, err)
	}
	return out, nil
}
