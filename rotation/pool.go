package rotation

import (
	"fmt"
	"math"
	"sort"
	"time"
)

// Strategies.
const (
	stratRoundRobin = iota
	stratWeighted
	stratLeastUsed
	stratSticky
	stratLocal
)

// Where a number is: exactly one of these at any time.
const (
	whereNone  = iota // disabled: nowhere
	whereAvail        // usable now: in avail (and the strategy heap)
	whereTimer        // waiting for a cooldown, cap or rest to end: in the timer heap
	whereBench        // on probation, sitting out picks: in bench
)

const (
	nsHour = int64(time.Hour)
	nsDay  = 24 * nsHour
	never  = math.MaxInt64
	// passUnit is the virtual time one pick of a weight-1 number costs (weighted).
	passUnit = 1 << 20
)

type number struct {
	id              string
	weight          uint32
	maxHour, maxDay int32
	disabled        bool
	state           State // active, quarantined, probation or disabled; never resting
	where           uint8
	hour, day       int64 // the UTC hour and day the counts are of
	hourUses        int32
	dayUses         int32
	lastUse         int64 // unix ns; 0: never
	useSeq          uint64
	until           int64  // timer deadline, or end of quarantine
	pass, stride    uint64 // weighted
	benchAt         uint64 // probation: back when the pool's pick count reaches it
	probN, probOK   int32
	win             window
}

// Pool is one pool of numbers: it picks a number for each request within caps, cooldowns
// and states, and tracks per-number health.
//
// A Pool is not safe for concurrent use: the caller serialises calls (one mutex per pool).
// It does no I/O and never reads the clock: now is an argument of every method, and use
// counts that must survive restarts are loaded with SetUses and saved by the caller.
type Pool struct {
	cfg      PoolConfig
	health   HealthConfig
	strategy uint8
	cooldown int64
	nums     []number
	index    map[string]int32

	avail  bitset
	nAvail int
	timer  iheap
	sheap  iheap // weighted and least_used
	bench  []int32

	cursor int    // round robin
	vtime  uint64 // weighted: pass of the last pick
	picks  uint64
	seq    uint64
	day    int64 // least_used: the day the heap keys are of
	ring   *ring
	pres   *presence
	win    window
}

// New builds a pool from cfg, every number unused and active (disabled ones disabled).
// Numbers are kept in number order, whatever the order of cfg.Numbers: round robin goes
// through them in that order.
func New(cfg PoolConfig) (*Pool, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: pool %q: %w", ErrInvalidPool, cfg.Name, err)
	}
	cfg.Numbers = append([]NumberConfig(nil), cfg.Numbers...)
	sort.Slice(cfg.Numbers, func(a, b int) bool { return cfg.Numbers[a].Number < cfg.Numbers[b].Number })
	p := &Pool{
		cfg:      cfg,
		health:   cfg.Health.WithDefaults(),
		cooldown: int64(cfg.Cooldown),
		nums:     make([]number, len(cfg.Numbers)),
		index:    make(map[string]int32, len(cfg.Numbers)),
		avail:    newBitset(len(cfg.Numbers)),
	}
	p.strategy = map[string]uint8{"round_robin": stratRoundRobin, "weighted": stratWeighted,
		"least_used": stratLeastUsed, "sticky": stratSticky, "local_presence": stratLocal}[cfg.Strategy]
	p.timer = newHeap(len(p.nums))
	if p.strategy == stratWeighted || p.strategy == stratLeastUsed {
		p.sheap = newHeap(len(p.nums))
	}
	for i, nc := range cfg.Numbers {
		w := nc.Weight
		if w == 0 {
			w = 1
		}
		n := &p.nums[i]
		*n = number{id: nc.Number, weight: uint32(w), maxHour: int32(nc.MaxPerHour),
			maxDay: int32(nc.MaxPerDay), disabled: nc.Disabled,
			stride: passUnit / uint64(w)}
		n.pass = n.stride / 2
		if nc.Disabled {
			n.state = StateDisabled
		}
		p.index[nc.Number] = int32(i)
	}
	switch p.strategy {
	case stratSticky:
		p.ring = newRing(p.nums)
	case stratLocal:
		p.pres = newPresence(p.nums)
	}
	for i := range p.nums {
		p.place(int32(i), 0)
	}
	return p, nil
}

