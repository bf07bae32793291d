package dispatch

import (
	"context"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendcore/sendcore/segment"
)

// Errors of the pipeline.
var (
	ErrNotRunning = errors.New("dispatch: pipeline not running")
	ErrNoReady    = errors.New("dispatch: no connection ready")
	ErrOptions    = errors.New("dispatch: bad options")
)

// Options are the pipeline's dependencies. Ledger, Schedule, OptOuts and Source are
// required; a nil Events writes events to the ledger only; nil Limiter means unlimited;
// nil Pools rejects requests naming a pool (unknown_pool); nil DLQ logs rejected records.
type Options struct {
	Config     Config
	QuietHours QuietHoursConfig
	Node       string // instance id carried in every event

	Source    Source
	Events    EventSink
	DLQ       DeadLetters
	OptOutBus OptOutPublisher // nil: opt-outs from MO keywords stay local

	OptOuts  OptOuts
	Ledger   Ledger
	Receipts Receipts
	Schedule Schedule

	Limiter RateLimiter
	Pools   NumberPicker

	SMS   []SMSRoute   // in configuration order
	Voice []VoiceRoute // in configuration order

	Log      *slog.Logger
	Registry prometheus.Registerer
	// Now is the clock; nil uses time.Now.
	Now func() time.Time
}

// Pipeline turns request records into exactly one terminal event each (see doc.go for
// the stages). Build it with New, run it with Run.
type Pipeline struct {
	cfg   Config
	o     Options
	log   *slog.Logger
	m     *metrics
	now   func() time.Time
	quiet *quietHours
	em    *emitter

	smsRouter   router
	voiceRouter router
	refs        [][]atomic.Uint32 // per SMS connection: concatenation reference buckets
	voiceSlots  []chan struct{}   // per trunk: MaxCalls tokens
	unconfirmed []chan struct{}   // per SMS connection: sends whose outcome is not durable; nil unbounded

	count countFunc
	split func(m *segment.Message, text string, opt segment.Options, ref uint16) error

	seed    maphash.Seed
	queues  []chan *job
	running atomic.Bool

	inflight  sync.WaitGroup
	nInflight atomic.Int64
	hard      context.Context // cancelled when the shutdown grace is over
	hardStop  context.CancelFunc
}

const refBuckets = 1024

// New checks opts and builds a pipeline. Nothing runs until Run.
func New(opts Options) (*Pipeline, error) {
	cfg := opts.Config
	if cfg.Workers == 0 {
		cfg = DefaultConfig()
	}
	cfg = cfg.withDefaults()
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrOptions, err)
	}
	switch {
	case opts.Source == nil:
		return nil, fmt.Errorf("%w: Source is nil", ErrOptions)
	case opts.Ledger == nil:
		return nil, fmt.Errorf("%w: Ledger is nil", ErrOptions)
	case opts.Schedule == nil:
		return nil, fmt.Errorf("%w: Schedule is nil", ErrOptions)
	case opts.OptOuts == nil:
		return nil, fmt.Errorf("%w: OptOuts is nil", ErrOptions)
	case opts.Receipts == nil:
		return nil, fmt.Errorf("%w: Receipts is nil", ErrOptions)
	}
	for i, r := range opts.SMS {
		if r.Sender == nil {
			return nil, fmt.Errorf("%w: SMS[%d].Sender is nil", ErrOptions, i)
		}
	}
	for i, r := range opts.Voice {
		if r.Caller == nil || r.MaxCalls < 1 {
			return nil, fmt.Errorf("%w: Voice[%d]: Caller nil or MaxCalls < 1", ErrOptions, i)
		}
	}
	q, err := newQuietHours(opts.QuietHours)
	if err != nil {
		return nil, err
	}
	if opts.Log == nil {
		opts.Log = slog.New(slog.DiscardHandler)
	}
	p := &Pipeline{
		cfg: cfg, o: opts, log: opts.Log, m: newMetrics(opts.Registry), now: opts.Now,
		quiet: q, count: segment.CountText, split: segment.Split, seed: maphash.MakeSeed(),
	}
	if p.now == nil {
		p.now = time.Now
	}
	p.em = newEmitter(opts.Ledger, opts.Events, cfg.EventBatch, p.log, p.m)
	var sp, vp [][]string
	for _, r := range opts.SMS {
		sp = append(sp, r.Prefixes)
		p.refs = append(p.refs, make([]atomic.Uint32, refBuckets))
		p.unconfirmed = append(p.unconfirmed, newUnconfirmed(cfg.MaxUnconfirmed, r.Sender))
	}
	for _, r := range opts.Voice {
		vp = append(vp, r.Prefixes)
		p.voiceSlots = append(p.voiceSlots, make(chan struct{}, r.MaxCalls))
	}
	p.smsRouter, p.voiceRouter = newRouter(sp), newRouter(vp)
	p.queues = make([]chan *job, cfg.Workers)
	for i := range p.queues {
		p.queues[i] = make(chan *job, cfg.QueueDepth)
	}
	p.hard, p.hardStop = context.WithCancel(context.Background())
	return p, nil
}

