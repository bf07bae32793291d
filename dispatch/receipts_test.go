package dispatch

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"
)

// statuses returns the statuses the sink received for id, in order.
func (s *recSink) statuses(id string) []Status {
	var out []Status
	for _, e := range s.byID()[id] {
		out = append(out, e.Status)
	}
	return out
}

// TestOutboxRepublishedOnStart guarantees that events durable in the ledger but not
// acknowledged by the events topic before a crash (left in the outbox) are published on
// the next start, byte for byte as first emitted, before new events, and then removed
// from the outbox.
func TestOutboxRepublishedOnStart(t *testing.T) {
	store := newMemStore()
	ts := time.Date(2026, 5, 1, 2, 3, 4, 5, time.UTC)
	left := []Event{{ID: "o1", Status: StatusAccepted, TS: ts}, {ID: "o1", Status: StatusSubmitted, TS: ts.Add(time.Millisecond), SMSCIDs: []string{"X"}}}
	if _, err := store.AppendSeqs(left); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.Ledger, o.OptOuts, o.Receipts, o.Schedule = store, store, store, store })
	h.store = store
	h.src.push("+358401234567", req("n1", "+358401234567", "hi"), "t/0/1")
	waitFor(t, 5*time.Second, "n1 delivered", func() bool { return h.sink.terminals() == 1 })
	waitFor(t, 5*time.Second, "outbox emptied", func() bool { return store.outboxLen() == 0 })
	h.stop()
	h.sink.mu.Lock()
	first := append([]Event(nil), h.sink.evs[:2]...)
	h.sink.mu.Unlock()
	for i := range left {
		if fmt.Sprint(first[i]) != fmt.Sprint(left[i]) {
			t.Errorf("event %d published %+v, want the outbox's %+v first", i, first[i], left[i])
		}
	}
}

// blockSink is an events topic that does not acknowledge until released.
type blockSink struct {
	recSink
	release chan struct{}
}

func (b *blockSink) WriteEvents(ctx context.Context, evs []Event) error {
	select {
	case <-b.release:
	case <-ctx.Done():
		return ctx.Err()
	}
	return b.recSink.WriteEvents(ctx, evs)
}

// TestAckDoesNotWaitForTopic guarantees that a record is acknowledged once its events are
// durable in the ledger (outbox), even while the events topic does not answer: the topic
// write is off the acknowledgement path, and the events still go out once it answers.
func TestAckDoesNotWaitForTopic(t *testing.T) {
	sink := &blockSink{release: make(chan struct{})}
	h := newHarness(t, func(o *Options) { o.Events = sink })
	for i := range 5 {
		h.src.push("k", req(fmt.Sprint("a", i), "+358401234567", "hi"), fmt.Sprint("t/0/", i))
	}
	waitFor(t, 5*time.Second, "acks with the topic blocked", func() bool { return h.src.acked.Load() == 5 })
	if n := sink.terminals(); n != 0 {
		t.Fatalf("%d terminal events reached the blocked topic", n)
	}
	close(sink.release)
	waitFor(t, 5*time.Second, "events after release", func() bool { return sink.terminals() == 5 })
}

// TestRepeatedReceiptOneTerminal guarantees that a receipt delivered again (the SMSC
// redelivers after a crash before deliver_sm_resp) yields no second terminal event, and
// that HandleReceipt returns only once the completion is durable in the ledger.
func TestRepeatedReceiptOneTerminal(t *testing.T) {
	var last atomic.Value
	h := newHarness(t, nil)
	h.smsc.receipt = func(r Receipt) {
		last.Store(r)
		if err := h.p.HandleReceipt(r); err != nil {
			t.Errorf("HandleReceipt: %v", err)
		}
		if st := h.store.terminalOf("r1"); st != StatusDelivered {
			t.Errorf("HandleReceipt returned before the completion was durable (terminal %q)", st)
		}
	}
	h.src.push("k", req("r1", "+358401234567", "hi"), "t/0/1")
	waitFor(t, 5*time.Second, "delivered", func() bool { return h.sink.terminals() == 1 })
	for range 3 {
		if err := h.p.HandleReceipt(last.Load().(Receipt)); err != nil {
			t.Fatal(err)
		}
	}
	h.stop()
	if got := fmt.Sprint(h.sink.statuses("r1")); got != "[accepted submitted delivered]" {
		t.Fatalf("events %s, want one delivered", got)
	}
}

// TestEarlyReceiptCompletes guarantees that a receipt arriving before its submission is
// tracked (the SMSC answers fast) completes the request.
func TestEarlyReceiptCompletes(t *testing.T) {
	h := newHarness(t, nil)
	h.smsc.receipt = nil
	h.smsc.early = func(r Receipt) {
		if err := h.p.HandleReceipt(r); err != nil {
			t.Errorf("HandleReceipt: %v", err)
		}
	}
	h.src.push("k", req("e1", "+358401234567", "hi"), "t/0/1")
	waitFor(t, 5*time.Second, "delivered", func() bool { return h.sink.terminals() == 1 })
	waitFor(t, 5*time.Second, "ack", func() bool { return h.src.acked.Load() == 1 })
	h.stop()
	if got := fmt.Sprint(h.sink.statuses("e1")); got != "[accepted submitted delivered]" {
		t.Fatalf("events %s", got)
	}
}

