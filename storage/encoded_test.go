package storage_test

import (
	"bytes"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

// TestLedgerReturnsTheJSONItStored guarantees that the JSON the ledger hands back for
// publication is the JSON it stored (what the outbox re-publishes after a crash), one per
// event it added and none for an event it did not add or a claim that existed.
func TestLedgerReturnsTheJSONItStored(t *testing.T) {
	db := openDB(t, t.TempDir(), storage.Options{})
	defer db.Close()
	at := time.Date(2026, 11, 27, 12, 0, 0, 0, time.UTC)
	acc := dispatch.Event{ID: "j1", Tenant: "t", Status: dispatch.StatusAccepted, TS: at, Meta: map[string]string{"k": "v"}}
	_, existed, seq, raw, err := db.ClaimAcceptedJSON("j1", "src-a", at, acc)
	if err != nil || existed || seq == 0 {
		t.Fatalf("ClaimAcceptedJSON = existed %v seq %d err %v; want a new claim", existed, seq, err)
	}
	want, err := dispatch.AppendEventJSON(nil, &acc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(raw, want) {
		t.Fatalf("accepted JSON = %s, want %s", raw, want)
	}
	if _, existed, _, raw, err := db.ClaimAcceptedJSON("j1", "src-b", at, acc); err != nil || !existed || raw != nil {
		t.Fatalf("second ClaimAcceptedJSON = existed %v JSON %q err %v; want the claim existing and no JSON", existed, raw, err)
	}
	evs := []dispatch.Event{
		{ID: "j1", Tenant: "t", Status: dispatch.StatusDelivered, TS: at},
		{ID: "j1", Tenant: "t", Status: dispatch.StatusUndelivered, TS: at}, // a second terminal: not added
	}
	seqs, vals, err := db.AppendSeqsJSON(evs)
	if err != nil {
		t.Fatal(err)
	}
	want, err = dispatch.AppendEventJSON(nil, &evs[0])
	if err != nil {
		t.Fatal(err)
	}
	if seqs[0] == 0 || !bytes.Equal(vals[0], want) {
		t.Fatalf("added event: seq %d JSON %s, want a seq and %s", seqs[0], vals[0], want)
	}
	if seqs[1] != 0 || vals[1] != nil {
		t.Fatalf("event not added: seq %d JSON %q, want 0 and nil", seqs[1], vals[1])
	}
	var stored []dispatch.Event
	if err := db.Outbox(0, func(_ uint64, e dispatch.Event) error { stored = append(stored, e); return nil }); err != nil {
		t.Fatal(err)
	}
	if len(stored) != 2 || stored[0].Meta["k"] != "v" || stored[1].Status != dispatch.StatusDelivered {
		t.Fatalf("outbox = %+v; want accepted and delivered", stored)
	}
}
