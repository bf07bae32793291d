package dispatch

import (
	"context"
	"encoding/json"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// recSink records every event written to the events topic.
type recSink struct {
	mu  sync.Mutex
	evs []Event
}

func (s *recSink) WriteEvents(_ context.Context, evs []Event) error {
	s.mu.Lock()
	s.evs = append(s.evs, evs...)
	s.mu.Unlock()
	return nil
}

func (s *recSink) byID() map[string][]Event {
	s.mu.Lock()
	defer s.mu.Unlock()
	m := map[string][]Event{}
	for _, e := range s.evs {
		m[e.ID] = append(m[e.ID], e)
	}
	return m
}

func (s *recSink) terminals() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, e := range s.evs {
		if e.Status.Terminal() {
			n++
		}
	}
	return n
}

type recDLQ struct {
	mu   sync.Mutex
	recs map[string]string // source -> reason
}

func (d *recDLQ) DeadLetter(_ context.Context, key, value []byte, source, reason, detail string) error {
	d.mu.Lock()
	defer d.mu.Unlock()
	if d.recs == nil {
		d.recs = map[string]string{}
	}
	d.recs[source] = reason
	return nil
}

func (d *recDLQ) len() int {
	d.mu.Lock()
	defer d.mu.Unlock()
	return len(d.recs)
}

type harness struct {
	t      *testing.T
	p      *Pipeline
	src    *chanSource
	store  *memStore
	sink   *recSink
	dlq    *recDLQ
	smsc   *fakeSMSC
	cancel context.CancelFunc
	done   chan error
}

func newHarness(t *testing.T, mod func(o *Options)) *harness {
	t.Helper()
	h := &harness{t: t, src: newChanSource(), store: newMemStore(), sink: &recSink{}, dlq: &recDLQ{}, smsc: newFakeSMSC("smsc-a")}
	cfg := DefaultConfig()
	cfg.Workers = 16
	cfg.SchedulePoll = 20 * time.Millisecond
	cfg.ShutdownGrace = 2 * time.Second
	o := Options{Config: cfg, Node: "test", Source: h.src, Events: h.sink, DLQ: h.dlq,
		OptOuts: h.store, Ledger: h.store, Receipts: h.store, Schedule: h.store,
		SMS:      []SMSRoute{{Sender: h.smsc, Prefixes: []string{"*"}, DefaultFrom: "SENDCORE"}},
		Registry: prometheus.NewRegistry()}
	if mod != nil {
		mod(&o)
	}
	p, err := New(o)
	if err != nil {
		t.Fatal(err)
	}
	p.count, p.split = fakeCount, fakeSplit
	h.p = p
	h.smsc.receipt = func(r Receipt) {
		if err := p.HandleReceipt(r); err != nil {
			t.Errorf("HandleReceipt: %v", err)
		}
	}
	ctx, cancel := context.WithCancel(context.Background())
	h.cancel, h.done = cancel, make(chan error, 1)
	go func() { h.done <- p.Run(ctx) }()
	t.Cleanup(h.stop)
	return h
}