// Ready reports nil when the pipeline runs and, if connections are configured, at least
// one SMS connection or SIP trunk is ready.
func (p *Pipeline) Ready() error {
	if !p.running.Load() {
		return ErrNotRunning
	}
	if len(p.o.SMS)+len(p.o.Voice) == 0 {
		return nil
	}
	for _, r := range p.o.SMS {
		if r.Sender.Ready() {
			return nil
		}
	}
	for _, r := range p.o.Voice {
		if r.Caller.Ready() {
			return nil
		}
	}
	return ErrNoReady
}

// Run runs the source, the workers, the scheduler and the event writer until ctx is done
// or the source fails. On shutdown it stops fetching, lets in-flight requests finish or
// hand off within Config.ShutdownGrace, flushes events, lets the source commit, and
// returns when every goroutine it started has. Run may be called once.
func (p *Pipeline) Run(ctx context.Context) error {
	runCtx, stop := context.WithCancel(ctx)
	defer stop()
	defer p.hardStop()

	flushCtx, flushCancel := context.WithCancel(context.Background())
	defer flushCancel()
	emDone := make(chan struct{})
	go func() { defer close(emDone); p.em.run(flushCtx) }()

	drained := make(chan struct{})
	srcErr := make(chan error, 1)
	go func() { srcErr <- p.o.Source.Run(runCtx, p.deliverer(runCtx), drained) }()

	// Workers write accepted events to the outbox themselves (ClaimAccepted): they start
	// once the emitter has walked what an earlier run left there, so that the walk sees
	// only events of earlier runs.
	select {
	case <-p.em.recovered:
	case <-p.em.dead:
	case <-runCtx.Done():
	}
	var wg sync.WaitGroup
	for _, q := range p.queues {
		wg.Go(func() { p.work(runCtx, q) })
	}
	wg.Go(func() { p.scheduler(runCtx) })
	wg.Go(func() { p.sweeper(runCtx) })
	p.running.Store(true)
	p.log.Info("dispatch pipeline running", "workers", len(p.queues), "sms_connections", len(p.o.SMS), "trunks", len(p.o.Voice))

	var err error
	srcDone := false
	select {
	case <-runCtx.Done():
	case err = <-srcErr:
		srcDone = true
		if err != nil {
			p.log.Error("request source failed; stopping", "err", err)
		}
	}
	stop()
	p.running.Store(false)
	wg.Wait()

	// Finish or hand off in-flight requests within the grace, then cut what remains.
	grace := p.cfg.ShutdownGrace
	if !waitTimeout(&p.inflight, grace) {
		p.log.Warn("shutdown grace over; abandoning in-flight requests (they are redelivered)", "inflight", p.nInflight.Load())
		p.hardStop()
		waitTimeout(&p.inflight, 2*time.Second)
	}
	p.em.close()
	select {
	case <-emDone:
	case <-time.After(grace):
		flushCancel()
		<-emDone
	}
	close(drained)
	if !srcDone {
		err = <-srcErr
	}
	p.log.Info("dispatch pipeline stopped")
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// waitTimeout waits for wg up to d and reports whether it finished.
func waitTimeout(wg *sync.WaitGroup, d time.Duration) bool {
	done := make(chan struct{})
	go func() { wg.Wait(); close(done) }()
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-done:
		return true
	case <-t.C:
		return false
	}
}

