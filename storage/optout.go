package storage

import (
	"encoding/binary"
	"errors"
	"fmt"
	"time"

	"github.com/cespare/xxhash/v2"
	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// DefaultTenant is the tenant of a record that names none (contract §2, §8).
const DefaultTenant = "default"

const pMeta = 'm'

var keyOptOutHint = []byte{pMeta, 'o'} // opt-out count at the last Close: sizes the filter

func chanCode(c dispatch.Channel) (byte, error) {
	switch c {
	case dispatch.ChannelAll:
		return 'a', nil
	case dispatch.ChannelSMS:
		return 's', nil
	case dispatch.ChannelVoice:
		return 'v', nil
	}
	return 0, fmt.Errorf("%w: channel: must be sms, voice or all, got %q", ErrInvalid, c)
}

func chanName(b byte) dispatch.Channel {
	switch b {
	case 's':
		return dispatch.ChannelSMS
	case 'v':
		return dispatch.ChannelVoice
	}
	return dispatch.ChannelAll
}

func appendOptKey(b []byte, tenant string, code byte, address string) []byte {
	b = appendLP(append(b, pOptOut), tenant)
	return append(append(b, code), address...)
}

func appendOptValue(b []byte, ts time.Time, source string) []byte {
	b = binary.BigEndian.AppendUint64(b, uint64(ts.UnixNano()))
	return append(b, source...)
}

// parseOptKey splits an opt-out key into its parts.
func parseOptKey(k []byte) (tenant string, ch byte, address []byte, ok bool) {
	tenant, rest, ok := readLP(k[1:])
	if !ok || len(rest) < 1 {
		return "", 0, nil, false
	}
	return tenant, rest[0], rest[1:], true
}

func decodeOptOut(k, v []byte) (dispatch.OptOut, error) {
	tenant, ch, addr, ok := parseOptKey(k)
	if !ok || len(v) < 8 {
		return dispatch.OptOut{}, fmt.Errorf("%w: opt-out record %q", ErrCorrupt, k)
	}
	return dispatch.OptOut{
		Tenant: tenant, Channel: chanName(ch), Address: string(addr), OptedOut: true,
		Source: string(v[8:]), TS: time.Unix(0, int64(binary.BigEndian.Uint64(v))).UTC(),
	}, nil
}

// loadOptOuts sets the opt-out count and the filter: from the state file of the last
// clean Close when it can be trusted (filter_persist.go), else by one key-only pass.
func (db *DB) loadOptOuts() error {
	ok, err := db.loadOptOutState()
	if err != nil {
		return fmt.Errorf("opt-out state file: %w", err)
	}
	if ok {
		db.log.Info("storage: opt-outs loaded from the state saved at the last close", "optouts", db.optCount.Load())
		return nil
	}
	db.log.Info("storage: counting opt-outs by scan")
	return db.scanOptOuts()
}

// scanOptOuts counts the opt-outs and fills the filter: one key-only pass.
func (db *DB) scanOptOuts() error {
	var hint int64
	err := db.bdb.View(func(txn *badger.Txn) error {
		it, err := txn.Get(keyOptOutHint)
		if err == nil {
			_ = it.Value(func(v []byte) error {
				if len(v) == 8 {
					hint = int64(binary.BigEndian.Uint64(v))
				}
				return nil
			})
		}
		return nil
	})
	if err != nil {
		return err
	}
	if !db.opt.NoOptOutFilter {
		db.filter = newFilter(hint + hint/4 + 1<<20)
	}
	var n int64
	err = db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.PrefetchValues = false
		io.Prefix = []byte{pOptOut}
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
			if db.filter == nil {
				continue
			}
			tenant, _, addr, ok := parseOptKey(it.Item().Key())
			if !ok {
				return fmt.Errorf("%w: opt-out key %q", ErrCorrupt, it.Item().Key())
			}
			db.filter.add(xxhash.Sum64(addr) ^ (xxhash.Sum64String(tenant) * 0x9E3779B97F4A7C15))
		}
		return nil
	})
	db.optCount.Store(n)
	return err
}

// recountOptOuts counts the opt-out keys again (after a failed import). Call with optMu held.
func (db *DB) recountOptOuts() error {
	var n int64
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.PrefetchValues = false
		io.Prefix = []byte{pOptOut}
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	if err == nil {
		db.optCount.Store(n)
	}
	return err
}

// saveOptOutHint saves, at Close after the last write, the opt-out count (a hint that
// sizes the filter of the next scan) and then the state file that spares the next Open
// that scan (filter_persist.go).
func (db *DB) saveOptOutHint() error {
	err := db.bdb.Update(func(txn *badger.Txn) error {
		return txn.Set(keyOptOutHint, binary.BigEndian.AppendUint64(nil, uint64(db.optCount.Load())))
	})
	if err != nil {
		return err
	}
	if err := db.saveOptOutState(); err != nil {
		return fmt.Errorf("opt-out state file: %w", err)
	}
	return nil
}

