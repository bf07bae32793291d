package kafka

import (
	"context"
	"errors"
	"io"
	"strconv"
	"sync"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/sendcore/sendcore/dispatch"
)

// Source is the requests consumer: a kafka-go consumer group reading with FetchMessage,
// committing per partition only the highest offset below which every record is
// finished, in batches every Config.CommitInterval. At most Config.MaxInFlight records
// are fetched and unfinished at once; beyond that it stops fetching. It implements
// dispatch.Source.
type Source struct {
	c *Client
}

// Source returns the requests consumer of the client's group.
func (c *Client) Source() *Source { return &Source{c: c} }

var _ dispatch.Source = (*Source)(nil)

// Run implements dispatch.Source. It returns nil after a shutdown through ctx, or the
// fetch error that stopped it.
func (s *Source) Run(ctx context.Context, deliver func(dispatch.Record), drained <-chan struct{}) error {
	cfg, m := s.c.cfg, s.c.m
	r := kgo.NewReader(kgo.ReaderConfig{
		Brokers:         s.c.brokers,
		GroupID:         cfg.Group,
		Topic:           cfg.RequestsTopic,
		QueueCapacity:   cfg.QueueCapacity,
		MinBytes:        cfg.MinBytes,
		MaxBytes:        cfg.MaxBytes,
		MaxWait:         cfg.MaxWait,
		ReadBackoffMin:  10 * time.Millisecond,
		ReadBackoffMax:  100 * time.Millisecond,
		StartOffset:     kgo.FirstOffset,
		ReadLagInterval: -1,
		ErrorLogger:     kgo.LoggerFunc(func(f string, a ...any) { s.c.log.Debug("kafka-go reader", "msg", fmtLog(f, a...)) }),
	})
	tr := newTracker()
	sem := make(chan struct{}, cfg.MaxInFlight)
	stopCommit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() { s.commitLoop(r, tr, stopCommit) })

	topic := cfg.RequestsTopic
	var runErr error
	lagLabels := map[int]string{}
fetch:
	for ctx.Err() == nil {
		select {
		case sem <- struct{}{}:
		case <-ctx.Done():
			break fetch
		}
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			<-sem
			if ctx.Err() != nil {
				break
			}
			if errors.Is(err, io.EOF) {
				runErr = err
				break
			}
			m.fetchErrors.Inc()
			s.c.log.Warn("fetch failed", "err", err)
			continue
		}
		m.fetched.Inc()
		lbl, ok := lagLabels[msg.Partition]
		if !ok {
			lbl = strconv.Itoa(msg.Partition)
			lagLabels[msg.Partition] = lbl
		}
		if msg.HighWaterMark > 0 {
			m.lag.WithLabelValues(lbl).Set(float64(msg.HighWaterMark - msg.Offset - 1))
		}
		part, off := msg.Partition, msg.Offset
		var ack func()
		switch tr.add(part, off) {
		case addDuplicate:
			<-sem
			m.refetched.WithLabelValues("duplicate").Inc()
			continue
		case addRewound:
			m.refetched.WithLabelValues("rewound").Inc()
			var once sync.Once
			ack = func() { once.Do(func() { <-sem }) }
		default:
			var once sync.Once
			ack = func() {
				once.Do(func() {
					tr.done(part, off)
					<-sem
				})
			}
		}
		m.inflight.Set(float64(len(sem)))
		deliver(dispatch.Record{
			Key:    msg.Key,
			Value:  msg.Value,
			Source: topic + "/" + lbl + "/" + strconv.FormatInt(off, 10),
			Time:   msg.Time,
			Ack:    ack,
		})
	}
	// Stopped fetching: keep committing until the pipeline acknowledged what it will.
	<-drained
	close(stopCommit)
	wg.Wait()
	if err := r.Close(); err != nil && runErr == nil {
		s.c.log.Debug("reader close", "err", err)
	}
	return runErr
}

// commitLoop commits finished offsets every CommitInterval, and once more on stop.
func (s *Source) commitLoop(r *kgo.Reader, tr *tracker, stop <-chan struct{}) {
	t := time.NewTicker(s.c.cfg.CommitInterval)
	defer t.Stop()
	for {
		select {
		case <-stop:
			s.commit(r, tr)
			return
		case <-t.C:
			s.commit(r, tr)
		}
	}
}

func (s *Source) commit(r *kgo.Reader, tr *tracker) {
	offs := tr.commits()
	if len(offs) == 0 {
		return
	}
	msgs := make([]kgo.Message, 0, len(offs))
	for p, next := range offs {
		// kafka-go commits a message's offset + 1.
		msgs = append(msgs, kgo.Message{Topic: s.c.cfg.RequestsTopic, Partition: p, Offset: next - 1})
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := r.CommitMessages(ctx, msgs...); err != nil {
		s.c.m.commitErrors.Inc()
		s.c.log.Warn("offset commit failed; retrying at the next interval", "err", err)
		tr.redirty(offs)
		return
	}
	s.c.m.commits.Inc()
}
