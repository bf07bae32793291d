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

// submission is the stored correlation state of one tracked request.
type submission struct {
	Template dispatch.Event         `json:"template"`
	Parts    []dispatch.PartReceipt `json:"parts"`
	Done     bool                   `json:"done"`
}

// finalState reports whether a receipt state ends its part.
func finalState(s string) bool {
	return s != "" && s != "ACCEPTD" && s != "ENROUTE"
}

// Track stores s so that receipts for its SMSC ids (per s.Connection) match for ttl.
// Tracking a request again replaces its state. Durable when it returns.
func (db *DB) Track(s dispatch.Submission, ttl time.Duration) error {
	if err := checkID("request_id", s.RequestID); err != nil {
		return err
	}
	if len(s.SMSCIDs) == 0 {
		return fmt.Errorf("%w: smsc_ids: must not be empty (request %q)", ErrInvalid, s.RequestID)
	}
	if ttl <= 0 {
		return fmt.Errorf("%w: ttl: must be > 0, got %v", ErrInvalid, ttl)
	}
	sub := submission{Template: s.Template, Parts: make([]dispatch.PartReceipt, len(s.SMSCIDs))}
	for i, id := range s.SMSCIDs {
		if id == "" {
			return fmt.Errorf("%w: smsc_ids[%d]: must not be empty (request %q)", ErrInvalid, i, s.RequestID)
		}
		sub.Parts[i] = dispatch.PartReceipt{Part: i + 1, SMSCID: id}
	}
	v, err := json.Marshal(sub)
	if err != nil {
		return fmt.Errorf("%w: submission %q: %v", ErrInvalid, s.RequestID, err)
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	exp := uint64(db.opt.Clock().Add(ttl).Unix())
	start := time.Now()
	err = db.update(func(txn *badger.Txn) error {
		if err := txn.SetEntry(&badger.Entry{Key: key1(pSubmission, s.RequestID), Value: v, ExpiresAt: exp}); err != nil {
			return err
		}
		for i, id := range s.SMSCIDs {
			rv := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(s.RequestID)), uint16(i+1))
			rv = append(rv, s.RequestID...)
			if err := txn.SetEntry(&badger.Entry{Key: key2(pReceiptID, s.Connection, id), Value: rv, ExpiresAt: exp}); err != nil {
				return err
			}
		}
		return nil
	})
	db.m.writeSeconds.WithLabelValues("track").Observe(time.Since(start).Seconds())
	if err != nil {
		return fmt.Errorf("storage: track %q: %w", s.RequestID, err)
	}
	return nil
}

// Apply records r against its part. A state of a part already final is ignored; an
// intermediate state (ACCEPTD, ENROUTE) is recorded until a final one arrives. Done is true
// for exactly one call per request: the one that made its last part final, also under
// concurrent calls (they are serialised by transaction conflicts). Durable when it returns.
func (db *DB) Apply(r dispatch.Receipt) (dispatch.ReceiptResult, error) {
	var res dispatch.ReceiptResult
	if r.SMSCID == "" {
		return res, fmt.Errorf("%w: smsc_id: must not be empty", ErrInvalid)
	}
	if err := db.acquire(); err != nil {
		return res, err
	}
	defer db.release()
	start := time.Now()
	rk := key2(pReceiptID, r.Connection, r.SMSCID)
	err := db.update(func(txn *badger.Txn) error {
		res = dispatch.ReceiptResult{}
		item, err := txn.Get(rk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil
		}
		if err != nil {
			return err
		}
		var part int
		var reqID string
		if err := item.Value(func(v []byte) error {
			if len(v) < 2 {
				return fmt.Errorf("%w: receipt id %q", ErrCorrupt, r.SMSCID)
			}
			part, reqID = int(binary.BigEndian.Uint16(v)), string(v[2:])
			return nil
		}); err != nil {
			return err
		}
		sk := key1(pSubmission, reqID)
		item, err = txn.Get(sk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil // expired between the two keys
		}
		if err != nil {
			return err
		}
		var sub submission
		if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &sub) }); err != nil {
			return fmt.Errorf("%w: submission %q: %v", ErrCorrupt, reqID, err)
		}
		res.Matched, res.RequestID, res.Part = true, reqID, part
		if part < 1 || part > len(sub.Parts) {
			return fmt.Errorf("%w: submission %q has no part %d", ErrCorrupt, reqID, part)
		}
		p := &sub.Parts[part-1]
		if sub.Done || finalState(p.State) {
			return nil
		}
		p.State, p.Err = r.State, r.Err
		all := true
		for _, q := range sub.Parts {
			if !finalState(q.State) {
				all = false
				break
			}
		}
		if all {
			sub.Done = true
			res.Done, res.Template = true, sub.Template
			res.Parts = append([]dispatch.PartReceipt(nil), sub.Parts...)
		}
		v, err := json.Marshal(sub)
		if err != nil {
			return err
		}
		return txn.SetEntry(&badger.Entry{Key: sk, Value: v, ExpiresAt: item.ExpiresAt()})
	})
	db.m.writeSeconds.WithLabelValues("receipt").Observe(time.Since(start).Seconds())
	if err != nil {
		return dispatch.ReceiptResult{}, fmt.Errorf("storage: apply receipt %q: %w", r.SMSCID, err)
	}
	return res, nil
}
