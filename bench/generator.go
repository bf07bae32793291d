package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/semaphore"
)

// ErrProduce reports that some requests could not be written to the requests topic.
var ErrProduce = errors.New("bench: produce failed")

// Generator produces a Traffic to the requests topic with kafka-go: an asynchronous,
// batched Writer that waits for every in-sync replica (RequireAll), keyed by recipient.
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

// batchSize is the writer's records per partition batch. kafka-go allocates that many
// messages for every batch it opens, however few it fills: at a target rate batches stay
// small, so a small size spares the measured process that allocation; flat out, large
// batches mean fewer produce requests.
func (g *Generator) batchSize() int {
	if g.t.Rate > 0 {
		return 64
	}
	return 1000
}

// Run produces the traffic and returns once every request is acknowledged or failed. It
// returns ctx's error when cancelled, and an error wrapping ErrProduce when some requests
// could not be written (Stats says how many).
func (g *Generator) Run(ctx context.Context) error {
	sem := semaphore.NewWeighted(int64(g.inflight))
	w := &kafka.Writer{
		Addr:         kafka.TCP(g.brokers...),
		Topic:        g.topic,
		Balancer:     &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll,
		Async:        true,
		BatchSize:    g.batchSize(),
		BatchBytes:   4 << 20,
		BatchTimeout: 2 * time.Millisecond,
		WriteTimeout: 10 * time.Second,
		MaxAttempts:  5,
		Completion: func(msgs []kafka.Message, err error) {
			if err != nil {
				g.failed.Add(int64(len(msgs)))
				g.mu.Lock()
				if g.firstErr == nil {
					g.firstErr = err
				}
				g.mu.Unlock()
			} else {
				g.acked.Add(int64(len(msgs)))
				for _, m := range msgs {
					for _, h := range m.Headers {
						if h.Key == MetaKind {
							g.kinds[kindIndex(string(h.Value))].Add(1)
						}
					}
				}
			}
			sem.Release(int64(len(msgs)))
		},
	}
	start := time.Now()
	g.mu.Lock()
	g.start = start
	g.mu.Unlock()
	err := g.produce(ctx, w, sem, start)
	if cerr := w.Close(); cerr != nil && err == nil { // flushes and waits for completions
		err = cerr
	}
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

const genBatch = 500

func (g *Generator) produce(ctx context.Context, w *kafka.Writer, sem *semaphore.Weighted, start time.Time) error {
	b := newBuilder(g.t)
	total := g.t.Requests
	var deadline time.Time
	if g.t.Duration > 0 {
		deadline = start.Add(g.t.Duration)
	}
	msgs := make([]kafka.Message, 0, genBatch)
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
		msgs = msgs[:0]
		for i := range count {
			t0 := now
			if g.t.Rate > 0 {
				t0 = start.Add(time.Duration(float64(n+i) / g.t.Rate * float64(time.Second)))
			}
			key, value, kind := b.build(n+i, t0)
			msgs = append(msgs, kafka.Message{Key: key, Value: value,
				Headers: []kafka.Header{{Key: MetaKind, Value: []byte(kind)}}})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			sem.Release(int64(count))
			return fmt.Errorf("%w: %w", ErrProduce, err)
		}
		n += count
		g.produced.Add(int64(count))
	}
	return nil
}
