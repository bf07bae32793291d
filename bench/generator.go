package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/twmb/franz-go/pkg/kgo"
	"golang.org/x/sync/semaphore"
)

// ErrProduce reports that some requests could not be written to the requests topic.
var ErrProduce = errors.New("bench: produce failed")

// Generator produces a Traffic to the requests topic, keyed by recipient, waiting for
// every in-sync replica. It stands in for the upstream applications, which in production
// run elsewhere; here it shares the measured process, so it uses franz-go's producer,
// which sends the records of every partition of a broker in one produce request. With
// kafka-go's Writer (one request per partition batch) the generator alone cost the
// process 22% of its CPU at 15k requests/s over 8 partitions (BENCHMARKS.md). Records
// are partitioned as kafka-go's Murmur2Balancer and Java clients do (murmur2 of the key).
// It is open loop: with a Rate, request n is due at start + n/Rate whatever the pipeline
// does, and its t0 is that due time (so a generator that falls behind does not hide
// latency); without one, it produces as fast as the broker acknowledges, with at most
// MaxInFlight requests unacknowledged.
type Generator struct {
	t        Traffic
	brokers  []string
	topic    string
	log      *slog.Logger
	inflight int

	produced atomic.Int64 // handed to the writer
	acked    atomic.Int64 // acknowledged by the broker
	failed   atomic.Int64
	kinds    [4]atomic.Int64 // acked per kind, in kindIndex order

	mu       sync.Mutex
	firstErr error
	start    time.Time
	end      time.Time
}

// MaxInFlight is the default bound on produced and not yet acknowledged requests.
const MaxInFlight = 20000

// NewGenerator validates t and returns a Generator for topic on brokers. Nothing is
// produced until Run.
func NewGenerator(brokers []string, topic string, t Traffic, log *slog.Logger) (*Generator, error) {
	if err := t.Validate(); err != nil {
		return nil, err
	}
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%w: brokers: must not be empty", ErrInvalid)
	}
	if topic == "" {
		return nil, fmt.Errorf("%w: requests topic: must not be empty", ErrInvalid)
	}
	return &Generator{t: t, brokers: brokers, topic: topic, log: log, inflight: MaxInFlight}, nil
}

func kindIndex(k string) int {
	switch k {
	case KindGSMMulti:
		return 1
	case KindUCS2:
		return 2
	case KindVoice:
		return 3
	}
	return 0
}

// GenStats are a Generator's counters.
type GenStats struct {
	Produced int64 `json:"produced"` // handed to the writer
	Acked    int64 `json:"acked"`    // acknowledged by the broker: what the pipeline gets
	Failed   int64 `json:"failed"`   // not written
	// ByKind counts acknowledged requests per kind (KindGSM…).
	ByKind map[string]int64 `json:"by_kind"`
	// Start and End bound the production (End is zero while running).
	Start time.Time `json:"start"`
	End   time.Time `json:"end"`
}

// Stats returns the counters so far; safe to call while Run runs.
func (g *Generator) Stats() GenStats {
	g.mu.Lock()
	s := GenStats{Start: g.start, End: g.end}
	g.mu.Unlock()
	s.Produced, s.Acked, s.Failed = g.produced.Load(), g.acked.Load(), g.failed.Load()
	s.ByKind = map[string]int64{}
	for i, k := range []string{KindGSM, KindGSMMulti, KindUCS2, KindVoice} {
		if n := g.kinds[i].Load(); n > 0 {
			s.ByKind[k] = n
		}
	}
	return s
}

