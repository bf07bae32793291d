package kafka

import (
	"context"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync"
	"time"

	kgo "github.com/segmentio/kafka-go"
	"github.com/segmentio/kafka-go/protocol"
	fetchapi "github.com/segmentio/kafka-go/protocol/fetch"

	"github.com/sendcore/sendcore/dispatch"
)

// Source is the requests consumer. It is a member of the consumer group through
// kafka-go's ConsumerGroup (join, sync, heartbeats, offset commits), and fetches every
// partition assigned to it with one fetch request per leader broker, built with kafka-go's
// protocol layer. kafka-go's Reader, which it replaces, runs a fetch loop and a connection
// per partition: at 15k requests/s over 8 partitions those loops, and the broker's
// answers to their small fetches, cost the process 17% of its CPU (BENCHMARKS.md).
//
// It commits per partition only the highest offset below which every record is
// finished, in batches every Config.CommitInterval. At most Config.MaxInFlight records are
// fetched and unfinished at once; beyond that it stops fetching. It implements
// dispatch.Source.
type Source struct {
	c *Client
}

// Source returns the requests consumer of the client's group.
func (c *Client) Source() *Source { return &Source{c: c} }

var _ dispatch.Source = (*Source)(nil)

// Run implements dispatch.Source. It returns nil after a shutdown through ctx, or the
// error that keeps it from joining the group at all.
func (s *Source) Run(ctx context.Context, deliver func(dispatch.Record), drained <-chan struct{}) error {
	cfg := s.c.cfg
	logf := kgo.LoggerFunc(func(f string, a ...any) { s.c.log.Debug("kafka-go consumer group", "msg", fmtLog(f, a...)) })
	cg, err := kgo.NewConsumerGroup(kgo.ConsumerGroupConfig{
		ID: cfg.Group, Brokers: s.c.brokers, Topics: []string{cfg.RequestsTopic},
		StartOffset: kgo.FirstOffset, Logger: logf, ErrorLogger: logf,
	})
	if err != nil {
		return fmt.Errorf("kafka: consumer group %s: %w", cfg.Group, err)
	}
	tp := &kgo.Transport{ClientID: "sendcore"}
	defer tp.CloseIdleConnections()
	f := &fetcher{s: s, tr: newTracker(), sem: make(chan struct{}, cfg.MaxInFlight), deliver: deliver,
		cl: &kgo.Client{Addr: kgo.TCP(s.c.brokers...), Transport: tp, Timeout: 10 * time.Second}}

	stopCommit := make(chan struct{})
	var gens sync.WaitGroup
	for ctx.Err() == nil {
		gen, err := cg.Next(ctx)
		if err != nil {
			if ctx.Err() != nil {
				break
			}
			// kafka-go reports each failed join once and backs off before the next.
			s.c.m.fetchErrors.Inc()
			s.c.log.Warn("consumer group join failed; retrying", "err", err)
			continue
		}
		parts := gen.Assignments[cfg.RequestsTopic]
		s.c.log.Info("requests partitions assigned", "generation", gen.ID, "partitions", len(parts))
		gens.Add(1)
		gen.Start(func(gctx context.Context) {
			defer gens.Done()
			f.generation(ctx, gctx, gen, parts, stopCommit)
		})
	}
	// Stopped fetching: keep committing until the pipeline acknowledged what it will.
	<-drained
	close(stopCommit)
	gens.Wait()
	if err := cg.Close(); err != nil {
		s.c.log.Debug("consumer group close", "err", err)
	}
	return nil
}

// fetcher is the state of one Source.Run shared across generations.
type fetcher struct {
	s       *Source
	cl      *kgo.Client
	tr      *tracker
	sem     chan struct{} // a slot per record fetched and not finished
	deliver func(dispatch.Record)
}

// generation fetches parts until the generation ends (a rebalance) or the gateway shuts
// down, and commits every CommitInterval. At shutdown it stops fetching and keeps
// committing until stopCommit, so that what the pipeline finishes meanwhile is committed.
func (f *fetcher) generation(ctx, gctx context.Context, gen *kgo.Generation, parts []kgo.PartitionAssignment, stopCommit <-chan struct{}) {
	fctx, cancel := context.WithCancel(gctx)
	defer cancel()
	stop := context.AfterFunc(ctx, cancel)
	defer stop()
	var fetching sync.WaitGroup
	fetching.Go(func() { f.fetchAll(fctx, parts) })

	own := map[int]bool{}
	for _, p := range parts {
		own[p.ID] = true
	}
	t := time.NewTicker(f.s.c.cfg.CommitInterval)
	defer t.Stop()
	for done := false; !done; {
		select {
		case <-gctx.Done():
			done = true
		case <-stopCommit:
			done = true
		case <-t.C:
		}
		f.commit(gen, own)
	}
	cancel()
	fetching.Wait()
}

