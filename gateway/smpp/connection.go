package smpp

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"math/rand/v2"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/smpp/internal/wire"
	"github.com/sendcore/sendcore/segment"
)

// Errors.
var (
	ErrClosed         = errors.New("smpp: connection closed")
	ErrAlreadyRunning = errors.New("smpp: connection already running")
	ErrBind           = errors.New("smpp: bind failed")
	ErrDeadPeer       = errors.New("smpp: peer not answering")
	ErrUnbound        = errors.New("smpp: unbound by peer")
	ErrTimeout        = errors.New("smpp: response timeout")
	ErrSessionLost    = errors.New("smpp: session lost with submit in flight")
	ErrStatus         = errors.New("smpp: error status")
	ErrNoParts        = errors.New("smpp: message has no parts")
)

// StatusError is a non-zero command_status; errors.Is(err, ErrStatus) holds.
type StatusError struct{ Status uint32 }

func (e *StatusError) Error() string { return fmt.Sprintf("smpp: command_status 0x%08X", e.Status) }

// Is makes errors.Is(err, ErrStatus) true.
func (e *StatusError) Is(target error) bool { return target == ErrStatus }

// Handlers receive what the SMSC delivers. They are called concurrently (16 goroutines
// per receiving session), never from the read loop, and in arrival order for one SMSC
// message id (receipts) or one sender (MO); they must be safe for concurrent use. The
// deliver_sm/data_sm is acknowledged with status 0 only
// after the handler returned nil (the receipt or MO is durable), otherwise with
// ESME_RX_T_APPN (0x64) so that the SMSC delivers it again. A nil handler acknowledges at
// once.
type Handlers struct {
	Receipt func(dispatch.Receipt) error
	MO      func(dispatch.MO) error
}

// Connection is one configured SMSC: cfg.Binds sessions kept bound by Run, a shared rate
// limit with adaptive throttling, retries, and receipt/MO hand-off. It implements
// dispatch.SMSSender. Safe for concurrent use.
type Connection struct {
	cfg    Config
	h      Handlers
	log    *slog.Logger
	m      *metrics
	concat segment.Concat
	// fixed source TON/NPI when cfg.SourceTON is not "auto"
	srcAuto        bool
	srcTON, srcNPI byte
	respFormat     string

	admit   chan struct{} // a slot per message between Send and done
	done    chan *message // completions, run by one goroutine in Run
	running atomic.Bool
	stopped chan struct{} // closed when Run has drained the queue

	qmu     sync.Mutex
	queue   []*message // FIFO; retries go to the front
	delayed map[*message]*time.Timer
	closed  bool
	qsig    chan struct{}

	limiter *rate.Limiter
	thrMu   sync.Mutex
	lastCut time.Time
	lastUp  time.Time
	okRate  meter

	smu      sync.Mutex
	sessions map[*session]struct{}
	bound    atomic.Int32
	txBound  atomic.Int32

	submits, errs, throttles, retries, unknown atomic.Uint64
}