// Run produces the traffic and returns once every request is acknowledged or failed. It
// returns ctx's error when cancelled, and an error wrapping ErrProduce when some requests
// could not be written (Stats says how many).
func (g *Generator) Run(ctx context.Context) error {
	sem := semaphore.NewWeighted(int64(g.inflight))
	cl, err := kgo.NewClient(
		kgo.SeedBrokers(g.brokers...),
		kgo.DefaultProduceTopic(g.topic),
		kgo.RequiredAcks(kgo.AllISRAcks()),
		kgo.RecordPartitioner(kgo.StickyKeyPartitioner(nil)),
		// Requests are due in steps of about 1 ms: linger no longer than a step, so the
		// wait adds little to the measured latency (it is counted: t0 is the due time).
		kgo.ProducerLinger(time.Millisecond),
		kgo.MaxBufferedRecords(g.inflight+genBatch),
		kgo.ProducerBatchMaxBytes(4<<20),
		kgo.ProduceRequestTimeout(10*time.Second),
		kgo.RecordRetries(5),
		kgo.AllowAutoTopicCreation(),
	)
	if err != nil {
		return fmt.Errorf("%w: %w", ErrProduce, err)
	}
	start := time.Now()
	g.mu.Lock()
	g.start = start
	g.mu.Unlock()
	err = g.produce(ctx, cl, sem, start)
	if ferr := cl.Flush(context.WithoutCancel(ctx)); ferr != nil && err == nil { // waits for every completion
		err = ferr
	}
	cl.Close()
	g.mu.Lock()
	g.end = time.Now()
	first := g.firstErr
	g.mu.Unlock()
	if err != nil {
		return err
	}
	if n := g.failed.Load(); n > 0 {
		return fmt.Errorf("%w: %d requests not written: %v", ErrProduce, n, first)
	}
	return nil
}

// done is the completion of one produced record.
func (g *Generator) done(r *kgo.Record, err error, sem *semaphore.Weighted) {
	if err != nil {
		g.failed.Add(1)
		g.mu.Lock()
		if g.firstErr == nil {
			g.firstErr = err
		}
		g.mu.Unlock()
	} else {
		g.acked.Add(1)
		for _, h := range r.Headers {
			if h.Key == MetaKind {
				g.kinds[kindIndex(string(h.Value))].Add(1)
			}
		}
	}
	sem.Release(1)
}

const genBatch = 500

func (g *Generator) produce(ctx context.Context, cl *kgo.Client, sem *semaphore.Weighted, start time.Time) error {
	b := newBuilder(g.t)
	total := g.t.Requests
	var deadline time.Time
	if g.t.Duration > 0 {
		deadline = start.Add(g.t.Duration)
	}
	promise := func(r *kgo.Record, err error) { g.done(r, err, sem) }
	timer := time.NewTimer(0)
	defer timer.Stop()
	n := 0
	for total == 0 || n < total {
		now := time.Now()
		if !deadline.IsZero() && !now.Before(deadline) {
			break
		}
		count := genBatch
		if g.t.Rate > 0 {
			// Produce in steps of about 1 ms of traffic, not one request per wake-up:
			// per-request timers and one-message writes cost the measured process
			// ~10% of its CPU at 15k/s. Each request keeps its own due time as t0, so
			// the wait for its step is counted in its latency.
			step := max(1, int(g.t.Rate/1000))
			if total > 0 {
				step = min(step, total-n)
			}
			due := int(now.Sub(start).Seconds()*g.t.Rate) + 1
			if due < n+step { // ahead of schedule: wait for the step's last due time
				at := start.Add(time.Duration(float64(n+step-1) / g.t.Rate * float64(time.Second)))
				timer.Reset(time.Until(at))
				select {
				case <-ctx.Done():
					return ctx.Err()
				case <-timer.C:
				}
				continue
			}
			count = min(due-n, genBatch)
		}
		if total > 0 {
			count = min(count, total-n)
		}
		if err := sem.Acquire(ctx, int64(count)); err != nil {
			return err
		}
		for i := range count {
			t0 := now
			if g.t.Rate > 0 {
				t0 = start.Add(time.Duration(float64(n+i) / g.t.Rate * float64(time.Second)))
			}
			key, value, kind := b.build(n+i, t0)
			cl.Produce(ctx, &kgo.Record{Key: key, Value: value,
				Headers: []kgo.RecordHeader{{Key: MetaKind, Value: []byte(kind)}}}, promise)
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		n += count
		g.produced.Add(int64(count))
	}
	return nil
}
