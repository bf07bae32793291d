package dispatch

import (
	"errors"
	"fmt"
	"hash/maphash"
	"maps"
	"math"
	"math/bits"
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
	recipientShardBits = 6
	recipientShards    = 1 << recipientShardBits
	// recipientMinSlots is the smallest recipient table of a shard (allocated on first use).
	recipientMinSlots = 64
	// burstWindow sizes each token bucket: a burst of at most 100 ms of traffic (at least
	// 1 unit), so that a limit holds over short windows too. A request of more units than
	// the burst (e.g. 3 segments at 1/s) is reserved in chunks.
	burstWindow = 0.1
	// senderIdle: a sender limiter unused this long is full again and is dropped.
	senderIdle = time.Minute
	// creditBatch bounds the units a bucket takes ahead from its rate.Limiter (see bucket).
	creditBatch = 32
	// creditTTL: credit unused this long goes back to its rate.Limiter before the next use,
	// so that held credit cannot add to a burst taken after an idle spell.
	creditTTL = int64(burstWindow * float64(time.Second))
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
	global     *bucket
	tenants    map[string]*bucket
	senders    map[string]*senderBucket
	nextSweep  time.Time
	recipients [recipientShards]recipientShard

	m limitMetrics
}

// bucket is one token bucket: a rate.Limiter, which keeps the account, plus a credit of
// units already taken from it and not yet handed out. Every use of a bucket holds
// Limiter.mu, so the credit needs no lock of its own.
//
// Why the credit: a rate.Limiter call takes the limiter's own mutex and does time.Time
// and float arithmetic (≈ 60 ns each, three per decision: most of a decision's cost).
// When the bucket plainly has tokens to spare, take takes up to creditBatch units more
// than asked in one AllowN and serves the next decisions from the credit with an integer
// subtraction. The units were really taken from the rate.Limiter, so no limit is ever
// exceeded; credit older than creditTTL goes back first, and a bucket that cannot give
// n+batch falls back to a plain AllowN(n), so near the limit the behaviour is exactly the
// rate.Limiter's.
type bucket struct {
	lim    *rate.Limiter
	burst  int
	batch  int   // units taken ahead; 0 for small buckets (burst < 4·creditBatch)
	credit int   // units taken from lim, not yet handed out
	since  int64 // Unix ns when credit was taken
}

type senderBucket struct {
	bucket
	last time.Time
}

type recipientShard struct {
	mu        sync.Mutex
	t         recipientTable
	nextSweep int64
}

type limitMetrics struct {
	immediate, delayed, capped prometheus.Counter
	wait                       prometheus.Histogram
}

