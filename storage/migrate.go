package storage

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4"
)

// pOptOutV1 is where data dirs of earlier versions keep opt-outs. 'o' sorts between the
// ledger's prefixes, so every memtable of ledger writes flushed to level 0 spanned the
// opt-out key range, and every compaction of it into level 1 rewrote the opt-out tables
// there: with 1M opt-outs, most of the LSM's write work. pOptOut sorts below every other
// prefix, outside the range the ledger writes.
const pOptOutV1 = 'o'

// migrateOptOuts moves the opt-outs of an earlier data dir to pOptOut, in batches that
// each copy then delete (a crash between batches, or within one, leaves records in both
// places with identical values: the next Open moves them again). Nothing to move costs
// one seek.
func (db *DB) migrateOptOuts() error {
	start := time.Now()
	moved := 0
	for {
		n, err := db.migrateOptOutBatch(20000)
		if err != nil {
			return fmt.Errorf("storage: moving opt-outs to their new key range: %w", err)
		}
		if n == 0 {
			break
		}
		moved += n
	}
	if moved > 0 {
		db.log.Info("storage: opt-outs moved to their new key range (once, for a data dir of an earlier version)", "optouts", moved, "took", time.Since(start))
	}
	return nil
}

func (db *DB) migrateOptOutBatch(max int) (int, error) {
	type kv struct{ k, v []byte }
	var recs []kv
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix = []byte{pOptOutV1}
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Rewind(); it.Valid() && len(recs) < max; it.Next() {
			v, err := it.Item().ValueCopy(nil)
			if err != nil {
				return err
			}
			recs = append(recs, kv{it.Item().KeyCopy(nil), v})
		}
		return nil
	})
	if err != nil || len(recs) == 0 {
		return 0, err
	}
	wb := db.bdb.NewWriteBatch()
	defer wb.Cancel()
	for _, r := range recs {
		nk := append([]byte{pOptOut}, r.k[1:]...)
		if err := wb.Set(nk, r.v); err != nil {
			return 0, err
		}
	}
	if err := wb.Flush(); err != nil {
		return 0, err
	}
	del := db.bdb.NewWriteBatch()
	defer del.Cancel()
	for _, r := range recs {
		if err := del.Delete(r.k); err != nil {
			return 0, err
		}
	}
	return len(recs), del.Flush()
}