// job is one request on its way through the pipeline.
type job struct {
	rec      Record
	held     *Scheduled // set when re-injected from the schedule
	value    []byte     // the request as received
	p        parsed
	ev       Event // template of every event of the request
	resumed  bool
	conn     int // chosen SMS connection or trunk
	cands    []int
	candBuf  [4]int // cands' storage for up to 4 routes: no allocation per request
	pool     string
	msg      segment.Message
	sms      SMS
	done     atomic.Bool
	handoffs atomic.Int32  // hand-offs left before finish (submitted: event + tracking)
	slot     chan struct{} // the unconfirmed-send slot held, released at finish/abandon
}

// deliverer returns the Source's deliver function: it hashes the key onto a worker
// queue, so that records of one recipient are processed in order, and blocks while that
// queue is full. After ctx is done it drops records unacknowledged.
func (p *Pipeline) deliverer(ctx context.Context) func(Record) {
	return func(rec Record) {
		if ctx.Err() != nil {
			return
		}
		key := rec.Key
		if len(key) == 0 {
			key = []byte(rec.Source)
		}
		q := p.queues[maphash.Bytes(p.seed, key)%uint64(len(p.queues))]
		j := &job{rec: rec, value: rec.Value}
		select {
		case q <- j:
		case <-ctx.Done():
		}
	}
}

func (p *Pipeline) work(ctx context.Context, q chan *job) {
	for {
		select {
		case <-ctx.Done():
			return
		case j := <-q:
			p.begin()
			p.process(j)
		}
	}
}

func (p *Pipeline) begin() {
	p.inflight.Add(1)
	p.m.inflight.Set(float64(p.nInflight.Add(1)))
}

func (p *Pipeline) end() {
	p.m.inflight.Set(float64(p.nInflight.Add(-1)))
	p.inflight.Done()
}

// finish hands the job off for good: it acknowledges the record (or removes the held
// item from the schedule) and ends the job's in-flight accounting. Called once.
func (p *Pipeline) finish(j *job, outcome string) {
	if !j.done.CompareAndSwap(false, true) {
		return
	}
	p.m.request(outcome)
	if j.held != nil {
		if err := p.o.Schedule.Done(j.held.ID); err != nil {
			p.m.storeErrors.WithLabelValues("schedule_done").Inc()
			p.log.Error("schedule done failed (the item is offered again after its lease)", "id", j.held.ID, "err", err)
		}
	} else if j.rec.Ack != nil {
		j.rec.Ack()
	}
	p.releaseUnconfirmed(j)
	p.end()
}

// abandon ends a job without acknowledging it: it is redelivered (or re-offered by the
// schedule) and resumed through the ledger.
func (p *Pipeline) abandon(j *job, why string, err error) {
	if !j.done.CompareAndSwap(false, true) {
		return
	}
	p.m.request("abandoned")
	p.log.Warn("request abandoned; it will be redelivered", "id", j.ev.ID, "why", why, "err", err)
	p.releaseUnconfirmed(j)
	p.end()
}

// emitThen emits the job's template with status s and finishes the job once it is
// durable. ev mutations are applied by the caller on a copy.
func (p *Pipeline) emitFinal(j *job, ev Event, outcome string) {
	ev.TS = p.now().UTC()
	if !p.em.emit(ev, func() { p.finish(j, outcome) }) {
		p.abandon(j, "event stream closed", nil)
	}
}

func (p *Pipeline) emitInfo(ev Event) {
	ev.TS = p.now().UTC()
	p.em.emit(ev, nil)
}

func (j *job) event(s Status) Event {
	ev := j.ev
	ev.Status = s
	return ev
}