// commit commits the finished offsets of the partitions this generation owns (a
// partition revoked meanwhile is its new owner's to commit).
func (f *fetcher) commit(gen *kgo.Generation, own map[int]bool) {
	offs := f.tr.commits()
	for p := range offs {
		if !own[p] {
			delete(offs, p)
		}
	}
	if len(offs) == 0 {
		return
	}
	if err := gen.CommitOffsets(map[string]map[int]int64{f.s.c.cfg.RequestsTopic: offs}); err != nil {
		f.s.c.m.commitErrors.Inc()
		f.s.c.log.Warn("offset commit failed; retrying at the next interval", "err", err)
		f.tr.redirty(offs)
		return
	}
	f.s.c.m.commits.Inc()
}

// errReplan ends a fetch loop whose partitions' leadership changed.
var errReplan = errors.New("kafka: partition leadership changed")

// partState is the fetch position of one assigned partition.
type partState struct {
	id   int
	lbl  string // id in decimal: the metrics label and the records' source
	next int64  // next offset to fetch; < 0: to resolve (kgo.FirstOffset)
}

// fetchAll fetches parts until ctx ends: one loop per leader broker, each sending one
// fetch request for all of its partitions. When a leader changes it plans again.
func (f *fetcher) fetchAll(ctx context.Context, parts []kgo.PartitionAssignment) {
	states := make([]*partState, len(parts))
	for i, p := range parts {
		states[i] = &partState{id: p.ID, lbl: strconv.Itoa(p.ID), next: p.Offset}
	}
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil && len(states) > 0 {
		groups, err := f.plan(ctx, states)
		if err == nil {
			var loops sync.WaitGroup
			lctx, cancel := context.WithCancel(ctx)
			for _, g := range groups {
				loops.Go(func() {
					if err := f.fetchLoop(lctx, g); err != nil {
						cancel() // plan again, for every group
					}
				})
			}
			loops.Wait()
			cancel()
			if ctx.Err() != nil {
				return
			}
		}
		if err != nil {
			f.s.c.m.fetchErrors.Inc()
			f.s.c.log.Warn("fetch planning failed; retrying", "err", err, "backoff", backoff)
		}
		if !sleepCtx(ctx, backoff) {
			return
		}
		backoff = min(2*backoff, time.Second)
	}
}

// plan resolves offsets not known yet (a partition without a committed offset starts at
// its first) and groups the partitions by leader broker.
func (f *fetcher) plan(ctx context.Context, states []*partState) ([][]*partState, error) {
	topic := f.s.c.cfg.RequestsTopic
	var resolve []kgo.OffsetRequest
	for _, st := range states {
		if st.next < 0 {
			resolve = append(resolve, kgo.FirstOffsetOf(st.id))
		}
	}
	if len(resolve) > 0 {
		res, err := f.cl.ListOffsets(ctx, &kgo.ListOffsetsRequest{Topics: map[string][]kgo.OffsetRequest{topic: resolve}})
		if err != nil {
			return nil, fmt.Errorf("first offsets: %w", err)
		}
		first := map[int]int64{}
		for _, po := range res.Topics[topic] {
			if po.Error != nil {
				return nil, fmt.Errorf("first offset of partition %d: %w", po.Partition, po.Error)
			}
			first[po.Partition] = po.FirstOffset
		}
		for _, st := range states {
			if st.next < 0 {
				off, ok := first[st.id]
				if !ok {
					return nil, fmt.Errorf("first offset of partition %d: not in the answer", st.id)
				}
				st.next = off
			}
		}
	}
	md, err := f.cl.Metadata(ctx, &kgo.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata: %w", err)
	}
	leader := map[int]int{}
	for _, t := range md.Topics {
		if t.Name != topic {
			continue
		}
		if t.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, t.Error)
		}
		for _, p := range t.Partitions {
			leader[p.ID] = p.Leader.ID
		}
	}
	byLeader := map[int][]*partState{}
	for _, st := range states {
		l, ok := leader[st.id]
		if !ok {
			return nil, fmt.Errorf("metadata of %s: no partition %d", topic, st.id)
		}
		byLeader[l] = append(byLeader[l], st)
	}
	groups := make([][]*partState, 0, len(byLeader))
	for _, g := range byLeader {
		groups = append(groups, g)
	}
	return groups, nil
}

// fetched is one record decoded from a fetch answer, not delivered yet.
type fetched struct {
	part       int
	lbl        string
	off        int64
	at         time.Time
	key, value []byte
}

