package dispatch

import (
	"context"
	"fmt"
	"sync"
	"testing"
	"time"
)

// encLedger is the in-memory ledger as an EncodingLedger: the JSON it "stored" is a
// marker naming the event, so a sink that gets it got the ledger's bytes, not an
// encoding of its own.
type encLedger struct{ *memStore }

func marker(e Event) []byte { return []byte(fmt.Sprintf("ledger:%s:%s", e.ID, e.Status)) }

func (l encLedger) ClaimAcceptedJSON(id, source string, at time.Time, accepted Event) (Claim, bool, uint64, []byte, error) {
	prev, existed, seq, err := l.ClaimAccepted(id, source, at, accepted)
	if seq == 0 {
		return prev, existed, seq, nil, err
	}
	return prev, existed, seq, marker(accepted), err
}

func (l encLedger) AppendSeqsJSON(evs []Event) ([]uint64, [][]byte, error) {
	seqs, err := l.AppendSeqs(evs)
	vals := make([][]byte, len(evs))
	for i := range evs {
		if seqs[i] != 0 {
			vals[i] = marker(evs[i])
		}
	}
	return seqs, vals, err
}

// encSink records the bytes it is handed per event (nil: it would encode itself).
type encSink struct {
	*recSink
	mu   sync.Mutex
	vals map[string][]byte // id + status -> value handed over
}

func (s *encSink) WriteEventsAsync(evs []Event, done func(error)) error {
	return s.WriteEncodedAsync(evs, nil, done)
}

func (s *encSink) WriteEncodedAsync(evs []Event, vals [][]byte, done func(error)) error {
	s.mu.Lock()
	for i, e := range evs {
		var v []byte
		if vals != nil {
			v = vals[i]
		}
		s.vals[e.ID+" "+string(e.Status)] = v
	}
	s.mu.Unlock()
	err := s.WriteEvents(context.Background(), evs)
	done(err)
	return nil
}

// TestEventsGoOutWithTheLedgersBytes guarantees that with an EncodingLedger and an
// EncodedEventSink every event is published with the bytes the ledger stored: the
// accepted event written with the claim and the events the emitter appends.
func TestEventsGoOutWithTheLedgersBytes(t *testing.T) {
	var sink *encSink
	h := newHarness(t, func(o *Options) {
		o.Ledger = encLedger{o.Ledger.(*memStore)}
		sink = &encSink{recSink: o.Events.(*recSink), vals: map[string][]byte{}}
		o.Events = sink
	})
	h.src.push("+358401234567", req("e1", "+358401234567", "hello", "dlr", "false"), "t/0/1")
	waitFor(t, 5*time.Second, "submitted", func() bool { return len(h.sink.byID()["e1"]) >= 2 })
	sink.mu.Lock()
	defer sink.mu.Unlock()
	for _, st := range []Status{StatusAccepted, StatusSubmitted} {
		got, ok := sink.vals["e1 "+string(st)]
		if want := marker(Event{ID: "e1", Status: st}); !ok || string(got) != string(want) {
			t.Errorf("%s handed to the sink with %q, want the ledger's %q", st, got, want)
		}
	}
}
