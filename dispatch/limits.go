package dispatch

import (
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

// ErrRecipientCap means the recipient already got RecipientMax messages in the current window
// (event reason recipient_cap).
var ErrRecipientCap = errors.New("dispatch: recipient cap reached")

// ReasonRecipientCap is the event reason of a request stopped by the per-recipient cap.
const ReasonRecipientCap = "recipient_cap"

const (
	recipientShards = 64
	// burstWindow sizes each token bucket: a burst of at most 100 ms of traffic (at least
	// 1 unit), so that a limit holds over short windows too. A request of more units than
	// the burst (e.g. 3 segments at 1/s) is reserved in chunks.
	burstWindow = 0.1
	// senderIdle: a sender limiter unused this long is full again and is dropped.
	senderIdle = time.Minute
)

// Limiter enforces the rate limits of the limits section: global, per tenant and per
// sender number, in segments (SMS) or calls (voice) per second, on token buckets of
// golang.org/x/time/rate; and the per-recipient frequency cap. Per-connection rates are
// not here: each SMSC connection enforces its own. Safe for concurrent use.
//
// It never blocks and never reads the clock: now is an argument.
type Limiter struct {
	cfg  atomic.Pointer[LimitsConfig]
	seed maphash.Seed

	mu         sync.Mutex // guards the buckets below; serialises multi-bucket decisions
	global     *rate.Limiter
	tenants    map[string]*rate.Limiter
	senders    map[string]*senderBucket
	nextSweep  time.Time
	recipients [recipientShards]recipientShard

	m limitMetrics
}

type senderBucket struct {
	lim  *rate.Limiter
	last time.Time
}

type recipientShard struct {
	mu        sync.Mutex
	m         map[uint64]recipientWindow
	nextSweep int64
}

// recipientWindow counts the messages to one recipient in a fixed window that starts at
// the first message after the previous window ended.
type recipientWindow struct {
	start int64
	n     int32
}

type limitMetrics struct {
	immediate, delayed, capped prometheus.Counter
	wait                       prometheus.Histogram
}

// NewLimiter returns a limiter for cfg (validated by the caller; see Update) and registers
// its metrics with reg (nil: not registered; a second registration on one registry panics).
func NewLimiter(cfg LimitsConfig, reg prometheus.Registerer) *Limiter {
	l := &Limiter{seed: maphash.MakeSeed(), senders: map[string]*senderBucket{}}
	for i := range l.recipients {
		l.recipients[i].m = map[uint64]recipientWindow{}
	}
	decisions := prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendcore_limits_decisions_total",
		Help: "Rate-limit decisions, by result: immediate, delayed (the caller must wait), recipient_cap.",
	}, []string{"result"})
	l.m = limitMetrics{
		immediate: decisions.WithLabelValues("immediate"),
		delayed:   decisions.WithLabelValues("delayed"),
		capped:    decisions.WithLabelValues(ReasonRecipientCap),
		wait: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendcore_limits_wait_seconds",
			Help:    "Waits imposed by rate limits on delayed decisions.",
			Buckets: prometheus.ExponentialBuckets(0.001, 4, 10),
		}),
	}
	if reg != nil {
		reg.MustRegister(decisions, l.m.wait)
	}
	l.apply(cfg)
	return l
}

func newBucket(tps float64) *rate.Limiter {
	if tps <= 0 {
		return nil
	}
	return rate.NewLimiter(rate.Limit(tps), max(1, int(math.Ceil(tps*burstWindow))))
}

// apply installs cfg: buckets whose rate changed start afresh (full), others keep their
// state. Recipient windows are kept and judged by the new cap from the next decision on.
func (l *Limiter) apply(cfg LimitsConfig) {
	cfg.Tenants = maps.Clone(cfg.Tenants)
	l.mu.Lock()
	defer l.mu.Unlock()
	old := l.cfg.Load()
	if old == nil || old.GlobalTPS != cfg.GlobalTPS {
		l.global = newBucket(cfg.GlobalTPS)
	}
	tenants := make(map[string]*rate.Limiter, len(cfg.Tenants))
	for t, tps := range cfg.Tenants {
		if old != nil && old.Tenants[t] == tps && l.tenants[t] != nil {
			tenants[t] = l.tenants[t]
		} else if b := newBucket(tps); b != nil {
			tenants[t] = b
		}
	}
	l.tenants = tenants
	if old == nil || old.SenderTPS != cfg.SenderTPS {
		clear(l.senders)
	}
	l.cfg.Store(&cfg)
}

// Update validates cfg and applies it live (PATCH /v1/limits).
func (l *Limiter) Update(cfg LimitsConfig) error {
	if err := cfg.Validate(); err != nil {
		return fmt.Errorf("dispatch: limits: %w", err)
	}
	l.apply(cfg)
	return nil
}

// Config returns the limits in force.
func (l *Limiter) Config() LimitsConfig {
	c := *l.cfg.Load()
	c.Tenants = maps.Clone(c.Tenants)
	return c
}