// fetchLoop fetches the partitions of one leader until ctx ends (nil) or their
// leadership changes (errReplan); other errors are retried with backoff. The next fetch
// is in flight while the records of the last one are delivered (as kafka-go's Reader
// prefetches): one answer waits decoded at most, so memory stays within a few MaxBytes.
func (f *fetcher) fetchLoop(ctx context.Context, group []*partState) error {
	fctx, cancel := context.WithCancel(ctx)
	defer cancel()
	answers := make(chan []fetched, 1)
	// Delivered answers' slices go back to the fetching goroutine (growing a fresh one
	// per answer was the consumer's largest allocation).
	free := make(chan []fetched, 2)
	var ferr error
	var wg sync.WaitGroup
	wg.Go(func() {
		defer close(answers)
		ferr = f.fetchAnswers(fctx, group, answers, free)
	})
	defer wg.Wait()
	for recs := range answers {
		for i := range recs {
			r := &recs[i]
			select {
			case f.sem <- struct{}{}:
			case <-ctx.Done():
				cancel()
				for range answers { // not delivered: fetched again by the partition's next owner
				}
				return nil
			}
			f.s.c.m.fetched.Inc()
			f.hand(r)
		}
		clear(recs) // the records' bytes belong to their jobs now
		select {
		case free <- recs[:0]:
		default:
		}
	}
	wg.Wait()
	return ferr
}

// fetchAnswers sends fetch requests for group and hands each answer's records to out,
// in offset order per partition, until ctx ends (nil) or a leader changed (errReplan).
// It decodes into slices from free when there are some.
func (f *fetcher) fetchAnswers(ctx context.Context, group []*partState, out chan<- []fetched, free <-chan []fetched) error {
	cfg, m := f.s.c.cfg, f.s.c.m
	topic := cfg.RequestsTopic
	byID := make(map[int32]*partState, len(group))
	req := &fetchapi.Request{
		ReplicaID: -1, MaxWaitTime: int32(cfg.MaxWait.Milliseconds()), MinBytes: int32(cfg.MinBytes),
		MaxBytes: int32(cfg.MaxBytes), SessionID: -1, SessionEpoch: -1,
		Topics: []fetchapi.RequestTopic{{Topic: topic, Partitions: make([]fetchapi.RequestPartition, len(group))}},
	}
	for i, st := range group {
		byID[int32(st.id)] = st
		req.Topics[0].Partitions[i] = fetchapi.RequestPartition{Partition: int32(st.id), CurrentLeaderEpoch: -1,
			LogStartOffset: -1, PartitionMaxBytes: int32(cfg.MaxBytes)}
	}
	backoff := 10 * time.Millisecond
	for ctx.Err() == nil {
		for i, st := range group {
			req.Topics[0].Partitions[i].FetchOffset = st.next
		}
		res, err := f.roundTrip(ctx, req)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			m.fetchErrors.Inc()
			f.s.c.log.Warn("fetch failed; retrying", "err", err, "backoff", backoff)
			if errors.Is(err, kgo.NotLeaderForPartition) || errors.Is(err, kgo.UnknownTopicOrPartition) || errors.Is(err, kgo.LeaderNotAvailable) {
				return errReplan
			}
			if !sleepCtx(ctx, backoff) {
				return nil
			}
			backoff = min(2*backoff, time.Second)
			continue
		}
		backoff = 10 * time.Millisecond
		var recs []fetched
		select {
		case recs = <-free:
		default:
		}
		var replan error
		for ti := range res.Topics {
			t := &res.Topics[ti]
			for pi := range t.Partitions {
				p := &t.Partitions[pi]
				if st := byID[p.Partition]; st != nil {
					var err error
					if recs, err = f.decode(recs, st, p); err != nil {
						replan = err
					}
				}
			}
		}
		if len(recs) > 0 {
			select {
			case out <- recs:
			case <-ctx.Done():
				return nil
			}
		}
		if replan != nil {
			return replan
		}
	}
	return nil
}

// roundTrip sends one fetch request to the leader of its partitions.
func (f *fetcher) roundTrip(ctx context.Context, req *fetchapi.Request) (*fetchapi.Response, error) {
	// The request waits up to MaxWait at the broker; the call may take that and a margin.
	cctx, cancel := context.WithTimeout(ctx, f.s.c.cfg.MaxWait+10*time.Second)
	defer cancel()
	msg, err := f.cl.Transport.RoundTrip(cctx, f.cl.Addr, req)
	if err != nil {
		return nil, err
	}
	res, ok := msg.(*fetchapi.Response)
	if !ok {
		return nil, fmt.Errorf("kafka: fetch answered with %T", msg)
	}
	if res.ErrorCode != 0 {
		return nil, kgo.Error(res.ErrorCode)
	}
	return res, nil
}