// process runs one job through the front stages: decode, idempotency, accepted.
func (p *Pipeline) process(j *job) {
	start := p.now()
	if j.held != nil {
		p.resumeHeld(j)
		return
	}
	if !j.rec.Time.IsZero() {
		// The broker, the consumer and this worker's queue (on the producer's clock).
		p.m.observeStage("wait", max(start.Sub(j.rec.Time), 0).Seconds())
	}
	j.p = parseRequest(j.value, p.cfg.MaxRequestBytes, p.cfg.SmartEncoding, p.count)
	p.m.observeStage("parse", p.now().Sub(start).Seconds())
	j.fillTemplate(p.o.Node)
	if j.p.req.ID == "" {
		// No id: the DLQ only (contract §1).
		p.deadLetter(j)
		p.finish(j, "dead_lettered")
		return
	}
	t0 := p.now()
	var (
		prev     Claim
		existed  bool
		err      error
		accepted Event
		seq      uint64
		raw      []byte // accepted's JSON as the ledger stored it, when it says
	)
	if j.p.bad == nil {
		// A new claim and its accepted event in one durable write: a crash after it
		// resumes without a second accepted, and nothing waits on a second commit.
		accepted = j.event(StatusAccepted)
		accepted.TS = t0.UTC()
		if p.em.encLedger != nil {
			prev, existed, seq, raw, err = p.em.encLedger.ClaimAcceptedJSON(j.p.req.ID, j.rec.Source, t0, accepted)
		} else {
			prev, existed, seq, err = p.o.Ledger.ClaimAccepted(j.p.req.ID, j.rec.Source, t0, accepted)
		}
	} else {
		prev, existed, err = p.o.Ledger.Claim(j.p.req.ID, j.rec.Source, t0)
	}
	p.m.observeStage("claim", p.now().Sub(t0).Seconds())
	if err != nil {
		p.m.storeErrors.WithLabelValues("claim").Inc()
		p.abandon(j, "ledger claim failed", err)
		return
	}
	if existed {
		if prev.Source != j.rec.Source {
			ev := j.event(StatusDuplicate)
			ev.Detail = "id first read from " + prev.Source
			p.emitFinal(j, ev, string(StatusDuplicate))
			return
		}
		// A redelivery of this very record (restart, rebalance): resume, never twice.
		if prev.Terminal != "" {
			p.finish(j, "redelivered")
			return
		}
		hist, err := p.o.Ledger.History(j.p.req.ID)
		if err != nil {
			p.m.storeErrors.WithLabelValues("history").Inc()
			p.abandon(j, "ledger history failed", err)
			return
		}
		for _, ev := range hist {
			switch ev.Status {
			case StatusSubmitted:
				// Submitted before: make sure receipts are tracked, then they take over.
				p.resumeSubmitted(j, ev)
				return
			case StatusScheduled, StatusAnswered:
				// Handed off before: the schedule or the call take it from here.
				p.finish(j, "redelivered")
				return
			case StatusAccepted:
				j.resumed = true
			}
		}
	}
	if j.p.bad != nil {
		p.deadLetter(j)
		ev := j.event(StatusRejected)
		ev.Reason, ev.Detail = j.p.bad.reason, j.p.bad.detail
		p.emitFinal(j, ev, string(StatusRejected))
		return
	}
	switch {
	case !existed:
		// accepted is durable with the claim; it goes to the events topic in order,
		// before anything this request emits later.
		if !p.em.emitDurable(accepted, seq, raw) {
			p.abandon(j, "event stream closed", nil)
			return
		}
	case !j.resumed:
		// Claimed earlier without accepted (a data dir of an earlier version): wait
		// until accepted is durable, so that a crash after this point resumes without
		// a second one.
		ev := j.event(StatusAccepted)
		ev.TS = p.now().UTC()
		if !p.em.emitWait(ev) {
			p.abandon(j, "event stream closed", nil)
			return
		}
	}
	p.front(j)
}

// fillTemplate sets the fields every event of the request carries.
func (j *job) fillTemplate(node string) {
	r := &j.p.req
	j.ev = Event{ID: r.ID, Tenant: r.Tenant, Campaign: r.Campaign, Channel: r.Channel,
		To: r.To, From: r.From, Node: node, Meta: r.Meta}
	if j.p.to != "" {
		j.ev.To = j.p.to
	}
	if j.ev.Tenant == "" {
		j.ev.Tenant = "default"
	}
}