// Config returns the pool's configuration (numbers in number order).
func (p *Pool) Config() PoolConfig { return p.cfg }

// Len is the number of numbers, disabled ones included.
func (p *Pool) Len() int { return len(p.nums) }

// Pick returns the number to use for recipient to at now and counts one use of it.
// When no number may be used now it returns ErrExhausted and the instant the earliest
// number becomes usable (zero if none ever will without a configuration change).
// It does not allocate.
func (p *Pool) Pick(to string, now time.Time) (number string, retryAt time.Time, err error) {
	t := now.UnixNano()
	p.release(t)
	if p.strategy == stratLeastUsed {
		if d := t / nsDay; d != p.day {
			p.newDay(t)
		}
	}
	i := p.choose(to)
	if i < 0 && len(p.bench) > 0 {
		// Probation limits a share only while others can take the traffic.
		for len(p.bench) > 0 {
			j := p.bench[len(p.bench)-1]
			p.nums[j].benchAt = 0
			p.place(j, t)
		}
		i = p.choose(to)
	}
	if i < 0 {
		return "", p.retryAt(), ErrExhausted
	}
	p.use(i, t)
	return p.nums[i].id, time.Time{}, nil
}

func (p *Pool) retryAt() time.Time {
	if len(p.timer.items) == 0 {
		return time.Time{}
	}
	return time.Unix(0, p.nums[p.timer.top()].until).UTC()
}

// release makes usable every number whose wait is over.
func (p *Pool) release(t int64) {
	for len(p.timer.items) > 0 {
		if int64(p.timer.topKey()) > t {
			break
		}
		p.place(p.timer.top(), t)
	}
	for k := 0; k < len(p.bench); {
		i := p.bench[k]
		if p.nums[i].benchAt <= p.picks {
			p.place(i, t) // removes bench[k]
			continue
		}
		k++
	}
}

// newDay re-keys least_used's heap: every count of the previous day is void.
func (p *Pool) newDay(t int64) {
	p.day = t / nsDay
	for i := range p.nums {
		p.nums[i].roll(t)
	}
	p.sheap.rekey(p.usesKey)
}

func (n *number) roll(t int64) {
	if h := t / nsHour; h != n.hour {
		n.hour, n.hourUses = h, 0
	}
	if d := t / nsDay; d != n.day {
		n.day, n.dayUses = d, 0
	}
}

// usable reports whether number i may be used at t by its counts and cooldown, or else
// until when it may not.
func (p *Pool) usable(i int32, t int64) (bool, int64) {
	n := &p.nums[i]
	n.roll(t)
	until := int64(0)
	if n.maxHour > 0 && n.hourUses >= n.maxHour {
		until = (n.hour + 1) * nsHour
	}
	if n.maxDay > 0 && n.dayUses >= n.maxDay {
		until = max(until, (n.day+1)*nsDay)
	}
	if p.cooldown > 0 && n.lastUse != 0 && n.lastUse+p.cooldown > t {
		until = max(until, n.lastUse+p.cooldown)
	}
	return until <= t, until
}

// place puts number i where its state and counts say it belongs at t.
func (p *Pool) place(i int32, t int64) {
	p.unplace(i)
	n := &p.nums[i]
	if n.state == StateQuarantined && t >= n.until {
		n.state, n.probN, n.probOK = StateProbation, 0, 0
		n.win.reset()
	}
	switch n.state {
	case StateDisabled:
		return
	case StateQuarantined:
		p.toTimer(i, n.until)
		return
	}
	if ok, until := p.usable(i, t); !ok {
		p.toTimer(i, until)
		return
	}
	if n.state == StateProbation && n.benchAt > p.picks {
		n.where = whereBench
		p.bench = append(p.bench, i)
		return
	}
	n.where = whereAvail
	p.avail.set(i)
	p.nAvail++
	switch p.strategy {
	case stratWeighted:
		if n.pass < p.vtime {
			n.pass = p.vtime // no credit for the time away: no burst on return
		}
		p.sheap.push(i, n.pass)
	case stratLeastUsed:
		p.sheap.push(i, p.usesKey(i))
	}
}

func (p *Pool) toTimer(i int32, until int64) {
	n := &p.nums[i]
	n.where, n.until = whereTimer, until
	p.timer.push(i, uint64(until))
}