// decode appends the records of one partition's fetch answer to recs, in offset
// order, and moves st past them. errReplan: the partition's leader changed, or its
// offset fell below the log start (it then restarts at the first offset that exists).
func (f *fetcher) decode(recs []fetched, st *partState, p *fetchapi.ResponsePartition) ([]fetched, error) {
	m := f.s.c.m
	switch code := kgo.Error(p.ErrorCode); {
	case p.ErrorCode == 0:
	case code == kgo.OffsetOutOfRange:
		// Records below the log start were deleted (retention): start over at the first
		// that exists rather than skip unread ones.
		f.s.c.log.Warn("fetch offset out of range; starting at the partition's first offset", "partition", st.id, "offset", st.next)
		st.next = kgo.FirstOffset
		return recs, errReplan
	case code == kgo.NotLeaderForPartition || code == kgo.UnknownTopicOrPartition || code == kgo.LeaderNotAvailable || code == kgo.FencedLeaderEpoch:
		return recs, errReplan
	default:
		m.fetchErrors.Inc()
		f.s.c.log.Warn("fetch of a partition failed; retrying", "partition", st.id, "err", code)
		return recs, nil
	}
	if p.HighWatermark > 0 {
		m.lag.WithLabelValues(st.lbl).Set(float64(max(p.HighWatermark-st.next, 0)))
	}
	if p.RecordSet.Records == nil {
		return recs, nil
	}
	// Every record read is released (its key and value closed): that returns the
	// answer's 64 KiB pages to kafka-go's pool once all of a batch's records are closed.
	// Unreleased, each batch of each answer allocated fresh pages: 2.4% of the CPU at
	// 15k requests/s in newPage alone, and most of the heap's allocation volume.
	defer drainRecords(p.RecordSet.Records)
	for {
		r, err := p.RecordSet.Records.ReadRecord()
		if err != nil {
			if !errors.Is(err, io.EOF) {
				m.fetchErrors.Inc()
				f.s.c.log.Warn("reading fetched records failed; fetching again", "partition", st.id, "offset", st.next, "err", err)
			}
			return recs, nil
		}
		if r.Offset < st.next { // a batch starts before the offset asked for
			releaseRecord(r)
			continue
		}
		key, value, err := readKV(r)
		releaseRecord(r)
		if err != nil {
			m.fetchErrors.Inc()
			f.s.c.log.Warn("reading a fetched record failed; fetching again", "partition", st.id, "offset", r.Offset, "err", err)
			return recs, nil
		}
		st.next = r.Offset + 1
		recs = append(recs, fetched{part: st.id, lbl: st.lbl, off: r.Offset, at: r.Time, key: key, value: value})
	}
}

// releaseRecord closes a record's key and value: its references to the answer's pages.
func releaseRecord(r *protocol.Record) {
	if r.Key != nil {
		r.Key.Close()
	}
	if r.Value != nil {
		r.Value.Close()
	}
}

// drainRecords releases the records of an answer that were not read (decode stopped
// early: an error); after a complete read it finds none.
func drainRecords(rr protocol.RecordReader) {
	for {
		r, err := rr.ReadRecord()
		if err != nil {
			return
		}
		releaseRecord(r)
	}
}

// readKV reads a record's key and value into one allocation (nil for an absent one).
func readKV(r *protocol.Record) (key, value []byte, err error) {
	kn, vn := 0, 0
	if r.Key != nil {
		kn = r.Key.Len()
	}
	if r.Value != nil {
		vn = r.Value.Len()
	}
	buf := make([]byte, kn+vn)
	if r.Key != nil {
		key = buf[:kn:kn]
		if _, err := io.ReadFull(r.Key, key); err != nil {
			return nil, nil, err
		}
	}
	if r.Value != nil {
		value = buf[kn:]
		if _, err := io.ReadFull(r.Value, value); err != nil {
			return nil, nil, err
		}
	}
	return key, value, nil
}

// hand tracks one record and delivers it; its slot is held until it is acknowledged.
// r's slice is reused once delivered, so the acknowledgement keeps copies of what it needs.
func (f *fetcher) hand(r *fetched) {
	m := f.s.c.m
	part, off := r.part, r.off
	var ack func()
	switch f.tr.add(part, off) {
	case addDuplicate:
		<-f.sem
		m.refetched.WithLabelValues("duplicate").Inc()
		return
	case addRewound:
		m.refetched.WithLabelValues("rewound").Inc()
		var once sync.Once
		ack = func() { once.Do(func() { <-f.sem }) }
	default:
		var once sync.Once
		ack = func() {
			once.Do(func() {
				f.tr.done(part, off)
				<-f.sem
			})
		}
	}
	m.inflight.Set(float64(len(f.sem)))
	f.deliver(dispatch.Record{
		Key:    r.key,
		Value:  r.value,
		Source: f.s.c.cfg.RequestsTopic + "/" + r.lbl + "/" + strconv.FormatInt(off, 10),
		Time:   r.at,
		Ack:    ack,
	})
}

// sleepCtx waits d and reports whether ctx is still live.
func sleepCtx(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}