// deadLetter writes the record to the DLQ before its rejected event is emitted.
func (p *Pipeline) deadLetter(j *job) {
	reason, detail := ReasonInvalidJSON, "undecodable"
	if j.p.bad != nil {
		reason, detail = j.p.bad.reason, j.p.bad.detail
	}
	if p.o.DLQ == nil {
		p.log.Warn("rejected record (no DLQ configured)", "source", j.rec.Source, "reason", reason, "detail", detail)
		return
	}
	if err := p.o.DLQ.DeadLetter(p.hard, j.rec.Key, j.value, j.rec.Source, reason, detail); err != nil {
		p.m.storeErrors.WithLabelValues("dlq").Inc()
		p.log.Error("DLQ write failed", "source", j.rec.Source, "err", err)
	}
}

// resumeHeld re-enters a request taken from the schedule. It was validated and claimed
// when first read; the ledger tells whether it was handed on before a crash.
func (p *Pipeline) resumeHeld(j *job) {
	j.p = parseRequest(j.value, p.cfg.MaxRequestBytes, p.cfg.SmartEncoding, p.count)
	j.fillTemplate(p.o.Node)
	if j.p.bad != nil {
		// Cannot happen for what we held; end it rather than loop.
		ev := j.event(StatusFailed)
		ev.Reason, ev.Detail = "internal", "held request no longer valid: "+j.p.bad.Error()
		p.emitFinal(j, ev, string(StatusFailed))
		return
	}
	hist, err := p.o.Ledger.History(j.held.ID)
	if err != nil {
		p.m.storeErrors.WithLabelValues("history").Inc()
		p.abandon(j, "ledger history failed", err)
		return
	}
	var last Status
	var submitted Event
	for _, ev := range hist {
		if ev.Status.Terminal() || ev.Status == StatusSubmitted || ev.Status == StatusAnswered {
			last = ev.Status
		}
		if ev.Status == StatusSubmitted {
			submitted = ev
		}
	}
	if last == StatusSubmitted {
		p.resumeSubmitted(j, submitted)
		return
	}
	if last != "" {
		p.finish(j, "redelivered")
		return
	}
	p.front(j)
}