func (h *harness) stop() {
	h.t.Helper()
	if h.cancel == nil {
		return
	}
	h.cancel()
	h.cancel = nil
	select {
	case err := <-h.done:
		if err != nil {
			h.t.Errorf("Run: %v", err)
		}
	case <-time.After(10 * time.Second):
		h.t.Fatal("Run did not return")
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func req(id, to, text string, extra ...string) string {
	m := map[string]any{"id": id, "channel": "sms", "to": to, "text": text}
	for i := 0; i+1 < len(extra); i += 2 {
		var v any
		if err := json.Unmarshal([]byte(extra[i+1]), &v); err != nil {
			v = extra[i+1]
		}
		m[extra[i]] = v
	}
	b, _ := json.Marshal(m)
	return string(b)
}

// TestMixedRunOneTerminalPerID guarantees: over a mixed load every id gets exactly one
// terminal event, the SMSC receives exactly the expected parts, and the DLQ holds
// exactly the invalid records.
func TestMixedRunOneTerminalPerID(t *testing.T) {
	h := newHarness(t, nil)
	const n = 3000
	want := map[string]Status{}
	wantParts := map[string]int{}
	invalid := 0
	for i := 0; i < n; i++ {
		id := fmt.Sprintf("m-%d", i)
		to := fmt.Sprintf("+35840%07d", i)
		src := fmt.Sprintf("t/0/%d", i)
		switch i % 50 {
		case 7:
			h.store.SetOptOut(OptOut{Tenant: "default", Channel: ChannelAll, Address: to, OptedOut: true})
			h.src.push(to, req(id, to, "hi"), src)
			want[id] = StatusSuppressed
		case 11:
			h.src.push(to, req(id, "12", "hi"), src)
			want[id] = StatusRejected
			invalid++
		case 13:
			h.src.push(to, `{"id":`, src)
			invalid++
		case 17:
			h.src.push(to, req(id, to, strings.Repeat("a", 200), "not_before", time.Now().Add(300*time.Millisecond).UTC().Format(time.RFC3339Nano)), src)
			want[id], wantParts[id] = StatusDelivered, 2
		case 19:
			h.src.push(to, req(id, to, strings.Repeat("ä", 100)), src)
			want[id], wantParts[id] = StatusDelivered, 2
		case 23:
			h.src.push(to, req("m-0", to, "dup"), src)
			want[id] = "" // the duplicate's event is on m-0
		default:
			h.src.push(to, req(id, to, "hello"), src)
			want[id], wantParts[id] = StatusDelivered, 1
		}
	}
	dups := n / 50
	waitFor(t, 20*time.Second, "terminal events", func() bool { return h.sink.terminals() >= n-n/50 })
	waitFor(t, 5*time.Second, "acks", func() bool { return h.src.acked.Load() == n })
	h.stop()
	byID := h.sink.byID()
	for id, st := range want {
		if st == "" {
			continue
		}
		var terms []Status
		for _, e := range byID[id] {
			if e.Status.Terminal() && (id != "m-0" || e.Status != StatusDuplicate) {
				terms = append(terms, e.Status)
			}
		}
		if len(terms) != 1 || terms[0] != st {
			t.Fatalf("%s: terminal events %v, want [%s] (all: %+v)", id, terms, st, byID[id])
		}
		if got := h.smsc.partsOf(id); got != wantParts[id] {
			t.Fatalf("%s: SMSC got %d parts, want %d", id, got, wantParts[id])
		}
	}
	nd := 0
	for _, e := range byID["m-0"] {
		if e.Status == StatusDuplicate {
			nd++
		}
	}
	if nd != dups {
		t.Errorf("duplicate events %d, want %d", nd, dups)
	}
	if h.dlq.len() != invalid {
		t.Errorf("DLQ holds %d, want %d", h.dlq.len(), invalid)
	}
	for id, evs := range byID {
		for _, e := range evs {
			if (e.Status == StatusSubmitted || e.Status == StatusDelivered) && e.Segments == 0 {
				t.Fatalf("%s: %s without segments", id, e.Status)
			}
		}
	}
}

// TestRedeliveryNoDuplicateSend guarantees that a record delivered again with the same
// source (restart, rebalance) is neither sent again nor given a duplicate event, while
// the same id from another source is a `duplicate`.
func TestRedeliveryNoDuplicateSend(t *testing.T) {
	h := newHarness(t, nil)
	h.src.push("+358401234567", req("r1", "+358401234567", "hi"), "t/0/1")
	waitFor(t, 5*time.Second, "delivered", func() bool { return h.sink.terminals() == 1 })
	h.src.push("+358401234567", req("r1", "+358401234567", "hi"), "t/0/1")
	h.src.push("+358401234567", req("r1", "+358401234567", "hi"), "t/0/9")
	waitFor(t, 5*time.Second, "acks", func() bool { return h.src.acked.Load() == 3 })
	h.stop()
	if got := h.smsc.partsOf("r1"); got != 1 {
		t.Fatalf("SMSC got %d parts, want 1", got)
	}
	var sts []Status
	for _, e := range h.sink.byID()["r1"] {
		sts = append(sts, e.Status)
	}
	want := []Status{StatusAccepted, StatusSubmitted, StatusDelivered, StatusDuplicate}
	if fmt.Sprint(sts) != fmt.Sprint(want) {
		t.Fatalf("events %v, want %v", sts, want)
	}
}

// TestRedeliveryResumesUnfinished guarantees that a record claimed before a crash but
// never submitted is sent on redelivery without a second `accepted`.
func TestRedeliveryResumesUnfinished(t *testing.T) {
	store := newMemStore()
	store.Claim("r2", "t/0/5", time.Now())
	seqs, _ := store.AppendSeqs([]Event{{ID: "r2", Status: StatusAccepted}})
	store.Published(seqs) // on the events topic before the crash
	h := newHarness(t, func(o *Options) { o.Ledger, o.OptOuts, o.Receipts, o.Schedule = store, store, store, store })
	h.store = store
	h.src.push("+358401234567", req("r2", "+358401234567", "hi"), "t/0/5")
	waitFor(t, 5*time.Second, "delivered", func() bool { return h.sink.terminals() == 1 })
	h.stop()
	var sts []Status
	for _, e := range h.sink.byID()["r2"] {
		sts = append(sts, e.Status)
	}
	if fmt.Sprint(sts) != fmt.Sprint([]Status{StatusSubmitted, StatusDelivered}) {
		t.Fatalf("events %v", sts)
	}
}

func TestCancelCampaign(t *testing.T) {
	h := newHarness(t, nil)
	nb := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	for i := 0; i < 5; i++ {
		h.src.push("k", req(fmt.Sprintf("c%d", i), "+358401234567", "hi", "campaign", "spring", "not_before", nb), fmt.Sprintf("t/0/%d", i))
	}
	h.src.push("k", req("other", "+358401234567", "hi", "campaign", "autumn", "not_before", nb), "t/0/9")
	waitFor(t, 5*time.Second, "held", func() bool { n, _ := h.store.Len(); return n == 6 && h.src.acked.Load() == 6 })
	n, err := h.p.CancelCampaign("default", "spring")
	if err != nil || n != 5 {
		t.Fatalf("CancelCampaign = %d, %v; want 5", n, err)
	}
	if l, _ := h.store.Len(); l != 1 {
		t.Fatalf("schedule holds %d, want 1", l)
	}
	for i := 0; i < 5; i++ { // durable in the ledger at return; the topic follows
		if h.store.terminalOf(fmt.Sprintf("c%d", i)) != StatusCancelled {
			t.Fatalf("c%d: not cancelled in the ledger when CancelCampaign returned", i)
		}
	}
	waitFor(t, 5*time.Second, "cancelled events", func() bool { return h.sink.terminals() == 5 })
	byID := h.sink.byID()
	for i := 0; i < 5; i++ {
		evs := byID[fmt.Sprintf("c%d", i)]
		if last := evs[len(evs)-1]; last.Status != StatusCancelled || last.Campaign != "spring" || last.To != "+358401234567" {
			t.Fatalf("c%d: last event %+v", i, last)
		}
	}
}

func TestHandleMOKeywords(t *testing.T) {
	h := newHarness(t, nil)
	cases := []struct {
		text string
		want bool
	}{{" s top ", true}, {"hello", true}, {"Start", false}, {"lopeta", true}, {"UNSTOP", false}}
	for _, c := range cases {
		t.Run(c.text, func(t *testing.T) {
			if err := h.p.HandleMO(MO{Connection: "smsc-a", From: "+358401112222", To: "12345", Text: c.text}); err != nil {
				t.Fatal(err)
			}
			got, _ := h.store.OptedOut("default", ChannelSMS, "+358401112222")
			if got != c.want {
				t.Fatalf("opted out = %v, want %v", got, c.want)
			}
		})
	}
	waitFor(t, 5*time.Second, "events", func() bool {
		n := 0
		for _, evs := range h.sink.byID() {
			for _, e := range evs {
				if e.Status == StatusOptedOut || e.Status == StatusOptedIn {
					n++
				}
			}
		}
		return n == 4
	})
}

// TestShutdownAcksOnlyHandedOff guarantees that requests still in the source when Run
// stops are not acknowledged (they are redelivered) and that Run returns in time.
func TestShutdownAcksOnlyHandedOff(t *testing.T) {
	h := newHarness(t, nil)
	block := make(chan struct{})
	h.smsc.fail = func(m *SMS) Outcome {
		if m.RequestID == "slow" {
			<-block
		}
		return OutcomeOK
	}
	h.src.push("a", req("fast", "+358401234567", "hi"), "t/0/1")
	waitFor(t, 5*time.Second, "fast acked", func() bool { return h.src.acked.Load() == 1 })
	h.src.push("b", req("slow", "+358401234568", "hi"), "t/0/2")
	waitFor(t, 5*time.Second, "slow in flight", func() bool { return h.smsc.msgs.Load() == 2 })
	go func() { time.Sleep(50 * time.Millisecond); close(block) }()
	h.stop()
	if h.src.acked.Load() != 2 {
		t.Fatalf("acked %d, want 2 (slow finished within the grace)", h.src.acked.Load())
	}
}
