package dispatch

import (
	"context"
	"log/slog"
	"sync"
	"time"
)

// emitter batches events to the ledger (Ledger.AppendSeqs: history and outbox in one
// durable write) and then publishes them to the event sink (the events topic), in
// emission order. Each event's continuation runs as soon as its batch is durable in the
// ledger: from then on the outbox guarantees the publication, also across a crash, so
// the topic write is off the acknowledgement path. After the sink acknowledged a batch
// its outbox entries are removed (Ledger.Published, batched). On start, before appending
// anything, the ledger stage re-publishes what an earlier run left in the outbox, with
// the bytes of the first attempt. Two stages run concurrently so that a ledger write and
// a topic write of consecutive batches overlap; each stage is sequential, which keeps
// the order. Nothing else may append to the ledger before recovered is closed (the
// pipeline starts its workers, which write accepted events with ClaimAccepted, after
// it): the recovery walk relies on every outbox entry it sees being from an earlier run.
// Events already durable (emitDurable) pass the ledger stage without a write, in order.
type emitter struct {
	ledger    Ledger
	encLedger EncodingLedger // ledger, when it returns the JSON it stores; else nil
	sink      EventSink      // nil: ledger only
	log       *slog.Logger
	m         *metrics
	batchMax  int

	mu        sync.RWMutex
	closed    bool
	in        chan pending
	out       chan batch
	dead      chan struct{} // closed when run has returned
	recovered chan struct{} // closed when the outbox of an earlier run has been handed on
}

type pending struct {
	ev   Event
	then func() // after ev is durable in the ledger; nil for none
	seq  uint64 // ev's outbox seq when it is durable already (ClaimAccepted); 0: to append
	raw  []byte // ev's JSON as the ledger stored it, when known
}

type batch struct {
	events []Event
	seqs   []uint64 // outbox sequence number of events[i]
	raws   [][]byte // events[i]'s JSON as the ledger stored it; nil: not known (encode)
	thens  []func()
}

// publishedFlush bounds how many published outbox entries wait for removal, and the
// events of one write to a synchronous sink.
const publishedFlush = 8192

// outBatches bounds the durable batches waiting for the write stage: beyond them the
// ledger stage waits for the events topic (memory bound; the outbox has them anyway).
const outBatches = 256

func newEmitter(ledger Ledger, sink EventSink, batchMax int, log *slog.Logger, m *metrics) *emitter {
	enc, _ := ledger.(EncodingLedger)
	return &emitter{
		ledger: ledger, encLedger: enc, sink: sink, log: log, m: m, batchMax: batchMax,
		in:        make(chan pending, 4*batchMax),
		out:       make(chan batch, outBatches),
		dead:      make(chan struct{}),
		recovered: make(chan struct{}),
	}
}

// emit queues ev; then runs once ev is durable in the ledger (and so in the outbox). It
// blocks while the queue is full (back-pressure) and returns false, without queueing,
// once the emitter is closed: the caller's record then stays unacknowledged and is
// redelivered.
func (e *emitter) emit(ev Event, then func()) bool { return e.queue(pending{ev: ev, then: then}) }

// emitDurable queues ev, which is durable in the ledger already with outbox seq (written
// by Ledger.ClaimAccepted, which stored raw when known), for the events topic, in emission
// order with the others. It returns false once the emitter is closed (the outbox still
// has ev).
func (e *emitter) emitDurable(ev Event, seq uint64, raw []byte) bool {
	return e.queue(pending{ev: ev, seq: seq, raw: raw})
}

func (e *emitter) queue(p pending) bool {
	e.mu.RLock()
	defer e.mu.RUnlock()
	if e.closed {
		e.m.eventsDropped.Inc()
		return false
	}
	e.in <- p
	return true
}

