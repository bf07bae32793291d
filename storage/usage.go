package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"
)

// Usage counters live one hour (hour counters) or one day (day counters) past their
// period, then expire.

func usageKey(pool, number string, kind byte, start time.Time) []byte {
	b := make([]byte, 0, 12+len(pool)+len(number))
	b = appendLP(appendLP(append(b, pUsage), pool), number)
	return appendTime(append(b, kind), start)
}

func readCount(txn *badger.Txn, k []byte) (int, error) {
	item, err := txn.Get(k)
	if errors.Is(err, badger.ErrKeyNotFound) {
		return 0, nil
	}
	if err != nil {
		return 0, err
	}
	var n int
	err = item.Value(func(v []byte) error {
		if len(v) != 8 {
			return fmt.Errorf("%w: usage counter %q", ErrCorrupt, k)
		}
		n = int(binary.BigEndian.Uint64(v))
		return nil
	})
	return n, err
}

func periods(t time.Time) (hour, day time.Time) {
	t = t.UTC()
	return t.Truncate(time.Hour), time.Date(t.Year(), t.Month(), t.Day(), 0, 0, 0, 0, time.UTC)
}

// AddUse adds n uses of number in pool at t and returns that UTC hour's and day's totals.
// Durable when it returns.
func (db *DB) AddUse(pool, number string, t time.Time, n int) (hour, day int, err error) {
	if number == "" {
		return 0, 0, fmt.Errorf("%w: number: must not be empty", ErrInvalid)
	}
	hs, ds := periods(t)
	if err := db.acquire(); err != nil {
		return 0, 0, err
	}
	defer db.release()
	hk, dk := usageKey(pool, number, 'h', hs), usageKey(pool, number, 'd', ds)
	mu := &db.usageMu[xxhash.Sum64(hk[:len(hk)-9])%uint64(len(db.usageMu))]
	mu.Lock()
	defer mu.Unlock()
	err = db.update(func(txn *badger.Txn) error {
		h, err := readCount(txn, hk)
		if err != nil {
			return err
		}
		d, err := readCount(txn, dk)
		if err != nil {
			return err
		}
		hour, day = h+n, d+n
		if err := txn.SetEntry(&badger.Entry{Key: hk, Value: binary.BigEndian.AppendUint64(nil, uint64(hour)),
			ExpiresAt: uint64(hs.Add(2 * time.Hour).Unix())}); err != nil {
			return err
		}
		return txn.SetEntry(&badger.Entry{Key: dk, Value: binary.BigEndian.AppendUint64(nil, uint64(day)),
			ExpiresAt: uint64(ds.Add(48 * time.Hour).Unix())})
	})
	if err != nil {
		return 0, 0, fmt.Errorf("storage: add use of %s/%s: %w", pool, number, err)
	}
	return hour, day, nil
}

// Uses returns the UTC hour's and day's totals of number in pool at t.
func (db *DB) Uses(pool, number string, t time.Time) (hour, day int, err error) {
	hs, ds := periods(t)
	if err := db.acquire(); err != nil {
		return 0, 0, err
	}
	defer db.release()
	err = db.bdb.View(func(txn *badger.Txn) error {
		var err error
		if hour, err = readCount(txn, usageKey(pool, number, 'h', hs)); err != nil {
			return err
		}
		day, err = readCount(txn, usageKey(pool, number, 'd', ds))
		return err
	})
	if err != nil {
		return 0, 0, fmt.Errorf("storage: uses of %s/%s: %w", pool, number, err)
	}
	return hour, day, nil
}

// PutSetting stores value under namespace and key, replacing it. Durable when it returns.
func (db *DB) PutSetting(namespace, key string, value []byte) error {
	if namespace == "" {
		return fmt.Errorf("%w: namespace: must not be empty", ErrInvalid)
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(key2(pSetting, namespace, key), append([]byte(nil), value...))
	})
	if err != nil {
		return fmt.Errorf("storage: put setting %s/%s: %w", namespace, key, err)
	}
	return nil
}

// GetSetting returns a copy of the value under namespace and key and whether it exists.
func (db *DB) GetSetting(namespace, key string) ([]byte, bool, error) {
	if err := db.acquire(); err != nil {
		return nil, false, err
	}
	defer db.release()
	var v []byte
	found := false
	err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key2(pSetting, namespace, key))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		found = true
		v, err = item.ValueCopy(nil)
		if v == nil {
			v = []byte{}
		}
		return err
	})
	if err != nil {
		return nil, false, fmt.Errorf("storage: get setting %s/%s: %w", namespace, key, err)
	}
	return v, found, nil
}

// DeleteSetting removes namespace/key; deleting a missing key is not an error.
func (db *DB) DeleteSetting(namespace, key string) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	err := db.bdb.Update(func(txn *badger.Txn) error { return txn.Delete(key2(pSetting, namespace, key)) })
	if err != nil {
		return fmt.Errorf("storage: delete setting %s/%s: %w", namespace, key, err)
	}
	return nil
}

// ListSettings calls fn for every key of namespace in key (byte) order, from one snapshot;
// value is only valid during the call. An error from fn stops it and is returned.
func (db *DB) ListSettings(namespace string, fn func(key string, value []byte) error) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	prefix := appendLP([]byte{pSetting}, namespace)
	return db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = prefix
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			item := it.Item()
			k := string(item.Key()[len(prefix):])
			if err := item.Value(func(v []byte) error { return fn(k, v) }); err != nil {
				return err
			}
		}
		return nil
	})
}
