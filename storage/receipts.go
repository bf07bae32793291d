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
	Template   dispatch.Event         `json:"template"`
	Parts      []dispatch.PartReceipt `json:"parts"`
	Done       bool                   `json:"done"`
	Connection string                 `json:"connection,omitempty"`
	// Due is when the receipt timeout falls (unix nanoseconds): the instant of its entry
	// in the due index while not Done.
	Due int64 `json:"due,omitempty"`
}

// earlyReceipt is a final receipt that matched no tracked submission (yet).
type earlyReceipt struct {
	State string    `json:"state"`
	Err   string    `json:"err,omitempty"`
	At    time.Time `json:"at"`
}

const (
	// earlyReceiptTTL is how long a receipt that matched nothing waits for its Track.
	earlyReceiptTTL = 10 * time.Minute
	// submissionGrace is how long a submission's state outlives its ttl, so that the
	// receipt-timeout sweep can still read it when the pipeline was down at the ttl.
	submissionGrace = 24 * time.Hour
)

// finalState reports whether a receipt state ends its part.
func finalState(s string) bool {
	return s != "" && s != "ACCEPTD" && s != "ENROUTE"
}

func allFinal(parts []dispatch.PartReceipt) bool {
	for _, q := range parts {
		if !finalState(q.State) {
			return false
		}
	}
	return true
}

func dueKey(due int64, id string) []byte {
	return append(binary.BigEndian.AppendUint64(append(make([]byte, 0, 9+len(id)), pDue), uint64(due)), id...)
}

func sameIDs(parts []dispatch.PartReceipt, ids []string) bool {
	if len(parts) != len(ids) {
		return false
	}
	for i := range parts {
		if parts[i].SMSCID != ids[i] {
			return false
		}
	}
	return true
}

// result fills the Matched fields of a result from sub.
func (sub *submission) result(id string) dispatch.ReceiptResult {
	return dispatch.ReceiptResult{Matched: true, RequestID: id, Complete: sub.Done, Template: sub.Template,
		Parts: append([]dispatch.PartReceipt(nil), sub.Parts...)}
}

// Track stores s so that receipts for its SMSC ids (per s.Connection) match for ttl, and
// applies in the same transaction the early receipts Apply kept for those ids. Tracking
// the same connection and ids again keeps the state (and the ttl) and reports it; other
// ids replace it. The state itself is kept for ttl plus a day, for the receipt-timeout
// sweep (Expiring). Durable when it returns.
func (db *DB) Track(s dispatch.Submission, ttl time.Duration) (dispatch.ReceiptResult, error) {
	var res dispatch.ReceiptResult
	if err := checkID("request_id", s.RequestID); err != nil {
		return res, err
	}
	if len(s.SMSCIDs) == 0 {
		return res, fmt.Errorf("%w: smsc_ids: must not be empty (request %q)", ErrInvalid, s.RequestID)
	}
	if ttl <= 0 {
		return res, fmt.Errorf("%w: ttl: must be > 0, got %v", ErrInvalid, ttl)
	}
	for i, id := range s.SMSCIDs {
		if id == "" {
			return res, fmt.Errorf("%w: smsc_ids[%d]: must not be empty (request %q)", ErrInvalid, i, s.RequestID)
		}
	}
	if err := db.acquire(); err != nil {
		return res, err
	}
	defer db.release()
	now := db.opt.Clock()
	start := time.Now()
	sk := key1(pSubmission, s.RequestID)
	err := db.update(func(txn *badger.Txn) error {
		res = dispatch.ReceiptResult{}
		var sub submission
		keep, subExp := false, expiresAt(now.Add(ttl+submissionGrace))
		item, err := txn.Get(sk)
		switch {
		case err == nil:
			var old submission
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &old) }); err != nil {
				return fmt.Errorf("%w: submission %q: %v", ErrCorrupt, s.RequestID, err)
			}
			if old.Connection == s.Connection && sameIDs(old.Parts, s.SMSCIDs) {
				sub, keep, subExp = old, true, item.ExpiresAt()
			} else if old.Due != 0 && !old.Done {
				if err := txn.Delete(dueKey(old.Due, s.RequestID)); err != nil {
					return err
				}
			}
		case !errors.Is(err, badger.ErrKeyNotFound):
			return err
		}
		wasDone := sub.Done
		if !keep {
			sub = submission{Template: s.Template, Parts: make([]dispatch.PartReceipt, len(s.SMSCIDs)),
				Connection: s.Connection, Due: now.Add(ttl).UnixNano()}
			for i, id := range s.SMSCIDs {
				sub.Parts[i] = dispatch.PartReceipt{Part: i + 1, SMSCID: id}
			}
			exp := expiresAt(now.Add(ttl))
			for i, id := range s.SMSCIDs {
				rv := binary.BigEndian.AppendUint16(make([]byte, 0, 2+len(s.RequestID)), uint16(i+1))
				rv = append(rv, s.RequestID...)
				if err := txn.SetEntry(&badger.Entry{Key: key2(pReceiptID, s.Connection, id), Value: rv, ExpiresAt: exp}); err != nil {
					return err
				}
			}
		}
		changed := !keep
		for i, id := range s.SMSCIDs {
			ek := key2(pEarly, s.Connection, id)
			var er earlyReceipt
			if ok, err := getJSON(txn, ek, &er, "early receipt", id); !ok {
				if err != nil {
					return err
				}
				continue
			}
			if err := txn.Delete(ek); err != nil {
				return err
			}
			if p := &sub.Parts[i]; !sub.Done && !finalState(p.State) {
				p.State, p.Err = er.State, er.Err
				changed = true
			}
		}
		if !sub.Done && allFinal(sub.Parts) {
			sub.Done = true
			res.Done = true
		}
		switch {
		case !keep && !sub.Done:
			if err := txn.SetEntry(&badger.Entry{Key: dueKey(sub.Due, s.RequestID), ExpiresAt: subExp}); err != nil {
				return err
			}
		case keep && !wasDone && sub.Done:
			if err := txn.Delete(dueKey(sub.Due, s.RequestID)); err != nil {
				return err
			}
		}
		if changed {
			v, err := json.Marshal(&sub)
			if err != nil {
				return fmt.Errorf("%w: submission %q: %v", ErrInvalid, s.RequestID, err)
			}
			if err := txn.SetEntry(&badger.Entry{Key: sk, Value: v, ExpiresAt: subExp}); err != nil {
				return err
			}
		}
		done := res.Done
		res = sub.result(s.RequestID)
		res.Done = done
		return nil
	})
	db.m.write("track", time.Since(start).Seconds())
	if err != nil {
		return dispatch.ReceiptResult{}, fmt.Errorf("storage: track %q: %w", s.RequestID, err)
	}
	return res, nil
}

