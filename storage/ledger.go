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

func (db *DB) expiry() uint64 {
	return uint64(db.opt.Clock().Add(db.opt.Retention).Unix())
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
	if err := checkID("id", id); err != nil {
		return dispatch.Claim{}, false, err
	}
	if err := db.acquire(); err != nil {
		return dispatch.Claim{}, false, err
	}
	defer db.release()
	start := time.Now()
	ck := key1(pClaim, id)
	var prev dispatch.Claim
	var existed bool
	err := db.update(func(txn *badger.Txn) error {
		existed = false
		item, err := txn.Get(ck)
		if errors.Is(err, badger.ErrKeyNotFound) {
			v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(source)), uint64(at.UnixNano()))
			return txn.SetEntry(&badger.Entry{Key: ck, Value: append(v, source...), ExpiresAt: db.expiry()})
		}
		if err != nil {
			return err
		}
		existed = true
		err = item.Value(func(v []byte) error {
			if len(v) < 8 {
				return fmt.Errorf("%w: claim of %q", ErrCorrupt, id)
			}
			prev = dispatch.Claim{Source: string(v[8:]), At: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC()}
			return nil
		})
		if err != nil {
			return err
		}
		item, err = txn.Get(key1(pTerminal, id))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error { prev.Terminal = dispatch.Status(v); return nil })
	})
	db.m.writeSeconds.WithLabelValues("claim").Observe(time.Since(start).Seconds())
	if err != nil {
		return dispatch.Claim{}, false, fmt.Errorf("storage: claim %q: %w", id, err)
	}
	return prev, existed, nil
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
		io := badger.DefaultIteratorOptions
		io.Prefix = appendLP([]byte{pHistory}, id)
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			if len(it.Item().Key()) != len(io.Prefix)+8 {
				continue
			}
			var e dispatch.Event
			if err := it.Item().Value(func(v []byte) error { return json.Unmarshal(v, &e) }); err != nil {
				return fmt.Errorf("%w: history of %q: %v", ErrCorrupt, id, err)
			}
			out = append(out, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: history %q: %w", id, err)
	}
	return out, nil
}
