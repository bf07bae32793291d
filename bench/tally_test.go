package bench

import (
	"context"
	"errors"
	"strconv"
	"strings"
	"testing"
	"time"
)

func ev(id, status string, ts time.Time, t0 time.Time, segments int) Event {
	return Event{ID: id, Status: status, TS: ts, Segments: segments, Channel: "sms",
		Meta: map[string]string{MetaT0: strconv.FormatInt(t0.UnixNano(), 10)}}
}

func TestTally(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	ms := func(n int) time.Time { return t0.Add(time.Duration(n) * time.Millisecond) }
	for _, tc := range []struct {
		name      string
		receipts  bool
		events    []Event
		done      int
		outcomes  map[string]int
		segments  int64
		latencyN  int64
		p50, max  float64
		extra     int64
		receiptsN int64
	}{
		{
			name: "submitted then delivered", receipts: true,
			events: []Event{ev("r-1", "accepted", ms(1), t0, 0), ev("r-1", "submitted", ms(10), t0, 2), ev("r-1", "delivered", ms(50), t0, 2)},
			done:   1, outcomes: map[string]int{"delivered": 1}, segments: 2, latencyN: 1, p50: 10, max: 10, receiptsN: 1,
		},
		{
			name: "waiting for receipts: submitted is not done", receipts: true,
			events: []Event{ev("r-1", "submitted", ms(10), t0, 1)},
			done:   0, outcomes: map[string]int{}, segments: 1, latencyN: 1, p50: 10, max: 10,
		},
		{
			name: "receipts off: submitted is done, a late receipt replaces the outcome", receipts: false,
			events: []Event{ev("r-1", "submitted", ms(10), t0, 1), ev("r-2", "submitted", ms(30), t0, 3), ev("r-2", "delivered", ms(40), t0, 3)},
			done:   2, outcomes: map[string]int{"submitted": 1, "delivered": 1}, segments: 4, latencyN: 2, p50: 10, max: 30, receiptsN: 1,
		},
		{
			name: "terminal without submission: no latency, no segments", receipts: true,
			events: []Event{ev("r-1", "suppressed", ms(3), t0, 0), ev("r-2", "rejected", ms(3), t0, 0)},
			done:   2, outcomes: map[string]int{"suppressed": 1, "rejected": 1},
		},
		{
			name: "redelivered events count once; a second terminal is extra", receipts: true,
			events: []Event{ev("r-1", "submitted", ms(10), t0, 1), ev("r-1", "submitted", ms(99), t0, 1),
				ev("r-1", "delivered", ms(20), t0, 1), ev("r-1", "duplicate", ms(21), t0, 0)},
			done: 1, outcomes: map[string]int{"delivered": 1}, segments: 1, latencyN: 1, p50: 10, max: 10, extra: 1, receiptsN: 1,
		},
		{
			name: "other run's ids are ignored", receipts: true,
			events: []Event{ev("other-1", "delivered", ms(10), t0, 1)},
			done:   0, outcomes: map[string]int{},
		},
		{
			name: "event before t0 (clock skew) counts as zero latency", receipts: true,
			events: []Event{ev("r-1", "submitted", t0.Add(-time.Second), t0, 1), ev("r-1", "failed", ms(1), t0, 1)},
			done:   1, outcomes: map[string]int{"failed": 1}, segments: 1, latencyN: 1, p50: 0.001, max: 0.001,
		},
	} {
		t.Run(tc.name, func(t *testing.T) {
			ta := NewTally("r-", tc.receipts)
			for _, e := range tc.events {
				ta.Observe(e)
			}
			s := ta.Snapshot()
			if s.Done != tc.done || s.Segments != tc.segments || s.ExtraTerminals != tc.extra || s.Receipts != tc.receiptsN {
				t.Fatalf("done %d segments %d extra %d receipts %d, want %d %d %d %d", s.Done, s.Segments, s.ExtraTerminals, s.Receipts,
					tc.done, tc.segments, tc.extra, tc.receiptsN)
			}
			if len(s.Outcomes) != len(tc.outcomes) {
				t.Fatalf("outcomes %v, want %v", s.Outcomes, tc.outcomes)
			}
			for k, v := range tc.outcomes {
				if s.Outcomes[k] != v {
					t.Fatalf("outcomes %v, want %v", s.Outcomes, tc.outcomes)
				}
			}
			if s.Latency.Count != tc.latencyN || !near(s.Latency.P50, tc.p50) || !near(s.Latency.Max, tc.max) {
				t.Fatalf("latency %+v, want n=%d p50 %v max %v", s.Latency, tc.latencyN, tc.p50, tc.max)
			}
		})
	}
}

// near allows the histogram's 3 significant digits.
func near(got, want float64) bool { return got >= want*0.999-1e-9 && got <= want*1.001+1e-9 }