func orDefaultTenant(t string) string {
	if t == "" {
		return DefaultTenant
	}
	return t
}

// OptedOut reports whether address (normalised E.164) may not receive on channel for
// tenant ("" is "default"): true when an opt-out exists for channel or for "all". Most
// numbers are answered by the in-memory filter without reading Badger.
func (db *DB) OptedOut(tenant string, channel dispatch.Channel, address string) (bool, error) {
	code, err := chanCode(channel)
	if err != nil {
		return false, err
	}
	tenant = orDefaultTenant(tenant)
	if db.filter != nil && !db.filter.mayContain(filterHash(tenant, address)) {
		db.m.checkFiltered.Inc()
		return false, nil
	}
	if err := db.acquire(); err != nil {
		return false, err
	}
	defer db.release()
	var buf [96]byte
	found := false
	err = db.bdb.View(func(txn *badger.Txn) error {
		codes := [2]byte{code, 'a'}
		n := 2
		if code == 'a' {
			n = 1
		}
		for _, c := range codes[:n] {
			_, err := txn.Get(appendOptKey(buf[:0], tenant, c, address))
			if err == nil {
				found = true
				return nil
			}
			if !errors.Is(err, badger.ErrKeyNotFound) {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("storage: checking opt-out: %w", err)
	}
	if found {
		db.m.checkOptedOut.Inc()
	} else {
		db.m.checkMiss.Inc()
	}
	return found, nil
}

// normOptOut validates o and fills its defaults: tenant "default", source "api", TS now;
// the address is normalised to E.164 (international form, or national in DefaultRegion).
func (db *DB) normOptOut(o *dispatch.OptOut, region string) (byte, error) {
	code, err := chanCode(o.Channel)
	if err != nil {
		return 0, err
	}
	o.Tenant = orDefaultTenant(o.Tenant)
	a, err := dispatch.NormalizeE164(o.Address, region)
	if err != nil {
		return 0, fmt.Errorf("%w: address: %w", ErrInvalid, err)
	}
	o.Address = a
	if o.Source == "" {
		o.Source = "api"
	}
	if o.TS.IsZero() {
		o.TS = db.opt.Clock()
	}
	return code, nil
}

// SetOptOut adds (o.OptedOut) or removes (!o.OptedOut) the opt-out of o.Tenant ("" is
// "default"), o.Channel and o.Address (normalised here; ErrInvalid when it cannot be).
// Adding an existing one replaces its source and time. Durable when it returns.
func (db *DB) SetOptOut(o dispatch.OptOut) error {
	code, err := db.normOptOut(&o, db.opt.DefaultRegion)
	if err != nil {
		return err
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	k := appendOptKey(nil, o.Tenant, code, o.Address)
	db.optMu.Lock()
	defer db.optMu.Unlock()
	if o.OptedOut && db.filter != nil {
		db.filter.add(filterHash(o.Tenant, o.Address)) // before the commit: no false negative
	}
	var delta int64
	start := time.Now()
	err = db.update(func(txn *badger.Txn) error {
		delta = 0
		_, err := txn.Get(k)
		existed := err == nil
		if err != nil && !errors.Is(err, badger.ErrKeyNotFound) {
			return err
		}
		if o.OptedOut {
			if !existed {
				delta = 1
			}
			return txn.Set(k, appendOptValue(nil, o.TS, o.Source))
		}
		if existed {
			delta = -1
			return txn.Delete(k)
		}
		return nil
	})
	db.m.write("optout", time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("storage: writing opt-out: %w", err)
	}
	db.optCount.Add(delta)
	return nil
}

// GetOptOut returns the exact record of tenant, channel and address (no "all" matching;
// the address is normalised first) and whether it exists.
func (db *DB) GetOptOut(tenant string, channel dispatch.Channel, address string) (dispatch.OptOut, bool, error) {
	o := dispatch.OptOut{Tenant: tenant, Channel: channel, Address: address, Source: "-"}
	code, err := db.normOptOut(&o, db.opt.DefaultRegion)
	if err != nil {
		return dispatch.OptOut{}, false, err
	}
	if err := db.acquire(); err != nil {
		return dispatch.OptOut{}, false, err
	}
	defer db.release()
	var rec dispatch.OptOut
	found := false
	err = db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(appendOptKey(nil, o.Tenant, code, o.Address))
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		return item.Value(func(v []byte) error {
			rec, err = decodeOptOut(item.Key(), v)
			found = err == nil
			return err
		})
	})
	if err != nil {
		return dispatch.OptOut{}, false, fmt.Errorf("storage: reading opt-out: %w", err)
	}
	return rec, found, nil
}

// CountOptOuts returns the number of opt-out records (every tenant and channel). It reads
// a counter kept up to date by every write: O(1).
func (db *DB) CountOptOuts() (int, error) { return int(db.optCount.Load()), nil }