// NewLimiter returns a limiter for cfg (validated by the caller; see Update) and registers
// its metrics with reg (nil: not registered; a second registration on one registry panics).
func NewLimiter(cfg LimitsConfig, reg prometheus.Registerer) *Limiter {
	l := &Limiter{seed: maphash.MakeSeed(), senders: map[string]*senderBucket{}}
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

// newBucket returns a full bucket of tps units per second, or nil for 0 (unlimited).
func newBucket(tps float64) *bucket {
	if tps <= 0 {
		return nil
	}
	b := &bucket{}
	b.init(tps)
	return b
}

func (b *bucket) init(tps float64) {
	burst := max(1, int(math.Ceil(tps*burstWindow)))
	*b = bucket{lim: rate.NewLimiter(rate.Limit(tps), burst), burst: burst}
	if burst >= 4*creditBatch {
		b.batch = min(creditBatch, burst/16)
	}
}

// take takes n units now, or none and returns false. t is now in Unix ns.
func (b *bucket) take(n int, now time.Time, t int64) bool {
	if b.credit > 0 {
		if age := t - b.since; age >= 0 && age < creditTTL && b.credit >= n {
			b.credit -= n
			return true
		}
		b.flush(now)
	}
	if b.batch > 0 && b.lim.AllowN(now, n+b.batch) {
		b.credit, b.since = b.batch, t
		return true
	}
	return b.lim.AllowN(now, n)
}

// flush gives the credit back to the rate.Limiter.
func (b *bucket) flush(now time.Time) {
	if b.credit > 0 {
		giveBack(b.lim, b.credit, now)
		b.credit = 0
	}
}

// put gives back n units taken with take or reserve.
func (b *bucket) put(n int, now time.Time) { giveBack(b.lim, n, now) }

// reserve reserves n units in chunks of at most the burst and returns the wait until the
// last is due.
func (b *bucket) reserve(n int, now time.Time) time.Duration {
	b.flush(now)
	var wait time.Duration
	for ; n > 0; n -= b.burst {
		wait = max(wait, b.lim.ReserveN(now, min(n, b.burst)).DelayFrom(now))
	}
	return wait
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
	tenants := make(map[string]*bucket, len(cfg.Tenants))
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
	t := now.UnixNano()
	if cfg.RecipientMax > 0 && recipient != "" {
		if err := l.takeRecipient(recipient, cfg, t); err != nil {
			l.m.capped.Inc()
			return 0, err
		}
	}
	l.mu.Lock()
	var buckets [3]*bucket
	k := 0
	if l.global != nil {
		buckets[k] = l.global
		k++
	}
	if len(l.tenants) > 0 {
		if b := l.tenants[tenant]; b != nil {
			buckets[k] = b
			k++
		}
	}
	if cfg.SenderTPS > 0 && sender != "" {
		buckets[k] = l.sender(sender, cfg.SenderTPS, now)
		k++
	}
	// Fast path, no allocation: every bucket has the units now.
	took := 0
	for took < k && buckets[took].take(n, now, t) {
		took++
	}
	if took < k {
		for _, b := range buckets[:took] {
			b.put(n, now)
		}
		for _, b := range buckets[:k] {
			wait = max(wait, b.reserve(n, now))
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
		s.t.cancel(h)
		s.mu.Unlock()
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if l.global != nil {
		l.global.put(n, now)
	}
	if b := l.tenants[tenant]; b != nil {
		b.put(n, now)
	}
	if b := l.senders[sender]; b != nil && cfg.SenderTPS > 0 {
		b.put(n, now)
	}
}

// giveBack returns n tokens to b. x/time/rate has no such call; a reservation of -n
// tokens does exactly that (the bucket is capped at its burst on its next use), and
// TestGiveBackRestoresTokens pins the behaviour.
func giveBack(b *rate.Limiter, n int, now time.Time) { b.ReserveN(now, -n) }

// sender returns the bucket of sender, creating it. l.mu held.
func (l *Limiter) sender(sender string, tps float64, now time.Time) *bucket {
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
		b = &senderBucket{}
		b.init(tps)
		l.senders[sender] = b
	}
	b.last = now
	return &b.bucket
}

// hash is the recipient's key in the recipient tables; never 0 (the empty slot).
func (l *Limiter) hash(s string) uint64 { return max(maphash.String(l.seed, s), 1) }

// takeRecipient counts one message to recipient at t (Unix ns), or returns ErrRecipientCap.
func (l *Limiter) takeRecipient(recipient string, cfg *LimitsConfig, t int64) error {
	h := l.hash(recipient)
	s := &l.recipients[h%recipientShards]
	win := int64(cfg.RecipientWindow)
	s.mu.Lock()
	if t >= s.nextSweep {
		// Drop expired windows and resize to the live ones: memory follows the recipients
		// of the current window.
		s.t.rehash(t, win)
		s.nextSweep = t + max(win/4, int64(time.Second))
	}
	start, got, ok := s.t.take(h, t, win, cfg.RecipientMax)
	s.mu.Unlock()
	if !ok {
		return fmt.Errorf("%w: %s already got %d messages since %s (recipient_max %d per %s)",
			ErrRecipientCap, recipient, got, time.Unix(0, start).UTC().Format(time.RFC3339), cfg.RecipientMax, cfg.RecipientWindow)
	}
	return nil
}

// recipientTable counts messages per recipient of one shard: an open-addressing table
// (linear probing) keyed by the recipient's 64-bit hash, so a decision costs one probe
// into a flat slice (usually one cache line) instead of a map lookup. The caller holds
// the shard's lock.
//
// A slot whose window has expired stays in its probe chain (so no tombstones are needed)
// and is reused by the next new key whose chain passes it. The table is rebuilt when 7/8
// of its slots are in use (a dense table: the decision's cost is the cache miss on its
// slot, so footprint matters more than the longer chains of new keys), and rehash, also
// called periodically, drops expired windows and sizes the table to 3/2 of the live ones
// (a multiple of recipientMinSlots, not a power of two, so that the density stays between
// 2/3 and 7/8 whatever the number of recipients): its memory is about 1.5 slots of 24
// bytes per recipient of the current window, plus the expired ones of the last sweep period.
type recipientTable struct {
	slots []recipientSlot // 0 before first use
	used  int             // slots with a key (live or expired)
}

// recipientSlot counts the messages to one recipient in a fixed window that starts at
// the first message after the previous window ended.
type recipientSlot struct {
	key   uint64 // recipient hash; 0: empty
	start int64  // window start, Unix ns
	n     int32
}

// home is the first slot of h's probe chain: h scaled to the table (the high bits; the
// low ones chose the shard).
func (r *recipientTable) home(h uint64) int {
	hi, _ := bits.Mul64(h, uint64(len(r.slots)))
	return int(hi)
}

// next is the slot after i in a probe chain.
func (r *recipientTable) next(i int) int {
	if i++; i == len(r.slots) {
		return 0
	}
	return i
}

// take counts one message to h at t in a window of win ns if fewer than limit are counted,
// and returns the window's start and count before this message.
func (r *recipientTable) take(h uint64, t, win int64, limit int) (start int64, n int32, ok bool) {
	if r.used >= len(r.slots)*7/8 {
		r.rehash(t, win)
	}
	free := -1
	for i := r.home(h); ; i = r.next(i) {
		s := &r.slots[i]
		if s.key == h {
			if t-s.start >= win {
				s.start, s.n = t, 0
			}
			if int(s.n) >= limit {
				return s.start, s.n, false
			}
			s.n++
			return s.start, s.n - 1, true
		}
		if s.key == 0 {
			if free < 0 {
				free = i
				r.used++
			}
			break
		}
		if free < 0 && t-s.start >= win {
			free = i // expired: reuse unless h is further down the chain
		}
	}
	if limit < 1 {
		if r.slots[free].key == 0 {
			r.used--
		}
		return t, 0, false
	}
	r.slots[free] = recipientSlot{key: h, start: t, n: 1}
	return t, 0, true
}

// cancel uncounts one message to h, if any is counted.
func (r *recipientTable) cancel(h uint64) {
	if len(r.slots) == 0 {
		return
	}
	for i := r.home(h); r.slots[i].key != 0; i = r.next(i) {
		if s := &r.slots[i]; s.key == h {
			if s.n > 0 {
				s.n--
			}
			return
		}
	}
}

// rehash drops the windows expired at t and moves the live ones into a table of about 3/2
// their number of slots.
func (r *recipientTable) rehash(t, win int64) {
	live := 0
	for i := range r.slots {
		if s := &r.slots[i]; s.key != 0 && t-s.start < win {
			live++
		}
	}
	size := max(recipientMinSlots, (live*3/2+recipientMinSlots-1)/recipientMinSlots*recipientMinSlots)
	old := r.slots
	if size == len(old) && live == r.used {
		return // nothing expired, size right
	}
	r.slots, r.used = make([]recipientSlot, size), live
	for _, s := range old {
		if s.key == 0 || t-s.start >= win {
			continue
		}
		i := r.home(s.key)
		for r.slots[i].key != 0 {
			i = r.next(i)
		}
		r.slots[i] = s
	}
}
