package storage

import (
	"encoding/binary"
	"encoding/json"
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// TestOutboxOfAnEarlierDataDir guarantees that a data dir written by the earlier outbox
// format (h id seq -> event JSON, x seq -> history key) still has its history read and
// its unpublished events offered after an upgrade, and that new events go after them.
func TestOutboxOfAnEarlierDataDir(t *testing.T) {
	ts := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	old := []dispatch.Event{
		{ID: "r1", Tenant: "default", Status: dispatch.StatusAccepted, TS: ts},
		{ID: "r1", Tenant: "default", Status: dispatch.StatusSubmitted, TS: ts.Add(time.Second)},
	}
	seqs := []uint64{1000, 1001}
	db := earlierDataDir(t, func(txn *badger.Txn) error {
		for i, e := range old {
			v, err := json.Marshal(&e)
			if err != nil {
				return err
			}
			hk := binary.BigEndian.AppendUint64(appendLP([]byte{pHistory}, e.ID), seqs[i])
			if err := txn.Set(hk, v); err != nil {
				return err
			}
			if i == 1 { // the first one was published and its entry deleted
				if err := txn.Set(outboxKey(seqs[i]), hk); err != nil {
					return err
				}
			}
		}
		return nil
	})
	newSeqs, err := db.AppendSeqs([]dispatch.Event{{ID: "r1", Tenant: "default", Status: dispatch.StatusDelivered, TS: ts.Add(2 * time.Second)}})
	if err != nil {
		t.Fatal(err)
	}
	h, err := db.History("r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 3 || h[0].Status != dispatch.StatusAccepted || h[1].Status != dispatch.StatusSubmitted || h[2].Status != dispatch.StatusDelivered {
		t.Fatalf("History across the two formats = %+v", h)
	}
	var offered []uint64
	var events []dispatch.Event
	if err := db.Outbox(0, func(seq uint64, e dispatch.Event) error {
		offered, events = append(offered, seq), append(events, e)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if len(offered) != 2 || offered[0] != 1001 || events[0].Status != dispatch.StatusSubmitted || !events[0].TS.Equal(old[1].TS) ||
		offered[1] != newSeqs[0] || events[1].Status != dispatch.StatusDelivered {
		t.Fatalf("Outbox = %v %+v; want the old unpublished submitted (1001), then the new delivered (%d)", offered, events, newSeqs[0])
	}
	if err := db.Published(offered); err != nil {
		t.Fatal(err)
	}
	offered = offered[:0]
	if err := db.Outbox(0, func(seq uint64, _ dispatch.Event) error { offered = append(offered, seq); return nil }); err != nil || len(offered) != 0 {
		t.Fatalf("Outbox after publishing = %v, %v", offered, err)
	}
}

// TestClaimOfAnEarlierDataDir guarantees that a claim written before claims held their
// accepted event's seq (at(8) source, accepted indexed under h id) is still read: the
// duplicate check sees its source and time, and the history has its accepted event once.
func TestClaimOfAnEarlierDataDir(t *testing.T) {
	at := time.Date(2026, 11, 1, 12, 0, 0, 0, time.UTC)
	acc := dispatch.Event{ID: "r1", Tenant: "default", Status: dispatch.StatusAccepted, TS: at}
	db := earlierDataDir(t, func(txn *badger.Txn) error {
		v := append(binary.BigEndian.AppendUint64(nil, uint64(at.UnixNano())), "sendcore.requests/2/17"...)
		if err := txn.Set(key1(pClaim, "r1"), v); err != nil {
			return err
		}
		ev, err := json.Marshal(&acc)
		if err != nil {
			return err
		}
		if err := txn.Set(outboxKey(500), ev); err != nil {
			return err
		}
		return txn.Set(binary.BigEndian.AppendUint64(appendLP([]byte{pHistory}, "r1"), 500), nil)
	})
	prev, existed, seq, err := db.ClaimAccepted("r1", "sendcore.requests/5/3", at.Add(time.Hour), dispatch.Event{ID: "r1", Status: dispatch.StatusAccepted})
	if err != nil {
		t.Fatal(err)
	}
	if !existed || seq != 0 || prev.Source != "sendcore.requests/2/17" || !prev.At.Equal(at) {
		t.Fatalf("ClaimAccepted over an earlier claim = %+v, existed %v, seq %d; want the earlier claim", prev, existed, seq)
	}
	if err := db.Append([]dispatch.Event{{ID: "r1", Status: dispatch.StatusSubmitted, TS: at.Add(time.Second)}}); err != nil {
		t.Fatal(err)
	}
	h, err := db.History("r1")
	if err != nil {
		t.Fatal(err)
	}
	if len(h) != 2 || h[0].Status != dispatch.StatusAccepted || h[1].Status != dispatch.StatusSubmitted {
		t.Fatalf("History = %+v; want accepted (once), then submitted", h)
	}
}

// earlierDataDir writes what an earlier version left in a data dir (write, straight into
// Badger), then opens the dir as an upgrade would; the DB is closed at the test's end.
func earlierDataDir(t *testing.T, write func(txn *badger.Txn) error) *DB {
	t.Helper()
	dir := t.TempDir()
	db, err := Open(dir, Options{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	if err := db.bdb.Update(write); err != nil {
		t.Fatal(err)
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if db, err = Open(dir, Options{}, nil, nil); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	return db
}
