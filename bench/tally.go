package bench

import (
	"context"
	"fmt"
	"log/slog"
	"maps"
	"math"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"
	"github.com/twmb/franz-go/pkg/kgo"
)

// Latency histogram bounds, in microseconds: 1 µs to 10 minutes, 3 significant digits.
const (
	histMin    = 1
	histMax    = int64(10 * time.Minute / time.Microsecond)
	histDigits = 3
)

// Tally follows the events of one run's requests (ids starting with its prefix) and
// counts, per id and once: its outcome, its segments (the billing count), and the
// latency produce → submit_sm_resp (the first `submitted` event's ts − meta[MetaT0]).
// A request is done at its terminal event, or at `submitted` when receipts are not
// awaited. Methods are safe for concurrent use.
type Tally struct {
	prefix   string
	receipts bool

	mu        sync.Mutex
	ids       idIndex
	done      int
	outcomes  map[string]int
	segments  int64
	events    int64
	receiptsN int64          // delivered + undelivered events
	extra     int64          // terminal events beyond the first of an id
	terminal  map[string]int // every terminal event by status
	hist      *hdrhistogram.Histogram
	recent    *hdrhistogram.Histogram // since the last RecentP99
	lastDone  time.Time
	calls     map[string]map[string]int // voice: caller number → outcome → count
	wake      chan struct{}             // closed and replaced on every done
}

// NewTally returns a Tally for the ids that start with prefix. With receipts false a
// request is done at `submitted` (and counted under outcome "submitted" until a terminal
// event replaces it).
func NewTally(prefix string, receipts bool) *Tally {
	return &Tally{
		prefix: prefix, receipts: receipts, ids: newIDIndex(), outcomes: map[string]int{},
		terminal: map[string]int{}, hist: hdrhistogram.New(histMin, histMax, histDigits), recent: hdrhistogram.New(histMin, histMax, histDigits), calls: map[string]map[string]int{},
		wake: make(chan struct{}),
	}
}

// Expect sizes the Tally for about n requests, so that recording them does not grow
// (rehash) its index while the run is measured. Call it before the first Observe.
func (t *Tally) Expect(n int) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.ids.expect(n)
}

// Observe records one event. Events of other ids, and statuses that are neither
// submitted nor terminal, are ignored.
func (t *Tally) Observe(ev Event) {
	if !strings.HasPrefix(ev.ID, t.prefix) {
		return
	}
	terminal := Terminal(ev.Status)
	if !terminal && ev.Status != "submitted" {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.events++
	s, key := t.ids.get(ev.ID[len(t.prefix):])
	if ev.Segments > 0 && s.segments == 0 {
		s.segments = int32(min(ev.Segments, math.MaxInt32))
		t.segments += int64(ev.Segments)
	}
	if ev.Status == "submitted" {
		if s.submitted {
			return
		}
		s.submitted = true
		if t0, err := strconv.ParseInt(ev.Meta[MetaT0], 10, 64); err == nil {
			us := max(ev.TS.UnixNano()-t0, 0) / int64(time.Microsecond)
			_ = t.hist.RecordValue(min(max(us, histMin), histMax))
			_ = t.recent.RecordValue(min(max(us, histMin), histMax))
		}
		if !t.receipts && s.outcome == 0 {
			t.finish(s, "submitted")
		}
		return
	}
	t.ids.addTerminal(s, key, ev.Status)
	t.terminal[ev.Status]++
	if ev.Status == "delivered" || ev.Status == "undelivered" {
		t.receiptsN++
	}
	if ev.Channel == "voice" && callOutcome(ev.Status) {
		byOutcome := t.calls[ev.From]
		if byOutcome == nil {
			byOutcome = map[string]int{}
			t.calls[ev.From] = byOutcome
		}
		byOutcome[ev.Status]++
	}
	switch t.ids.status(s.outcome) {
	case "":
		t.finish(s, ev.Status)
	case "submitted": // receipts not awaited, yet one came: it is the outcome
		t.outcomes["submitted"]--
		t.outcomes[ev.Status]++
		s.outcome = t.ids.code(ev.Status)
	default:
		t.extra++
		t.signal()
	}
}

// RecentP99 returns the p99 latency (produce → submit_sm_resp) of the requests
// submitted since the previous call, and how many there were, and starts a new interval:
// progress lines show when in a run the tail builds up.
func (t *Tally) RecentP99() (time.Duration, int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := t.recent.TotalCount()
	p := time.Duration(t.recent.ValueAtQuantile(99)) * time.Microsecond
	t.recent.Reset()
	return p, n
}

// signal wakes every waiter; t.mu is held.
func (t *Tally) signal() {
	close(t.wake)
	t.wake = make(chan struct{})
}

// callOutcome reports whether status is the outcome of a call attempt (rather than of a
// request that never became a call: rejected, suppressed, duplicate…).
func callOutcome(status string) bool {
	switch status {
	case "completed", "busy", "no_answer", "declined", "failed":
		return true
	}
	return false
}

func (t *Tally) finish(s *idState, outcome string) {
	s.outcome = t.ids.code(outcome)
	t.outcomes[outcome]++
	t.done++
	t.lastDone = time.Now()
	t.signal()
}

// TallySnapshot is a copy of a Tally's counters.
type TallySnapshot struct {
	Done     int            // requests done
	Outcomes map[string]int // done requests by outcome
	// TerminalEvents counts every terminal event by status (an id sent twice has two).
	TerminalEvents map[string]int
	Segments       int64 // segments of every request seen submitted
	Events         int64 // submitted and terminal events observed
	Receipts       int64 // delivered and undelivered events
	// ExtraTerminals counts terminal events beyond an id's first (a duplicate request
	// reuses its id, so the demo expects some; in a bench run it should be 0).
	ExtraTerminals int64
	Latency        Latency
	// LastDone is when the last request became done (zero if none).
	LastDone time.Time
	// Calls counts call outcomes (completed, busy, no_answer, declined, failed) per
	// caller number (event `from`).
	Calls map[string]map[string]int
}

// Snapshot returns a copy of the counters.
func (t *Tally) Snapshot() TallySnapshot {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := TallySnapshot{Done: t.done, Outcomes: make(map[string]int, len(t.outcomes)), Segments: t.segments,
		Events: t.events, Receipts: t.receiptsN, ExtraTerminals: t.extra, Latency: latencyOf(t.hist),
		LastDone: t.lastDone, Calls: make(map[string]map[string]int, len(t.calls)),
		TerminalEvents: maps.Clone(t.terminal)}
	for k, v := range t.outcomes {
		if v != 0 {
			s.Outcomes[k] = v
		}
	}
	for from, m := range t.calls {
		c := make(map[string]int, len(m))
		for k, v := range m {
			c[k] = v
		}
		s.Calls[from] = c
	}
	return s
}

// Terminals returns the terminal statuses seen for id, in arrival order.
func (t *Tally) Terminals(id string) []string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, key := t.ids.lookup(id, t.prefix); s != nil {
		return t.ids.terminals(s, key)
	}
	return nil
}