// Reserve takes n units (segments or calls; n < 1 counts as 1) of the global, tenant and
// sender limits, and one message of recipient's cap, at now. It never blocks: it returns
// how long the caller must wait before sending (0: send now). The units stay reserved for
// the caller; one that does not send after all (e.g. holds the request instead of waiting)
// gives them back with Cancel.
//
// It returns ErrRecipientCap, reserving nothing, when recipient already got RecipientMax
// messages in its current window. An empty sender or recipient skips that limit.
func (l *Limiter) Reserve(tenant, sender, recipient string, n int, now time.Time) (wait time.Duration, err error) {
	n = max(n, 1)
	cfg := l.cfg.Load()
	if cfg.RecipientMax > 0 && recipient != "" {
		if err := l.takeRecipient(recipient, cfg, now); err != nil {
			l.m.capped.Inc()
			return 0, err
		}
	}
	l.mu.Lock()
	var buckets [3]*rate.Limiter
	k := 0
	if l.global != nil {
		buckets[k] = l.global
		k++
	}
	if b := l.tenants[tenant]; b != nil {
		buckets[k] = b
		k++
	}
	if cfg.SenderTPS > 0 && sender != "" {
		buckets[k] = l.sender(sender, cfg.SenderTPS, now)
		k++
	}
	// Fast path, no allocation: every bucket has the units now.
	took := 0
	for took < k && buckets[took].AllowN(now, n) {
		took++
	}
	if took < k {
		for _, b := range buckets[:took] {
			giveBack(b, n, now)
		}
		for _, b := range buckets[:k] {
			wait = max(wait, reserveChunks(b, n, now))
		}
	}
	l.mu.Unlock()
	if wait > 0 {
		l.m.delayed.Inc()
		l.m.wait.Observe(wait.Seconds())
	} else {
		l.m.immediate.Inc()
	}
	return wait, nil
}

// Cancel gives back a reservation of Reserve with the same arguments that the caller
// will not use: the units to each bucket (as far as they are not already full) and the
// message to the recipient's window.
func (l *Limiter) Cancel(tenant, sender, recipient string, n int, now time.Time) {
	n = max(n, 1)
	cfg := l.cfg.Load()
	if cfg.RecipientMax > 0 && recipient != "" {
		h := l.hash(recipient)
		s := &l.recipients[h%recipientShards]
		s.mu.Lock()
		if w, ok := s.m[h]; ok && w.n > 0 {
			w.n--
			s.m[h] = w
		}
		s.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.global != nil {
		giveBack(l.global, n, now)
	}
	if b := l.tenants[tenant]; b != nil {
		giveBack(b, n, now)
	}
	if b := l.senders[sender]; b != nil && cfg.SenderTPS > 0 {
		giveBack(b.lim, n, now)
	}
}

// giveBack returns n tokens to b. x/time/rate has no such call; a reservation of -n
// tokens does exactly that (the bucket is capped at its burst on its next use), and
// TestGiveBackRestoresTokens pins the behaviour.
func giveBack(b *rate.Limiter, n int, now time.Time) { b.ReserveN(now, -n) }

// reserveChunks reserves n tokens of b in chunks of at most its burst and returns the wait
// until the last is due.
func reserveChunks(b *rate.Limiter, n int, now time.Time) time.Duration {
	var wait time.Duration
	for burst := b.Burst(); n > 0; n -= burst {
		wait = max(wait, b.ReserveN(now, min(n, burst)).DelayFrom(now))
	}
	return wait
}

// sender returns the bucket of sender, creating it. l.mu held.
func (l *Limiter) sender(sender string, tps float64, now time.Time) *rate.Limiter {
	b := l.senders[sender]
	if b == nil {
		if now.After(l.nextSweep) {
			for k, v := range l.senders {
				if now.Sub(v.last) > senderIdle {
					delete(l.senders, k)
				}
			}
			l.nextSweep = now.Add(senderIdle)
		}
		b = &senderBucket{lim: newBucket(tps)}
		l.senders[sender] = b
	}
	b.last = now
	return b.lim
}

func (l *Limiter) hash(s string) uint64 { return maphash.String(l.seed, s) }

// takeRecipient counts one message to recipient, or returns ErrRecipientCap.
func (l *Limiter) takeRecipient(recipient string, cfg *LimitsConfig, now time.Time) error {
	h := l.hash(recipient)
	s := &l.recipients[h%recipientShards]
	t, win := now.UnixNano(), int64(cfg.RecipientWindow)
	s.mu.Lock()
	if t >= s.nextSweep {
		for k, w := range s.m {
			if t-w.start >= win {
				delete(s.m, k)
			}
		}
		s.nextSweep = t + max(win/4, int64(time.Second))
	}
	w, ok := s.m[h]
	if !ok || t-w.start >= win {
		w = recipientWindow{start: t}
	}
	if int(w.n) >= cfg.RecipientMax {
		s.mu.Unlock()
		return fmt.Errorf("%w: %s already got %d messages since %s (recipient_max %d per %s)",
			ErrRecipientCap, recipient, w.n, time.Unix(0, w.start).UTC().Format(time.RFC3339), cfg.RecipientMax, cfg.RecipientWindow)
	}
	w.n++
	s.m[h] = w
	s.mu.Unlock()
	return nil
}
