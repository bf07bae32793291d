package storage

import (
	"encoding/json"
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// schedItem is the stored form of one held request. Offer is the instant it is next
// offered by Take: its due time, or the end of its lease once taken.
type schedItem struct {
	dispatch.Scheduled
	Offer      time.Time `json:"offer"`
	LeaseUntil time.Time `json:"lease_until,omitzero"`
}

func queueKey(offer time.Time, id string) []byte {
	return append(appendTime(append(make([]byte, 0, 9+len(id)), pQueue), offer), id...)
}

func campaignKey(tenant, campaign, id string) []byte {
	b := make([]byte, 0, 3+len(tenant)+len(campaign)+len(id))
	return append(appendLP(appendLP(append(b, pCampaign), tenant), campaign), id...)
}

func (db *DB) loadSchedule() error {
	var n int64
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.PrefetchValues = false
		io.Prefix = []byte{pSchedItem}
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid(); it.Next() {
			n++
		}
		return nil
	})
	db.schedLen.Store(n)
	return err
}

func getItem(txn *badger.Txn, id string) (schedItem, bool, error) {
	var it schedItem
	ok, err := getJSON(txn, key1(pSchedItem, id), &it, "scheduled item", id)
	return it, ok, err
}

func putItem(txn *badger.Txn, it *schedItem) error {
	v, err := json.Marshal(it)
	if err != nil {
		return fmt.Errorf("%w: scheduled item %q: %v", ErrInvalid, it.ID, err)
	}
	if err := txn.Set(key1(pSchedItem, it.ID), v); err != nil {
		return err
	}
	if err := txn.Set(queueKey(it.Offer, it.ID), nil); err != nil {
		return err
	}
	return txn.Set(campaignKey(it.Tenant, it.Campaign, it.ID), nil)
}

func deleteItem(txn *badger.Txn, it *schedItem) error {
	for _, k := range [][]byte{key1(pSchedItem, it.ID), queueKey(it.Offer, it.ID), campaignKey(it.Tenant, it.Campaign, it.ID)} {
		if err := txn.Delete(k); err != nil {
			return err
		}
	}
	return nil
}

// Hold stores s until s.Due; holding an id again replaces it (and ends its lease).
// Durable when it returns.
func (db *DB) Hold(s dispatch.Scheduled) error {
	if err := checkID("id", s.ID); err != nil {
		return err
	}
	if s.Due.IsZero() {
		return fmt.Errorf("%w: due: must be set (id %q)", ErrInvalid, s.ID)
	}
	s.Tenant = orDefaultTenant(s.Tenant)
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	var added int64
	err := db.update(func(txn *badger.Txn) error {
		old, ok, err := getItem(txn, s.ID)
		if err != nil {
			return err
		}
		added = 1
		if ok {
			added = 0
			if err := deleteItem(txn, &old); err != nil {
				return err
			}
		}
		return putItem(txn, &schedItem{Scheduled: s, Offer: s.Due})
	})
	if err != nil {
		return fmt.Errorf("storage: hold %q: %w", s.ID, err)
	}
	db.schedLen.Add(added)
	return nil
}

// Take returns up to max items due at now (or whose lease ended by now), earliest first,
// and leases them until now+lease: an item not Done by then is offered again, also after
// a restart. Concurrent Takes never return the same item within its lease.
func (db *DB) Take(now time.Time, max int, lease time.Duration) ([]dispatch.Scheduled, error) {
	if max <= 0 {
		return nil, nil
	}
	if lease <= 0 {
		return nil, fmt.Errorf("%w: lease: must be > 0, got %v", ErrInvalid, lease)
	}
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()
	var out []dispatch.Scheduled
	end := appendTime([]byte{pQueue}, now)
	err := db.update(func(txn *badger.Txn) error {
		out = out[:0]
		io := badger.DefaultIteratorOptions
		io.PrefetchValues = false
		io.Prefix = []byte{pQueue}
		it := txn.NewIterator(io)
		var ids []string
		for it.Rewind(); it.Valid() && len(ids) < max; it.Next() {
			k := it.Item().Key()
			if len(k) < 9 || string(k[:9]) > string(end) {
				break
			}
			ids = append(ids, string(k[9:]))
		}
		it.Close()
		for _, id := range ids {
			item, ok, err := getItem(txn, id)
			if err != nil {
				return err
			}
			if !ok {
				continue
			}
			if err := txn.Delete(queueKey(item.Offer, id)); err != nil {
				return err
			}
			item.Offer = now.Add(lease)
			item.LeaseUntil = item.Offer
			if err := putItem(txn, &item); err != nil {
				return err
			}
			out = append(out, item.Scheduled)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: take: %w", err)
	}
	return out, nil
}

// Done removes a taken (or held) item for good; an unknown id is not an error.
func (db *DB) Done(id string) error {
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	var removed int64
	err := db.update(func(txn *badger.Txn) error {
		removed = 0
		item, ok, err := getItem(txn, id)
		if err != nil || !ok {
			return err
		}
		removed = 1
		return deleteItem(txn, &item)
	})
	if err != nil {
		return fmt.Errorf("storage: done %q: %w", id, err)
	}
	db.schedLen.Add(-removed)
	return nil
}

// Cancel removes every held item of tenant's campaign whose lease (if taken) has not
// ended at Options.Clock's now, and returns them in id order. Leased items stay: they are
// being sent.
func (db *DB) Cancel(tenant, campaign string) ([]dispatch.Scheduled, error) {
	tenant = orDefaultTenant(tenant)
	now := db.opt.Clock()
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()
	var out []dispatch.Scheduled
	prefix := appendLP(appendLP([]byte{pCampaign}, tenant), campaign)
	// Large campaigns are cancelled in several transactions of at most 1000 items.
	for {
		var batch []dispatch.Scheduled
		more := false
		err := db.update(func(txn *badger.Txn) error {
			batch = batch[:0]
			more = false
			io := badger.DefaultIteratorOptions
			io.PrefetchValues = false
			io.Prefix = prefix
			it := txn.NewIterator(io)
			var ids []string
			for it.Rewind(); it.Valid(); it.Next() {
				ids = append(ids, string(it.Item().Key()[len(prefix):]))
			}
			it.Close()
			for _, id := range ids {
				item, ok, err := getItem(txn, id)
				if err != nil {
					return err
				}
				if !ok || item.LeaseUntil.After(now) {
					continue
				}
				if len(batch) == 1000 {
					more = true
					break
				}
				if err := deleteItem(txn, &item); err != nil {
					return err
				}
				batch = append(batch, item.Scheduled)
			}
			return nil
		})
		if err != nil {
			return out, fmt.Errorf("storage: cancel %s/%s: %w", tenant, campaign, err)
		}
		db.schedLen.Add(-int64(len(batch)))
		out = append(out, batch...)
		if !more {
			return out, nil
		}
	}
}

// Len is the number of items held, leased ones included: a counter, O(1).
func (db *DB) Len() (int, error) { return int(db.schedLen.Load()), nil }