// emitWait emits ev and waits until it is durable in the ledger. It returns false when
// it is not (the emitter closed or stopped before).
func (e *emitter) emitWait(ev Event) bool {
	done := make(chan struct{})
	if !e.emit(ev, func() { close(done) }) {
		return false
	}
	select {
	case <-done:
		return true
	case <-e.dead:
		select {
		case <-done:
			return true
		default:
			return false
		}
	}
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
// it is done, a batch that cannot be appended is logged, counted and its continuations
// are not run; one that cannot be published stays in the outbox for the next run.
func (e *emitter) run(ctx context.Context) {
	defer close(e.dead)
	var wg sync.WaitGroup
	wg.Go(func() { e.writeStage(ctx) })
	e.ledgerStage(ctx)
	wg.Wait()
}

// recover hands what an earlier run left in the outbox to the write stage, in batches.
func (e *emitter) recover(ctx context.Context) {
	var b batch
	n := 0
	flush := func() {
		if len(b.events) > 0 {
			e.out <- b
			b = batch{}
		}
	}
	var after uint64
	ok := retry(ctx, e.log, "outbox read", func() error {
		return e.ledger.Outbox(after, func(seq uint64, ev Event) error {
			b.events = append(b.events, ev)
			b.seqs = append(b.seqs, seq)
			after = seq
			n++
			if len(b.events) >= e.batchMax {
				flush()
			}
			return nil
		})
	}, e.m.ledgerRetries.Inc)
	flush()
	if !ok {
		e.log.Error("outbox not fully re-published (the rest goes out at the next start)", "republished", n)
		return
	}
	e.m.republished.Add(float64(n))
	if n > 0 {
		e.log.Info("re-publishing events left in the outbox by an earlier run", "events", n)
	}
}

func (e *emitter) ledgerStage(ctx context.Context) {
	defer close(e.out)
	e.recover(ctx)
	close(e.recovered)
	var toAppend []Event
	var at []int
	for {
		first, ok := <-e.in
		if !ok {
			return
		}
		// Sized for what is queued: growing a slice of Events (a few hundred bytes each)
		// by doubling was the emitter's largest allocation.
		n := min(len(e.in)+1, e.batchMax)
		b := batch{events: make([]Event, 0, n), seqs: make([]uint64, 0, n), raws: make([][]byte, 0, n)}
		add := func(p pending) {
			b.events = append(b.events, p.ev)
			b.seqs = append(b.seqs, p.seq)
			b.raws = append(b.raws, p.raw)
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
		// Append what is not durable yet (events of ClaimAccepted are), in order.
		toAppend, at = toAppend[:0], at[:0]
		for i := range b.events {
			if b.seqs[i] == 0 {
				toAppend, at = append(toAppend, b.events[i]), append(at, i)
			}
		}
		if len(toAppend) > 0 {
			start := time.Now()
			var seqs []uint64
			var raws [][]byte
			appendSeqs := func() (err error) {
				if e.encLedger != nil {
					seqs, raws, err = e.encLedger.AppendSeqsJSON(toAppend)
					return err
				}
				seqs, err = e.ledger.AppendSeqs(toAppend)
				return err
			}
			if !retry(ctx, e.log, "ledger append", appendSeqs, e.m.ledgerRetries.Inc) {
				e.m.eventWriteFailures.Add(float64(len(toAppend)))
				continue
			}
			e.m.observeStage("ledger_append", time.Since(start).Seconds())
			for k, i := range at {
				b.seqs[i] = seqs[k]
				if raws != nil {
					b.raws[i] = raws[k]
				}
			}
			clear(toAppend) // drop references to the events' maps
		}
		for _, f := range b.thens {
			f()
		}
		b.thens = nil
		// Only what the ledger added goes out (a second terminal event is not added).
		k := 0
		for i := range b.events {
			if b.seqs[i] == 0 {
				e.m.eventsSuperseded.Inc()
				continue
			}
			e.m.event(b.events[i].Status)
			b.events[k], b.seqs[k], b.raws[k] = b.events[i], b.seqs[i], b.raws[i]
			k++
		}
		b.events, b.seqs, b.raws = b.events[:k], b.seqs[:k], b.raws[:k]
		if k > 0 {
			e.out <- b
		}
	}
}

// writeStage publishes the batches of the ledger stage in order: with an AsyncEventSink
// up to maxAsyncBatches at once, else one at a time. The outbox entries of what the sink
// acknowledged are removed in batches by a collector. When ctx ends first, what is not
// acknowledged stays in the outbox for the next start.
func (e *emitter) writeStage(ctx context.Context) {
	acked := make(chan []uint64, 256)
	stop := make(chan struct{})
	collected := make(chan struct{})
	go func() { defer close(collected); e.collect(acked, stop) }()
	ack := func(seqs []uint64) {
		select {
		case acked <- seqs:
		case <-stop:
		}
	}
	async, _ := e.sink.(AsyncEventSink)
	encoded, _ := e.sink.(EncodedEventSink)
	sem := make(chan struct{}, maxAsyncBatches)
	var inflight sync.WaitGroup
	for b := range e.out {
		switch {
		case e.sink == nil:
			ack(b.seqs)
		case async != nil:
			select {
			case sem <- struct{}{}:
			case <-ctx.Done():
				continue // left in the outbox
			}
			inflight.Add(1)
			start, seqs, n := time.Now(), b.seqs, len(b.events)
			done := func(err error) {
				defer inflight.Done()
				<-sem
				if err != nil {
					e.log.Error("events not written to the events topic (kept in the outbox for the next start)", "events", n, "err", err)
					e.m.eventWriteFailures.Add(float64(n))
					return
				}
				e.m.observeStage("event_write", time.Since(start).Seconds())
				ack(seqs)
			}
			var err error
			if encoded != nil {
				err = encoded.WriteEncodedAsync(b.events, b.raws, done) // nil raws: it encodes
			} else {
				err = async.WriteEventsAsync(b.events, done)
			}
			if err != nil {
				<-sem
				inflight.Done()
				e.log.Error("events not queued for the events topic (kept in the outbox for the next start)", "events", n, "err", err)
				e.m.eventWriteFailures.Add(float64(n))
			}
		default:
			// Synchronous sink: one write for whatever is queued, up to publishedFlush.
		more:
			for len(b.events) < publishedFlush {
				select {
				case nb, ok := <-e.out:
					if !ok {
						break more
					}
					b.events, b.seqs, b.raws = append(b.events, nb.events...), append(b.seqs, nb.seqs...), nil
				default:
					break more
				}
			}
			start := time.Now()
			if err := e.sink.WriteEvents(ctx, b.events); err != nil {
				e.log.Error("events not written to the events topic (kept in the outbox for the next start)", "events", len(b.events), "err", err)
				e.m.eventWriteFailures.Add(float64(len(b.events)))
				continue
			}
			e.m.observeStage("event_write", time.Since(start).Seconds())
			ack(b.seqs)
		}
	}
	waited := make(chan struct{})
	go func() { inflight.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-ctx.Done():
	}
	close(stop)
	<-collected
}

// maxAsyncBatches bounds the event batches in flight to an AsyncEventSink.
const maxAsyncBatches = 64

// collect removes the outbox entries of acknowledged events, in batches, until stop;
// then it removes what it has and returns.
func (e *emitter) collect(acked <-chan []uint64, stop <-chan struct{}) {
	var done []uint64
	published := func() {
		if len(done) == 0 {
			return
		}
		if err := e.ledger.Published(done); err != nil {
			// Harmless: they are published again (identically) at the next start.
			e.m.storeErrors.WithLabelValues("outbox_published").Inc()
			e.log.Warn("outbox entries not removed after publication", "events", len(done), "err", err)
		}
		done = done[:0]
	}
	for {
		select {
		case seqs := <-acked:
			done = append(done, seqs...)
			if len(done) >= publishedFlush || len(acked) == 0 {
				published()
			}
		case <-stop:
			for {
				select {
				case seqs := <-acked:
					done = append(done, seqs...)
				default:
					published()
					return
				}
			}
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