func (p *Pool) unplace(i int32) {
	n := &p.nums[i]
	switch n.where {
	case whereAvail:
		p.avail.clear(i)
		p.nAvail--
		if p.sheap.pos != nil && p.sheap.has(i) {
			p.sheap.remove(i)
		}
	case whereTimer:
		p.timer.remove(i)
	case whereBench:
		for k, j := range p.bench {
			if j == i {
				p.bench[k] = p.bench[len(p.bench)-1]
				p.bench = p.bench[:len(p.bench)-1]
				break
			}
		}
	}
	n.where = whereNone
}

// usesKey orders least_used: fewest uses today, then least recently used.
func (p *Pool) usesKey(i int32) uint64 {
	n := &p.nums[i]
	return uint64(n.dayUses)<<40 | n.useSeq&(1<<40-1)
}

// choose returns a usable number for to by the pool's strategy, -1 if none.
func (p *Pool) choose(to string) int32 {
	if p.nAvail == 0 {
		return -1
	}
	n := len(p.nums)
	switch p.strategy {
	case stratWeighted, stratLeastUsed:
		return p.sheap.top()
	case stratSticky:
		h := recipientHash(to)
		pos := p.ring.lookup(h)
		for k := 0; k < ringProbe; k++ {
			if o := p.ring.owner(pos); p.avail.has(o) {
				return o
			}
			if pos++; pos == len(p.ring.points) {
				pos = 0
			}
		}
		return int32(p.avail.nextWrap(0, n, int(h%uint32(n))))
	case stratLocal:
		area, country := p.pres.match(to)
		for _, g := range [2]int32{area, country} {
			if g < 0 {
				continue
			}
			gr := &p.pres.groups[g]
			if i := p.avail.nextWrap(gr.lo, gr.hi, gr.cursor); i >= 0 {
				gr.cursor = i + 1
				return int32(i)
			}
		}
	}
	i := p.avail.nextWrap(0, n, p.cursor)
	p.cursor = i + 1
	return int32(i)
}

// use counts one use of available number i at t.
func (p *Pool) use(i int32, t int64) {
	n := &p.nums[i]
	n.roll(t)
	n.hourUses++
	n.dayUses++
	n.lastUse = t
	p.seq++
	p.picks++
	n.useSeq = p.seq
	if p.strategy == stratWeighted {
		p.vtime = n.pass
		n.pass += n.stride
	}
	ok, until := p.usable(i, t)
	switch {
	case !ok:
		p.unplace(i)
		p.toTimer(i, until)
	case n.state == StateProbation:
		// Sit out until the others have had 1/share turns each.
		p.unplace(i)
		n.benchAt = p.picks + uint64(math.Ceil(float64(p.nAvail+1)/p.health.ProbationShare))
		n.where = whereBench
		p.bench = append(p.bench, i)
	case p.strategy == stratWeighted:
		p.sheap.setKey(i, n.pass)
	case p.strategy == stratLeastUsed:
		p.sheap.setKey(i, p.usesKey(i))
	}
}

// SetUses sets the counts of number for the hour and the day of now, e.g. loaded from
// storage at start, so that caps hold across restarts.
func (p *Pool) SetUses(number string, hour, day int, now time.Time) error {
	i, ok := p.index[number]
	if !ok {
		return fmt.Errorf("%w: %q", ErrUnknownNumber, number)
	}
	t := now.UnixNano()
	n := &p.nums[i]
	n.roll(t)
	n.hourUses, n.dayUses = int32(hour), int32(day)
	p.place(i, t)
	return nil
}

// Inherit carries over from old, the pool this one replaces, the counts, cooldowns,
// health and states of the numbers present in both (a number disabled or re-enabled by
// the new configuration takes the new setting).
func (p *Pool) Inherit(old *Pool, now time.Time) {
	t := now.UnixNano()
	p.win = old.win
	p.seq, p.picks = old.seq, old.picks
	for i := range p.nums {
		n := &p.nums[i]
		j, ok := old.index[n.id]
		if !ok {
			continue
		}
		o := &old.nums[j]
		n.hour, n.day, n.hourUses, n.dayUses = o.hour, o.day, o.hourUses, o.dayUses
		n.lastUse, n.useSeq, n.win = o.lastUse, o.useSeq, o.win
		n.probN, n.probOK, n.benchAt = o.probN, o.probOK, o.benchAt
		if !n.disabled && o.state != StateDisabled {
			n.state = o.state
			if o.state == StateQuarantined {
				n.until = o.until
			}
		}
	}
	if p.strategy == stratLeastUsed {
		p.day = t / nsDay
	}
	for i := range p.nums {
		p.place(int32(i), t)
	}
}

