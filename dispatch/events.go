package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// emitter batches events to the ledger (Ledger.Append, durable) and then to the event
// sink (the events topic), in emission order, and runs each event's continuation once
// both hold it. Two stages run concurrently so that a ledger write and a topic write of
// consecutive batches overlap; each stage is sequential, which keeps the order.
type emitter struct {
	ledger   Ledger
	sink     EventSink // nil: ledger only
	log      *slog.Logger
	m        *metrics
	batchMax int

	mu     sync.RWMutex
	closed bool
	in     chan pending
	out    chan batch
}

type pending struct {
	ev   Event
	then func() // after ev is durable; nil for none
}

type batch struct {
	events []Event
	thens  []func()
}

func newEmitter(ledger Ledger, sink EventSink, batchMax int, log *slog.Logger, m *metrics) *emitter {
	return &emitter{
		ledger: ledger, sink: sink, log: log, m: m, batchMax: batchMax,
		in:  make(chan pending, 4*batchMax),
		out: make(chan batch, 2),
	}
}

// emit queues ev; then runs once ev is durable. It blocks while the queue is full
// (back-pressure) and returns false, without queueing, once the emitter is closed: the
// caller's record then stays unacknowledged and is redelivered.
func (e *emitter) emit(ev Event, then func()) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		e.m.eventsDropped.Inc()
		return false
	}
	e.in <- pending{ev: ev, then: then}
	return true
}

// close stops accepting events; run then flushes what is queued and returns.
func (e *emitter) close() {
	e.mu.Lock()
	if !e.closed {
		e.closed = true
		close(e.in)
	}
	e.mu.Unlock()
}

// run drives both stages until close and the queue is flushed. ctx bounds retries: once
// it is done, a batch that cannot be written is logged, counted and its continuations
// are not run.
func (e *emitter) run(ctx context.Context) {
	var wg sync.WaitGroup
	wg.Go(func() { e.writeStage(ctx) })
	e.ledgerStage(ctx)
	wg.Wait()
}

func (e *emitter) ledgerStage(ctx context.Context) {
	defer close(e.out)
	for {
		first, ok := <-e.in
		if !ok {
			return
		}
		b := batch{events: make([]Event, 0, 64)}
		add := func(p pending) {
			b.events = append(b.events, p.ev)
			if p.then != nil {
				b.thens = append(b.thens, p.then)
			}
		}
		add(first)
	fill:
		for len(b.events) < e.batchMax {
			select {
			case p, ok := <-e.in:
				if !ok {
					break fill
				}
				add(p)
			default:
				break fill
			}
		}
		start := time.Now()
		if !retry(ctx, e.log, "ledger append", func() error { return e.ledger.Append(b.events) }, e.m.ledgerRetries.Inc) {
			e.m.eventWriteFailures.Add(float64(len(b.events)))
			continue
		}
		e.m.stage.WithLabelValues("ledger_append").Observe(time.Since(start).Seconds())
		e.out <- b
	}
}

func (e *emitter) writeStage(ctx context.Context) {
	for b := range e.out {
		if e.sink != nil {
			start := time.Now()
			if err := e.sink.WriteEvents(ctx, b.events); err != nil {
				e.log.Error("events not written to the events topic (kept in the ledger)", "events", len(b.events), "err", err)
				e.m.eventWriteFailures.Add(float64(len(b.events)))
				continue
			}
			e.m.stage.WithLabelValues("event_write").Observe(time.Since(start).Seconds())
		}
		for _, ev := range b.events {
			e.m.event(ev.Status)
		}
		for _, f := range b.thens {
			f()
		}
	}
}

// retry calls f until it succeeds or ctx is done, backing off from 5 ms to 1 s, and
// reports whether it succeeded. Every failure is logged (rate-limited by the backoff)
// and counted through onRetry.
func retry(ctx context.Context, log *slog.Logger, what string, f func() error, onRetry func()) bool {
	backoff := 5 * time.Millisecond
	for {
		err := f()
		if err == nil {
			return true
		}
		onRetry()
		log.Warn(what+" failed; retrying", "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
			log.Error(what+" abandoned", "err", err)
			return false
		case <-t.C:
		}
		backoff = min(2*backoff, time.Second)
	}
}