func TestTallyLatencyPercentiles(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	ta := NewTally("r-", false)
	for i := 1; i <= 1000; i++ { // 1..1000 ms
		ta.Observe(ev("r-"+strconv.Itoa(i), "submitted", t0.Add(time.Duration(i)*time.Millisecond), t0, 1))
	}
	l := ta.Snapshot().Latency
	for _, c := range []struct {
		name      string
		got, want float64
	}{{"p50", l.P50, 500}, {"p90", l.P90, 900}, {"p99", l.P99, 990}, {"max", l.Max, 1000}} {
		if !near(c.got, c.want) {
			t.Errorf("%s = %v ms, want %v", c.name, c.got, c.want)
		}
	}
}

func TestTallyCallsByCaller(t *testing.T) {
	ta := NewTally("r-", true)
	for i, c := range []struct{ from, status string }{{"+1", "completed"}, {"+2", "busy"}, {"+1", "completed"}, {"+1", "no_answer"}, {"", "rejected"}} {
		ta.Observe(Event{ID: "r-" + strconv.Itoa(i), Channel: "voice", From: c.from, Status: c.status})
	}
	s := ta.Snapshot()
	if len(s.Calls) != 2 || s.Calls["+1"]["completed"] != 2 || s.Calls["+1"]["no_answer"] != 1 || s.Calls["+2"]["busy"] != 1 {
		t.Fatalf("calls %v", s.Calls)
	}
}

func TestTallyWait(t *testing.T) {
	ta := NewTally("r-", true)
	go func() {
		for i := range 50 {
			ta.Observe(Event{ID: "r-" + strconv.Itoa(i), Status: "delivered"})
		}
		ta.Observe(Event{ID: "r-0", Status: "duplicate"})
	}()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := ta.WaitDone(ctx, 50); err != nil {
		t.Fatal(err)
	}
	if err := ta.WaitTerminals(ctx, 51); err != nil {
		t.Fatal(err)
	}
	if got := ta.Terminals("r-0"); len(got) != 2 || got[0] != "delivered" || got[1] != "duplicate" {
		t.Fatalf("Terminals(r-0) = %v", got)
	}
	// A condition that never holds returns the context's error.
	short, cancel2 := context.WithTimeout(context.Background(), 20*time.Millisecond)
	defer cancel2()
	if err := ta.WaitDone(short, 51); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("WaitDone beyond the total = %v, want deadline exceeded", err)
	}
}

func TestUninteresting(t *testing.T) {
	for _, tc := range []struct {
		v    string
		skip bool
	}{
		{`{"id":"a","status":"accepted","ts":"x"}`, true},
		{`{"id":"a","status":"scheduled"}`, true},
		{`{"id":"a","status":"submitted","segments":1}`, false},
		{`{"id":"a","status":"delivered"}`, false},
		{`{"id":"a","status":"acceptedX"}`, false},
		{`not json`, false},
	} {
		if got := uninteresting([]byte(tc.v)); got != tc.skip {
			t.Errorf("uninteresting(%s) = %v, want %v", tc.v, got, tc.skip)
		}
	}
}

// TestTallyKeepsEveryIDApart: ids are kept by number when they are "<prefix><n>" and by
// name otherwise; ids that differ only in a leading zero, named ids, a number far beyond
// the run and an id with more terminal events than fit inline each keep their own
// outcome and terminals, in arrival order.
func TestTallyKeepsEveryIDApart(t *testing.T) {
	t0 := time.Unix(1700000000, 0)
	tl := NewTally("r-", false)
	tl.Expect(4)
	statuses := []string{"duplicate", "failed", "delivered", "undelivered", "expired", "cancelled"}
	for _, tc := range []struct{ id, status string }{
		{"r-7", "submitted"}, {"r-07", "suppressed"}, {"r-dup", "duplicate"}, {"r-999999999", "rejected"},
		{"r-0", "rejected"}, {"r-1024", "submitted"},
	} {
		tl.Observe(ev(tc.id, tc.status, t0, t0, 1))
	}
	for _, s := range statuses {
		tl.Observe(ev("r-3", s, t0, t0, 1))
	}
	for id, want := range map[string]string{"r-7": "submitted", "r-07": "suppressed", "r-dup": "duplicate",
		"r-999999999": "rejected", "r-0": "rejected", "r-1024": "submitted", "r-3": "duplicate", "r-5": "", "x-7": "", "r-": ""} {
		if got := tl.Outcome(id); got != want {
			t.Errorf("Outcome(%q) = %q, want %q", id, got, want)
		}
	}
	if got := tl.Terminals("r-3"); strings.Join(got, ",") != strings.Join(statuses, ",") {
		t.Errorf("Terminals(r-3) = %v, want %v", got, statuses)
	}
	if got := tl.Terminals("r-07"); len(got) != 1 || got[0] != "suppressed" {
		t.Errorf("Terminals(r-07) = %v", got)
	}
	if got := tl.Terminals("r-7"); got != nil {
		t.Errorf("Terminals(r-7) = %v, want none", got)
	}
	s := tl.Snapshot()
	if s.Done != 7 || s.ExtraTerminals != 5 || s.Outcomes["submitted"] != 2 || s.Outcomes["rejected"] != 2 {
		t.Errorf("snapshot %+v", s)
	}
}