// front runs expiry, opt-out and schedule, then hands over to the channel's stages.
func (p *Pipeline) front(j *job) {
	now := p.now()
	r := &j.p.req
	if r.ExpiresAt != nil && !now.Before(*r.ExpiresAt) {
		ev := j.event(StatusExpired)
		ev.Detail = "expires_at " + r.ExpiresAt.Format(time.RFC3339) + " passed"
		p.emitFinal(j, ev, string(StatusExpired))
		return
	}
	t0 := p.now()
	out, err := p.o.OptOuts.OptedOut(r.Tenant, r.Channel, j.p.to)
	p.m.observeStage("optout", p.now().Sub(t0).Seconds())
	if err != nil {
		p.m.optOutChecks.WithLabelValues("error").Inc()
		p.m.storeErrors.WithLabelValues("optout").Inc()
		p.abandon(j, "opt-out check failed", err)
		return
	}
	if out {
		p.m.optOutOptedOut.Inc()
		ev := j.event(StatusSuppressed)
		ev.Reason = "opted_out"
		p.emitFinal(j, ev, string(StatusSuppressed))
		return
	}
	p.m.optOutPass.Inc()
	var due time.Time
	reason := ""
	if r.NotBefore != nil && r.NotBefore.After(now) {
		due, reason = *r.NotBefore, "not_before"
	}
	if q := p.quiet.until(j.p.to, maxTime(now, due)); !q.IsZero() {
		due, reason = q, "quiet_hours"
	}
	if !due.IsZero() {
		p.hold(j, due, reason)
		return
	}
	if r.Channel == ChannelVoice {
		p.voice(j)
		return
	}
	p.smsRoute(j)
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

// hold puts the request in the schedule until due and emits `scheduled` (reason says
// why: not_before, quiet_hours, rate_limited, pool_exhausted, no_connection).
func (p *Pipeline) hold(j *job, due time.Time, reason string) {
	r := &j.p.req
	err := p.o.Schedule.Hold(Scheduled{ID: r.ID, Tenant: r.Tenant, Campaign: r.Campaign,
		Due: due.UTC(), Source: j.source(), Request: j.value})
	if err != nil {
		p.m.storeErrors.WithLabelValues("schedule_hold").Inc()
		p.abandon(j, "schedule hold failed", err)
		return
	}
	ev := j.event(StatusScheduled)
	ev.Reason, ev.Detail = reason, "due "+due.UTC().Format(time.RFC3339Nano)
	if j.held != nil {
		// Holding the id again replaced the leased item: nothing to remove.
		j.held = nil
		j.rec.Ack = nil
	}
	p.emitFinal(j, ev, string(StatusScheduled))
}

func (j *job) source() string {
	if j.held != nil {
		return j.held.Source
	}
	return j.rec.Source
}

// route returns the candidate connections for the job's destination and whether one is
// ready, choosing the first ready one into j.conn.
func pickReady(cands []int, ready func(int) bool) (int, bool) {
	for _, c := range cands {
		if ready(c) {
			return c, true
		}
	}
	return 0, false
}

// pickFrom selects the sender: explicit from, else the pool, else def. It returns false
// when it ended or held the job.
func (p *Pipeline) pickFrom(j *job, channel, def string) bool {
	r := &j.p.req
	switch {
	case r.From != "":
		j.ev.From = r.From
	case r.Pool != "":
		if p.o.Pools == nil {
			ev := j.event(StatusRejected)
			ev.Reason, ev.Detail = ReasonUnknownPool, fmt.Sprintf("pool: %q is not configured", r.Pool)
			p.emitFinal(j, ev, string(StatusRejected))
			return false
		}
		num, retryAt, err := p.o.Pools.Pick(r.Tenant, channel, r.Pool, j.p.to, p.now())
		if err != nil {
			switch {
			case !retryAt.IsZero():
				p.hold(j, retryAt, ReasonPoolExhausted)
			case errors.Is(err, ErrUnknownPool):
				ev := j.event(StatusRejected)
				ev.Reason, ev.Detail = ReasonUnknownPool, fmt.Sprintf("pool: %q: %v", r.Pool, err)
				p.emitFinal(j, ev, string(StatusRejected))
			default:
				ev := j.event(StatusFailed)
				ev.Reason, ev.Detail = ReasonPoolExhausted, fmt.Sprintf("pool: %q: %v", r.Pool, err)
				p.emitFinal(j, ev, string(StatusFailed))
			}
			return false
		}
		j.ev.From, j.pool, j.ev.Pool = num, r.Pool, r.Pool
	default:
		j.ev.From = def
	}
	return true
}

// reserve asks the limiter for n units. It returns (proceed now, ok); when the wait is
// short it re-enters cont on a timer (not blocking the worker, so other keys go on);
// when long it holds the job in the schedule; on a cap it fails the job.
func (p *Pipeline) reserve(j *job, n int, cont func()) bool {
	if p.o.Limiter == nil {
		return true
	}
	wait, err := p.o.Limiter.Reserve(j.ev.Tenant, j.ev.From, j.p.to, n, p.now())
	if err != nil {
		ev := j.event(StatusFailed)
		ev.Reason, ev.Detail = ReasonRecipientCap, err.Error()
		p.emitFinal(j, ev, string(StatusFailed))
		return false
	}
	switch {
	case wait <= 0:
		return true
	case wait <= p.cfg.MaxLimiterWait:
		p.m.limiterWaits.WithLabelValues("timer").Inc()
		time.AfterFunc(wait, cont)
	default:
		// Held, not sent now: give the tokens and the recipient-cap count back, since the
		// request reserves again when it comes back from the schedule.
		p.o.Limiter.Cancel(j.ev.Tenant, j.ev.From, j.p.to, n, p.now())
		p.m.limiterWaits.WithLabelValues("hold").Inc()
		p.hold(j, p.now().Add(wait), "rate_limited")
	}
	return false
}