// Outcome returns what made id done ("" while it is not).
func (t *Tally) Outcome(id string) string {
	t.mu.Lock()
	defer t.mu.Unlock()
	if s, _ := t.ids.lookup(id, t.prefix); s != nil {
		return t.ids.status(s.outcome)
	}
	return ""
}

// WaitDone blocks until at least n requests are done, or ctx is done (its error is
// returned).
func (t *Tally) WaitDone(ctx context.Context, n int) error {
	return t.wait(ctx, func() bool { return t.done >= n })
}

// WaitTerminals blocks until at least n terminal events (an id's first terminal event
// and any beyond it) have been observed, or ctx is done (its error is returned).
func (t *Tally) WaitTerminals(ctx context.Context, n int) error {
	return t.wait(ctx, func() bool { return t.done+int(t.extra) >= n })
}

// wait blocks until cond (called with t.mu held) holds or ctx is done.
func (t *Tally) wait(ctx context.Context, cond func() bool) error {
	for {
		t.mu.Lock()
		ok, wake := cond(), t.wake
		t.mu.Unlock()
		if ok {
			return nil
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-wake:
		}
	}
}

// Latency are percentiles of produce → submit_sm_resp in milliseconds.
type Latency struct {
	Count int64   `json:"count"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
	Max   float64 `json:"max"`
	Mean  float64 `json:"mean"`
}

func latencyOf(h *hdrhistogram.Histogram) Latency {
	if h.TotalCount() == 0 {
		return Latency{}
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	return Latency{Count: h.TotalCount(), P50: ms(h.ValueAtQuantile(50)), P90: ms(h.ValueAtQuantile(90)),
		P99: ms(h.ValueAtQuantile(99)), Max: ms(h.Max()), Mean: h.Mean() / 1000}
}

// Consume reads topic (every partition, from the start) and calls observe with every
// submitted or terminal event until ctx is done; it then returns nil. An event that
// cannot be decoded is logged and skipped. It uses franz-go's consumer, which fetches
// every partition of a broker in one request: like the generator, it stands in for a
// system that would run elsewhere, and shares the measured process.
func Consume(ctx context.Context, brokers []string, topic string, observe func(Event), log *slog.Logger) error {
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(brokers...),
		kgo.ConsumeTopics(topic),
		kgo.ConsumeResetOffset(kgo.NewOffset().AtStart()),
		// The broker gathers events for up to FetchMaxWait instead of answering each
		// fetch with the few that arrived since the last one: at high rates, far fewer
		// fetches. Latency is measured from the event's ts, so it does not change; a
		// request's done time (the end of the run's duration) can be read up to
		// FetchMaxWait late.
		kgo.FetchMinBytes(64<<10),
		kgo.FetchMaxWait(50*time.Millisecond),
		kgo.FetchMaxBytes(16<<20),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return fmt.Errorf("bench: consume %s: %w", topic, err)
	}
	defer cl.Close()
	for {
		fs := cl.PollFetches(ctx)
		if ctx.Err() != nil {
			return nil
		}
		fs.EachError(func(t string, p int32, err error) {
			log.Warn("bench: fetch failed", "topic", t, "partition", p, "err", err)
		})
		fs.EachRecord(func(r *kgo.Record) {
			if uninteresting(r.Value) {
				return
			}
			ev, err := DecodeEvent(r.Value)
			if err != nil {
				log.Warn("bench: undecodable event", "partition", r.Partition, "offset", r.Offset, "err", err)
				return
			}
			observe(ev)
		})
	}
}