// Record feeds the outcome of one use of number back: success is an answered call or a
// delivered SMS. A number whose success rate over the health window is below Ratio × the
// rest of the pool's (both with at least MinSamples outcomes) is quarantined for Rest,
// then comes back on probation; after ProbationSamples outcomes on probation it is active
// again if healthy, else quarantined again. It returns the number's state afterwards and
// whether it changed.
func (p *Pool) Record(number string, success bool, now time.Time) (State, bool, error) {
	i, ok := p.index[number]
	if !ok {
		return 0, false, fmt.Errorf("%w: %q", ErrUnknownNumber, number)
	}
	n := &p.nums[i]
	t := now.UnixNano()
	h := &p.health
	if h.Off || n.state == StateDisabled {
		return p.stateOf(n), false, nil
	}
	e := t / max(int64(h.Window)/windowBuckets, 1)
	n.win.add(e, success)
	p.win.add(e, success)
	if n.state == StateQuarantined {
		return n.state, false, nil
	}
	nok, nn := n.win.sum(e)
	pok, pn := p.win.sum(e)
	restOK, restN := pok-nok, pn-nn
	switch n.state {
	case StateProbation:
		n.probN++
		if success {
			n.probOK++
		}
		if int(n.probN) < h.ProbationSamples {
			return n.state, false, nil
		}
		if restN < h.MinSamples || float64(n.probOK)/float64(n.probN) >= h.Ratio*float64(restOK)/float64(restN) {
			n.state, n.benchAt = StateActive, 0
			p.place(i, t)
			return n.state, true, nil
		}
	case StateActive:
		if nn < h.MinSamples || restN < h.MinSamples ||
			float64(nok)/float64(nn) >= h.Ratio*float64(restOK)/float64(restN) {
			return n.state, false, nil
		}
	}
	n.state, n.until = StateQuarantined, t+int64(h.Rest)
	n.win.reset()
	p.place(i, t)
	return n.state, true, nil
}

func (p *Pool) stateOf(n *number) State {
	switch {
	case n.state != StateActive:
		return n.state
	case n.where != whereAvail:
		return StateResting
	}
	return StateActive
}

// View returns the state of every number at now (number order). It first lets numbers
// whose wait is over become usable, as a Pick at now would.
func (p *Pool) View(now time.Time) []NumberView {
	t := now.UnixNano()
	p.release(t)
	e := t / max(int64(p.health.Window)/windowBuckets, 1)
	out := make([]NumberView, len(p.nums))
	for i := range p.nums {
		n := &p.nums[i]
		v := NumberView{Number: n.id, State: p.stateOf(n), Weight: int(n.weight)}
		if n.hour == t/nsHour {
			v.UsesHour = int(n.hourUses)
		}
		if n.day == t/nsDay {
			v.UsesDay = int(n.dayUses)
		}
		if n.where == whereTimer && n.until > t {
			u := time.Unix(0, n.until).UTC()
			v.Until = &u
		}
		v.Successes, v.Samples = n.win.sum(e)
		if v.Samples > 0 {
			v.SuccessRate = float64(v.Successes) / float64(v.Samples)
		}
		out[i] = v
	}
	return out
}

// Health returns the pool-wide outcome counts of the health window at now.
func (p *Pool) Health(now time.Time) PoolHealth {
	e := now.UnixNano() / max(int64(p.health.Window)/windowBuckets, 1)
	var h PoolHealth
	h.Successes, h.Samples = p.win.sum(e)
	if h.Samples > 0 {
		h.SuccessRate = float64(h.Successes) / float64(h.Samples)
	}
	return h
}

// CountStates adds the number of numbers in each state (indexed by State) at now to into.
func (p *Pool) CountStates(now time.Time, into *[StateDisabled + 1]int) {
	p.release(now.UnixNano())
	for i := range p.nums {
		into[p.stateOf(&p.nums[i])]++
	}
}
