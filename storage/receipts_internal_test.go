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