// Apply records r against its part. A state of a part already final is ignored; an
// intermediate state (ACCEPTD, ENROUTE) is recorded until a final one arrives. Done is true
// for exactly one call per request: the one that made its last part final, also under
// concurrent calls (they are serialised by transaction conflicts); Complete on that call
// and on every later one that matches. A final receipt whose id is not tracked is kept
// for earlyReceiptTTL for Track (an intermediate one is dropped); one whose id belongs to
// a submission tracked again with other ids is ignored. Durable when it returns.
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
	now := db.opt.Clock()
	rk := key2(pReceiptID, r.Connection, r.SMSCID)
	err := db.update(func(txn *badger.Txn) error {
		res = dispatch.ReceiptResult{}
		item, err := txn.Get(rk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			if !finalState(r.State) {
				return nil
			}
			at := r.At
			if at.IsZero() {
				at = now
			}
			v, err := json.Marshal(earlyReceipt{State: r.State, Err: r.Err, At: at.UTC()})
			if err != nil {
				return err
			}
			return txn.SetEntry(&badger.Entry{Key: key2(pEarly, r.Connection, r.SMSCID), Value: v,
				ExpiresAt: expiresAt(now.Add(earlyReceiptTTL))})
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
		sitem, err := txn.Get(sk)
		if errors.Is(err, badger.ErrKeyNotFound) {
			return nil // expired between the two keys
		}
		if err != nil {
			return err
		}
		var sub submission
		if err := sitem.Value(func(v []byte) error { return json.Unmarshal(v, &sub) }); err != nil {
			return fmt.Errorf("%w: submission %q: %v", ErrCorrupt, reqID, err)
		}
		if part < 1 || part > len(sub.Parts) || sub.Parts[part-1].SMSCID != r.SMSCID {
			return nil // an id of an earlier submission of the request, tracked again with others
		}
		p := &sub.Parts[part-1]
		if sub.Done || finalState(p.State) {
			res = sub.result(reqID)
			res.Part = part
			return nil
		}
		p.State, p.Err = r.State, r.Err
		if allFinal(sub.Parts) {
			sub.Done = true
			res.Done = true
			if sub.Due != 0 {
				if err := txn.Delete(dueKey(sub.Due, reqID)); err != nil {
					return err
				}
			}
		}
		v, err := json.Marshal(&sub)
		if err != nil {
			return err
		}
		done := res.Done
		res = sub.result(reqID)
		res.Done, res.Part = done, part
		// The submission keeps its own expiry (ttl + submissionGrace), not the receipt
		// id's (ttl): with the id's, a partly receipted submission vanished at its ttl and
		// the receipt-timeout sweep never ended its request.
		return txn.SetEntry(&badger.Entry{Key: sk, Value: v, ExpiresAt: sitem.ExpiresAt()})
	})
	db.m.write("receipt", time.Since(start).Seconds())
	if err != nil {
		return dispatch.ReceiptResult{}, fmt.Errorf("storage: apply receipt %q: %w", r.SMSCID, err)
	}
	return res, nil
}