// NewConnection checks cfg and builds a connection; nothing happens on the network
// before Run. reg may be nil (no metrics registered).
func NewConnection(cfg Config, h Handlers, log *slog.Logger, reg prometheus.Registerer) (*Connection, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("smpp: config %s: %w", cfg.Name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	c := &Connection{
		cfg: cfg, h: h, log: log.With("connection", cfg.Name), m: newMetrics(reg, cfg.Name),
		srcAuto: cfg.SourceTON == "auto", respFormat: cfg.RespIDFormat,
		delayed: map[*message]*time.Timer{}, qsig: make(chan struct{}, 1),
		sessions: map[*session]struct{}{}, stopped: make(chan struct{}),
	}
	if c.respFormat == "" {
		c.respFormat = cfg.IDFormat
	}
	if !c.srcAuto {
		var ton, npi int
		_, _ = fmt.Sscanf(cfg.SourceTON, "%d/%d", &ton, &npi)
		c.srcTON, c.srcNPI = byte(ton), byte(npi)
	}
	switch cfg.Concat {
	case "udh16":
		c.concat = segment.ConcatUDH16
	case "sar":
		c.concat = segment.ConcatSAR
	case "payload":
		c.concat = segment.ConcatPayload
	}
	q := cfg.Queue
	if q == 0 {
		q = 4 * cfg.Window * cfg.Binds
	}
	c.admit = make(chan struct{}, q)
	c.done = make(chan *message, q)
	lim := rate.Inf
	burst := 1
	if cfg.TPS > 0 {
		lim = rate.Limit(cfg.TPS)
		burst = max(1, int(cfg.TPS/100))
	}
	c.limiter = rate.NewLimiter(lim, burst)
	return c, nil
}

// Name is the configured connection name.
func (c *Connection) Name() string { return c.cfg.Name }

// Ready reports whether at least one session that can submit is bound.
func (c *Connection) Ready() bool { return c.txBound.Load() > 0 }

// Concat is the concatenation form configured for this connection.
func (c *Connection) Concat() segment.Concat { return c.concat }

// InFlightWindow is how many submits can be in flight on this connection at once
// (binds × window): dispatch bounds the sends without a durable outcome by it, which is
// what a crash can send twice.
func (c *Connection) InFlightWindow() int { return c.cfg.Binds * c.cfg.Window }

// National returns the national language tables this connection allows (config
// national_languages); dispatch offers them to the segmenter.
func (c *Connection) National() segment.LanguageSet { return c.cfg.National() }

// message is one SMS in progress: its parts go one after another.
type message struct {
	sms     *dispatch.SMS
	done    func([]dispatch.PartResult)
	results []dispatch.PartResult
	next    int // index of the part to submit
	tries   int // transient errors and unknown outcomes of the current part
	thr     int // throttles of the current part
	unsure  bool
	sub     wire.Submit // fields common to all parts
	start   time.Time   // of the current attempt
}

const maxThrottleRetries = 1000

// Send submits every part of m in order (see dispatch.SMSSender). It blocks only while
// cfg.Queue messages are already accepted and not done; it returns ctx.Err() if ctx ends
// first and ErrClosed after Run has returned, and then never calls done. done is called
// exactly once, from the connection's completion goroutine, and must not block for long:
// it holds back the next completions.
func (c *Connection) Send(ctx context.Context, m *dispatch.SMS, done func([]dispatch.PartResult)) error {
	if len(m.Parts) == 0 {
		return fmt.Errorf("%w: request %s", ErrNoParts, m.RequestID)
	}
	select {
	case c.admit <- struct{}{}:
	case <-ctx.Done():
		return ctx.Err()
	case <-c.stopped:
		return ErrClosed
	}
	msg := &message{sms: m, done: done, results: make([]dispatch.PartResult, len(m.Parts))}
	c.fill(msg)
	c.qmu.Lock()
	if c.closed {
		c.qmu.Unlock()
		<-c.admit
		return ErrClosed
	}
	c.queue = append(c.queue, msg)
	c.qmu.Unlock()
	c.signal()
	return nil
}

// fill sets the submit_sm fields that do not change between parts.
func (c *Connection) fill(msg *message) {
	m := msg.sms
	s := &msg.sub
	from := m.From
	if from == "" {
		from = c.cfg.DefaultFrom
	}
	s.SrcTON, s.SrcNPI, s.Src = c.srcTON, c.srcNPI, from
	if c.srcAuto {
		s.SrcTON, s.SrcNPI, s.Src = sourceAddr(from)
	} else if len(from) > 1 && from[0] == '+' {
		s.Src = from[1:]
	}
	s.DstTON, s.DstNPI, s.Dst = 1, 1, m.To
	if len(m.To) > 0 && m.To[0] == '+' {
		s.Dst = m.To[1:]
	}
	if m.DLR {
		s.RegisteredDelivery = 1
	}
	if m.Priority == dispatch.PriorityHigh {
		s.Priority = 1
	}
	if !m.ValidUntil.IsZero() {
		s.Validity = m.ValidUntil.UTC().Format("060102150405") + "000+"
	}
}

// sourceAddr picks TON/NPI from the sender: "+"E.164 → 1/1 without the "+", up to 8
// digits → short code 3/0, more digits → 1/1, anything else alphanumeric 5/0.
func sourceAddr(from string) (ton, npi byte, addr string) {
	digits := func(s string) bool {
		for i := 0; i < len(s); i++ {
			if s[i] < '0' || s[i] > '9' {
				return false
			}
		}
		return len(s) > 0
	}
	switch {
	case len(from) > 1 && from[0] == '+' && digits(from[1:]):
		return 1, 1, from[1:]
	case digits(from) && len(from) <= 8:
		return 3, 0, from
	case digits(from):
		return 1, 1, from
	}
	return 5, 0, from
}

// part fills msg.sub with the current part and returns it.
func (msg *message) part() *wire.Submit {
	p := &msg.sms.Parts[msg.next]
	s := &msg.sub
	s.ESMClass = 0
	if p.UDHI {
		s.ESMClass = 0x40
	}
	s.DataCoding = p.DataCoding
	s.ShortMessage, s.Payload = p.ShortMessage, nil
	if p.Payload {
		s.ShortMessage, s.Payload = nil, p.ShortMessage
		if s.Payload == nil {
			s.Payload = []byte{}
		}
	}
	s.SAR = p.SAR
	if p.SAR {
		s.SARRef, s.SARTotal, s.SARSeq = p.Ref, byte(p.Total), byte(p.Seq)
	}
	return s
}

func (c *Connection) signal() {
	select {
	case c.qsig <- struct{}{}:
	default:
	}
}

// take blocks until a message is queued or stop is closed (nil).
func (c *Connection) take(stop <-chan struct{}) *message {
	for {
		c.qmu.Lock()
		if len(c.queue) > 0 {
			m := c.queue[0]
			c.queue[0] = nil
			c.queue = c.queue[1:]
			more := len(c.queue) > 0
			c.qmu.Unlock()
			if more {
				c.signal() // wake another session's pump
			}
			return m
		}
		c.qmu.Unlock()
		select {
		case <-c.qsig:
		case <-stop:
			return nil
		}
	}
}

// requeue puts msg back at the front (after delay when > 0). After Run it completes msg.
func (c *Connection) requeue(msg *message, delay time.Duration) {
	c.qmu.Lock()
	if c.closed {
		c.qmu.Unlock()
		c.finish(msg, c.leftover(msg), nil)
		return
	}
	if delay > 0 {
		c.delayed[msg] = time.AfterFunc(delay, func() {
			c.qmu.Lock()
			if _, ok := c.delayed[msg]; !ok {
				c.qmu.Unlock()
				return
			}
			delete(c.delayed, msg)
			c.queue = append(c.queue, msg)
			c.qmu.Unlock()
			c.signal()
		})
		c.qmu.Unlock()
		return
	}
	c.queue = append(c.queue, nil)
	copy(c.queue[1:], c.queue)
	c.queue[0] = msg
	c.qmu.Unlock()
	c.signal()
}

// leftover is the outcome of the current part of a message that cannot go on.
func (c *Connection) leftover(msg *message) dispatch.Outcome {
	if msg.unsure {
		return dispatch.OutcomeUnknown
	}
	return dispatch.OutcomeNotSent
}

// finish sets the current part's outcome (unless it is OK and already set), marks the
// remaining parts not sent and hands msg to the completion goroutine.
func (c *Connection) finish(msg *message, o dispatch.Outcome, err error) {
	if msg.next < len(msg.results) {
		r := &msg.results[msg.next]
		r.Outcome = o
		if r.Err == nil {
			r.Err = err
		}
		if r.Err == nil && o != dispatch.OutcomeOK {
			r.Err = fmt.Errorf("smpp: %s: %s", c.cfg.Name, o)
		}
		c.m.outcomes[o].Inc()
		for i := msg.next + 1; i < len(msg.results); i++ {
			msg.results[i] = dispatch.PartResult{Outcome: dispatch.OutcomeNotSent, Err: fmt.Errorf("smpp: %s: earlier part failed", c.cfg.Name)}
			c.m.outcomes[dispatch.OutcomeNotSent].Inc()
		}
	}
	c.done <- msg // capacity = admitted messages: never blocks
}

// onResp is called by a session with the result of one attempt of msg's current part:
// status and id from submit_sm_resp or generic_nack, or err (timeout, session lost).
func (c *Connection) onResp(msg *message, status uint32, id string, err error, now time.Time) {
	if err == nil {
		c.m.latency.Observe(now.Sub(msg.start).Seconds())
	}
	switch {
	case err != nil: // no response: the SMSC may have it
		c.unknown.Add(1)
		c.m.unknown.Inc()
		msg.unsure = true
		if c.cfg.OnUnknown == "retry" && msg.tries < c.cfg.Retries {
			msg.tries++
			c.retries.Add(1)
			c.m.retries.Inc()
			c.requeue(msg, 0)
			return
		}
		c.finish(msg, dispatch.OutcomeUnknown, err)
	case status == wire.StatusOK:
		c.submits.Add(1)
		c.okRate.add(now)
		c.recover(now)
		msg.results[msg.next] = dispatch.PartResult{Outcome: dispatch.OutcomeOK, SMSCID: canonID(id, c.respFormat)}
		c.m.outcomes[dispatch.OutcomeOK].Inc()
		msg.next++
		msg.tries, msg.thr, msg.unsure = 0, 0, false
		if msg.next == len(msg.results) {
			c.finish(msg, dispatch.OutcomeOK, nil)
			return
		}
		c.requeue(msg, 0)
	case status == wire.StatusThrottled || status == wire.StatusMsgQFul:
		c.throttles.Add(1)
		c.m.throttles.Inc()
		c.throttle(now)
		msg.results[msg.next].Status = status
		if msg.thr++; msg.thr > maxThrottleRetries {
			c.errs.Add(1)
			c.finish(msg, dispatch.OutcomeTransient, &StatusError{status})
			return
		}
		c.retries.Add(1)
		c.m.retries.Inc()
		c.requeue(msg, 0) // the lowered rate paces it
	case transient(status):
		c.errs.Add(1)
		msg.results[msg.next].Status = status
		if msg.tries < c.cfg.Retries {
			msg.tries++
			c.retries.Add(1)
			c.m.retries.Inc()
			c.requeue(msg, min(100*time.Millisecond<<(msg.tries-1), 5*time.Second))
			return
		}
		c.finish(msg, dispatch.OutcomeTransient, &StatusError{status})
	default:
		c.errs.Add(1)
		msg.results[msg.next].Status = status
		c.finish(msg, dispatch.OutcomePermanent, &StatusError{status})
	}
}

// transient reports whether a non-throttling error status is worth retrying.
func transient(status uint32) bool {
	switch status {
	case wire.StatusSysErr, wire.StatusInvBnd, wire.StatusSubmitFail, wire.StatusRxTAppN,
		wire.StatusUnknown:
		return true
	}
	return false
}

// throttle lowers the shared rate to 95% of the current limit, or of the rate the SMSC
// accepted in the last second when that is lower (by at most 15% when the limit is already
// close to it); at most once per 200 ms.
func (c *Connection) throttle(now time.Time) {
	c.thrMu.Lock()
	defer c.thrMu.Unlock()
	if now.Sub(c.lastCut) < 200*time.Millisecond {
		return
	}
	cur := float64(c.limiter.Limit())
	if acc := c.okRate.rate(now); acc > 0 && acc < cur {
		if cur > 1.5*acc { // far above what the SMSC takes: jump down to it
			cur = acc
		} else { // near it: a dip in the measured rate must not cut deep
			cur = max(acc, cur*0.85)
		}
	}
	if math.IsInf(cur, 1) {
		cur = 100
	}
	cur = max(1, cur*0.95)
	c.limiter.SetLimitAt(now, rate.Limit(cur))
	c.limiter.SetBurstAt(now, max(1, int(cur/100)))
	c.lastCut, c.lastUp = now, now
}

// recover raises a lowered rate by 4% every 100 ms once 250 ms passed without throttling,
// up to cfg.TPS (or back to unlimited).
func (c *Connection) recover(now time.Time) {
	cur := c.limiter.Limit()
	if cur == rate.Inf || (c.cfg.TPS > 0 && float64(cur) >= c.cfg.TPS) {
		return
	}
	c.thrMu.Lock()
	defer c.thrMu.Unlock()
	if now.Sub(c.lastCut) < 250*time.Millisecond || now.Sub(c.lastUp) < 100*time.Millisecond {
		return
	}
	c.lastUp = now
	next := float64(c.limiter.Limit()) * 1.04
	switch {
	case c.cfg.TPS > 0 && next >= c.cfg.TPS:
		next = c.cfg.TPS
	case c.cfg.TPS == 0 && next > 1e6:
		c.limiter.SetLimitAt(now, rate.Inf)
		return
	}
	c.limiter.SetLimitAt(now, rate.Limit(next))
	c.limiter.SetBurstAt(now, max(1, int(next/100)))
}

// meter counts events in ten 100 ms buckets.
type meter struct {
	n     [10]atomic.Int64
	epoch [10]atomic.Int64
	first atomic.Int64 // unix ns of the first event
}

func (m *meter) add(now time.Time) {
	if m.first.Load() == 0 {
		m.first.CompareAndSwap(0, now.UnixNano())
	}
	e := now.UnixNano() / int64(100*time.Millisecond)
	i := e % 10
	if m.epoch[i].Load() != e {
		m.epoch[i].Store(e)
		m.n[i].Store(0)
	}
	m.n[i].Add(1)
}

// rate is events per second over the last second.
func (m *meter) rate(now time.Time) float64 {
	e := now.UnixNano() / int64(100*time.Millisecond)
	var sum int64
	for i := range m.n {
		if ep := m.epoch[i].Load(); ep > e-10 && ep <= e {
			sum += m.n[i].Load()
		}
	}
	elapsed := 0.9 + float64(now.UnixNano()%int64(100*time.Millisecond))/1e9
	if f := m.first.Load(); f != 0 {
		elapsed = min(elapsed, max(0.01, float64(now.UnixNano()-f)/1e9))
	}
	return float64(sum) / elapsed
}

// Run keeps the sessions bound until ctx is done, then lets in-flight submits finish
// (bounded by cfg.ShutdownGrace), unbinds, completes every message still queued (remaining
// parts OutcomeNotSent) and returns when all its goroutines have. It returns nil after a
// cancellation; it can run once.
func (c *Connection) Run(ctx context.Context) error {
	if !c.running.CompareAndSwap(false, true) {
		return ErrAlreadyRunning
	}
	var completer sync.WaitGroup
	completer.Add(1)
	go func() {
		defer completer.Done()
		for msg := range c.done {
			msg.done(msg.results)
			<-c.admit
		}
	}()
	var wg sync.WaitGroup
	kinds := []uint32{wire.BindTransceiver}
	switch c.cfg.Bind {
	case "transmitter":
		kinds = []uint32{wire.BindTransmitter}
	case "receiver-pair":
		kinds = []uint32{wire.BindTransmitter, wire.BindReceiver}
	}
	for i := 0; i < c.cfg.Binds; i++ {
		for _, k := range kinds {
			wg.Add(1)
			go func() {
				defer wg.Done()
				c.bindLoop(ctx, i, k)
			}()
		}
	}
	wg.Wait()
	c.qmu.Lock()
	c.closed = true
	left := c.queue
	c.queue = nil
	for msg, t := range c.delayed {
		t.Stop()
		left = append(left, msg)
	}
	c.delayed = map[*message]*time.Timer{}
	c.qmu.Unlock()
	close(c.stopped)
	for _, msg := range left {
		c.finish(msg, c.leftover(msg), ErrClosed)
	}
	close(c.done)
	completer.Wait()
	return nil
}

// bindLoop keeps one session of kind bound, reconnecting with jittered exponential backoff.
func (c *Connection) bindLoop(ctx context.Context, i int, kind uint32) {
	backoff := c.cfg.ReconnectMin
	for ctx.Err() == nil {
		s := newSession(c, i, kind)
		bound, err := s.run(ctx)
		if ctx.Err() != nil {
			return
		}
		if bound {
			backoff = c.cfg.ReconnectMin
		}
		d := backoff/2 + rand.N(backoff/2+1)
		c.log.Warn("smpp session ended", "session", s.name, "err", err, "retry_in", d)
		t := time.NewTimer(d)
		select {
		case <-ctx.Done():
			t.Stop()
			return
		case <-t.C:
		}
		backoff = min(backoff*2, c.cfg.ReconnectMax)
	}
}

// SessionStats describes one session.
type SessionStats struct {
	Name     string `json:"name"`
	Kind     string `json:"kind"`  // transmitter, receiver, transceiver
	State    string `json:"state"` // connecting, bound, unbinding
	InFlight int    `json:"in_flight"`
}

// Stats is a snapshot of a connection for the control plane.
type Stats struct {
	Name      string         `json:"name"`
	Bound     int            `json:"bound"`
	Sessions  []SessionStats `json:"sessions"`
	Queued    int            `json:"queued"`
	Submits   uint64         `json:"submits"`   // segments accepted by the SMSC
	Errors    uint64         `json:"errors"`    // error statuses other than throttling
	Throttles uint64         `json:"throttles"` // ESME_RTHROTTLED / ESME_RMSGQFUL
	Retries   uint64         `json:"retries"`
	Unknown   uint64         `json:"unknown"`
	RateLimit float64        `json:"rate_limit"` // current allowed segments/s; 0 = unlimited
	Rate      float64        `json:"rate"`       // accepted segments/s over the last second
}

// Stats returns a snapshot of the connection.
func (c *Connection) Stats() Stats {
	now := time.Now()
	st := Stats{
		Name: c.cfg.Name, Bound: int(c.bound.Load()),
		Submits: c.submits.Load(), Errors: c.errs.Load(), Throttles: c.throttles.Load(),
		Retries: c.retries.Load(), Unknown: c.unknown.Load(), Rate: c.okRate.rate(now),
	}
	if l := c.limiter.Limit(); l != rate.Inf {
		st.RateLimit = float64(l)
	}
	c.qmu.Lock()
	st.Queued = len(c.queue) + len(c.delayed)
	c.qmu.Unlock()
	c.smu.Lock()
	for s := range c.sessions {
		st.Sessions = append(st.Sessions, s.stats())
	}
	c.smu.Unlock()
	return st
}

var (
	_ dispatch.SMSSender        = (*Connection)(nil)
	_ dispatch.InFlightWindower = (*Connection)(nil)
	_ dispatch.NationalSender   = (*Connection)(nil)
)
