package storage

import (
	"testing"
	"time"

	"github.com/dgraph-io/badger/v4"

	"github.com/sendcore/sendcore/dispatch"
)

// TestApplyKeepsTheSubmissionsExpiry guarantees that applying a receipt leaves the
// submission's expiry at ttl + submissionGrace. It used to take the receipt id's (ttl),
// so a partly receipted submission vanished at its ttl, before the receipt-timeout sweep
// could end its request as undelivered: a request without a terminal event.
func TestApplyKeepsTheSubmissionsExpiry(t *testing.T) {
	db, err := Open(t.TempDir(), Options{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	const ttl = time.Hour
	sub := dispatch.Submission{RequestID: "m1", Connection: "c", SMSCIDs: []string{"A1", "A2"},
		Template: dispatch.Event{ID: "m1", Status: dispatch.StatusSubmitted, Segments: 2}}
	if _, err := db.Track(sub, ttl); err != nil {
		t.Fatal(err)
	}
	expiry := func() uint64 {
		var exp uint64
		if err := db.bdb.View(func(txn *badger.Txn) error {
			item, err := txn.Get(key1(pSubmission, "m1"))
			if err != nil {
				return err
			}
			exp = item.ExpiresAt()
			return nil
		}); err != nil {
			t.Fatal(err)
		}
		return exp
	}
	before := expiry()
	if want := uint64(time.Now().Add(ttl + submissionGrace).Unix()); before+5 < want {
		t.Fatalf("tracked submission expires at %d, want about %d", before, want)
	}
	if r, err := db.Apply(dispatch.Receipt{Connection: "c", SMSCID: "A2", State: "DELIVRD", At: time.Now()}); err != nil || !r.Matched || r.Done {
		t.Fatalf("Apply = %+v, %v", r, err)
	}
	if after := expiry(); after != before {
		t.Fatalf("after a receipt the submission expires at %d, was %d (the receipt id's expiry is %d)", after, before, uint64(time.Now().Add(ttl).Unix()))
	}
}

// TestReceiptIDsLiveAtLeastTheirTTL guarantees that a tracked SMSC id matches for at
// least its ttl: Badger keeps expiries in whole seconds, and truncating now+ttl let an id
// tracked at x.999 s with a 1 s ttl expire 1 ms later (the contract test's
// Receipts/ExpiresAfterTTL failed that way about once in a few hundred runs).
func TestReceiptIDsLiveAtLeastTheirTTL(t *testing.T) {
	now := time.Now().Add(time.Hour).Truncate(time.Second).Add(999 * time.Millisecond)
	db, err := Open(t.TempDir(), Options{Clock: func() time.Time { return now }}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer db.Close()
	if _, err := db.Track(dispatch.Submission{RequestID: "x", Connection: "c", SMSCIDs: []string{"X1"}}, time.Second); err != nil {
		t.Fatal(err)
	}
	var exp uint64
	if err := db.bdb.View(func(txn *badger.Txn) error {
		item, err := txn.Get(key2(pReceiptID, "c", "X1"))
		if err != nil {
			return err
		}
		exp = item.ExpiresAt()
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if until := now.Add(time.Second); time.Unix(int64(exp), 0).Before(until) {
		t.Fatalf("receipt id expires at %v, before now + ttl = %v", time.Unix(int64(exp), 0), until)
	}
}