// Expiring returns up to max submissions that are not complete and whose ttl passed by
// now, earliest first. It reads the due index from where the last call's first result
// was (everything before it was expired or completed), so it stays cheap with many
// deleted index entries; index entries of submissions already gone or complete are
// removed on the way.
func (db *DB) Expiring(now time.Time, max int) ([]dispatch.ReceiptResult, error) {
	if max <= 0 {
		return nil, fmt.Errorf("%w: max: must be > 0, got %d", ErrInvalid, max)
	}
	if err := db.acquire(); err != nil {
		return nil, err
	}
	defer db.release()
	limit := now.UnixNano()
	from := db.dueFrom.Load()
	var out []dispatch.ReceiptResult
	var stale [][]byte
	err := db.bdb.View(func(txn *badger.Txn) error {
		io := badger.DefaultIteratorOptions
		io.Prefix, io.PrefetchValues = []byte{pDue}, false
		it := txn.NewIterator(io)
		defer it.Close()
		for it.Seek(dueKey(from, "")); it.Valid() && len(out) < max; it.Next() {
			k := it.Item().Key()
			if len(k) < 9 {
				continue
			}
			if int64(binary.BigEndian.Uint64(k[1:9])) > limit {
				break
			}
			id := string(k[9:])
			var sub submission
			ok, err := getJSON(txn, key1(pSubmission, id), &sub, "submission", id)
			if err != nil {
				return err
			}
			if !ok {
				stale = append(stale, it.Item().KeyCopy(nil))
				continue
			}
			if sub.Done {
				stale = append(stale, it.Item().KeyCopy(nil))
				continue
			}
			out = append(out, sub.result(id))
			if len(out) == 1 {
				from = sub.Due
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("storage: expiring receipts: %w", err)
	}
	if len(out) == 0 {
		from = max64(from, limit-int64(time.Minute))
	}
	db.dueFrom.Store(from)
	if len(stale) > 0 {
		wb := db.bdb.NewWriteBatch()
		defer wb.Cancel()
		for _, k := range stale {
			if err := wb.Delete(k); err != nil {
				return nil, fmt.Errorf("storage: expiring receipts: %w", err)
			}
		}
		if err := wb.Flush(); err != nil {
			return nil, fmt.Errorf("storage: expiring receipts: %w", err)
		}
	}
	return out, nil
}

func max64(a, b int64) int64 {
	if a > b {
		return a
	}
	return b
}

// Expired marks the submissions of ids complete and removes them from the due index, in
// one transaction (receipts still match them afterwards and report Complete). Unknown
// or already complete ids are ignored.
func (db *DB) Expired(ids []string) error {
	if len(ids) == 0 {
		return nil
	}
	if err := db.acquire(); err != nil {
		return err
	}
	defer db.release()
	err := db.update(func(txn *badger.Txn) error {
		for _, id := range ids {
			sk := key1(pSubmission, id)
			item, err := txn.Get(sk)
			if errors.Is(err, badger.ErrKeyNotFound) {
				continue
			}
			if err != nil {
				return err
			}
			var sub submission
			if err := item.Value(func(v []byte) error { return json.Unmarshal(v, &sub) }); err != nil {
				return fmt.Errorf("%w: submission %q: %v", ErrCorrupt, id, err)
			}
			if sub.Done {
				continue
			}
			sub.Done = true
			if sub.Due != 0 {
				if err := txn.Delete(dueKey(sub.Due, id)); err != nil {
					return err
				}
			}
			v, err := json.Marshal(&sub)
			if err != nil {
				return err
			}
			if err := txn.SetEntry(&badger.Entry{Key: sk, Value: v, ExpiresAt: item.ExpiresAt()}); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("storage: expired receipts: %w", err)
	}
	return nil
}