// TestRedeliveredSubmittedTracksAgain guarantees that a record redelivered after a crash
// that fell between its `submitted` event and the tracking of its receipts is not sent
// again, and that the receipt that arrived meanwhile completes it.
func TestRedeliveredSubmittedTracksAgain(t *testing.T) {
	store := newMemStore()
	store.Claim("s1", "t/0/7", time.Now())
	seqs, _ := store.AppendSeqs([]Event{{ID: "s1", Status: StatusAccepted}, {ID: "s1", Channel: ChannelSMS, Status: StatusSubmitted, Connection: "smsc-a", SMSCIDs: []string{"old-1"}}})
	store.Published(seqs)
	if _, err := store.Apply(Receipt{Connection: "smsc-a", SMSCID: "old-1", State: "UNDELIV"}); err != nil {
		t.Fatal(err)
	}
	h := newHarness(t, func(o *Options) { o.Ledger, o.OptOuts, o.Receipts, o.Schedule = store, store, store, store })
	h.store = store
	h.src.push("+358401234567", req("s1", "+358401234567", "hi"), "t/0/7")
	waitFor(t, 5*time.Second, "completion", func() bool { return h.sink.terminals() == 1 })
	h.stop()
	if n := h.smsc.partsOf("s1"); n != 0 {
		t.Errorf("sent again: %d parts", n)
	}
	evs := h.sink.byID()["s1"]
	if len(evs) != 1 || evs[0].Status != StatusUndelivered || evs[0].Reason != "receipt_undeliv" {
		t.Fatalf("events %+v, want one undelivered", evs)
	}
}

// TestReceiptTimeout guarantees that a submission whose receipts do not all arrive within
// the receipt TTL ends in `undelivered` with reason receipt_timeout and the parts known,
// exactly once, also when the missing receipt arrives later.
func TestReceiptTimeout(t *testing.T) {
	h := newHarness(t, func(o *Options) {
		o.Config.ReceiptTTL = 100 * time.Millisecond
		o.Config.ReceiptSweep = 20 * time.Millisecond
	})
	var rs []Receipt
	var mu = make(chan struct{}, 1)
	h.smsc.receipt = func(r Receipt) { mu <- struct{}{}; rs = append(rs, r); <-mu }
	long := ""
	for range 200 {
		long += "x"
	}
	h.src.push("k", req("t1", "+358401234567", long), "t/0/1") // 2 parts
	waitFor(t, 5*time.Second, "receipts held", func() bool { mu <- struct{}{}; n := len(rs); <-mu; return n == 2 })
	if err := h.p.HandleReceipt(rs[0]); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "timeout", func() bool { return h.sink.terminals() == 1 })
	if err := h.p.HandleReceipt(rs[1]); err != nil { // late
		t.Fatal(err)
	}
	h.stop()
	evs := h.sink.byID()["t1"]
	last := evs[len(evs)-1]
	if h.sink.terminals() != 1 || last.Status != StatusUndelivered || last.Reason != ReasonReceiptTimeout ||
		len(last.Parts) != 2 || last.Parts[0].State != "DELIVRD" || last.Parts[1].State != "" {
		t.Fatalf("events %+v; want one undelivered receipt_timeout with part 1 DELIVRD", evs)
	}
}

// asyncSink is an AsyncEventSink acknowledging from another goroutine, in call order
// (as the contract wants per key).
type asyncSink struct {
	recSink
	once sync.Once
	q    chan func()
}

func (a *asyncSink) WriteEventsAsync(evs []Event, done func(error)) error {
	a.once.Do(func() {
		a.q = make(chan func(), 1024)
		go func() {
			for f := range a.q {
				f()
			}
		}()
	})
	evs = append([]Event(nil), evs...)
	a.q <- func() { done(a.WriteEvents(context.Background(), evs)) }
	return nil
}

// TestAsyncSinkPublishesInOrderAndEmptiesOutbox guarantees that with an asynchronous
// events writer every event is published once, in order per request, and its outbox
// entry is removed after the acknowledgement.
func TestAsyncSinkPublishesInOrderAndEmptiesOutbox(t *testing.T) {
	sink := &asyncSink{}
	h := newHarness(t, func(o *Options) { o.Events = sink })
	const n = 50
	for i := range n {
		h.src.push(fmt.Sprint("k", i%7), req(fmt.Sprint("as", i), "+358401234567", "hi"), fmt.Sprint("t/0/", i))
	}
	waitFor(t, 5*time.Second, "terminals", func() bool { return sink.terminals() == n })
	waitFor(t, 5*time.Second, "outbox emptied", func() bool { return h.store.outboxLen() == 0 })
	h.stop()
	for i := range n {
		if got := fmt.Sprint(sink.statuses(fmt.Sprint("as", i))); got != "[accepted submitted delivered]" {
			t.Fatalf("as%d: events %s", i, got)
		}
	}
}
