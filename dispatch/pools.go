package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendcore/sendcore/rotation"
)

// Pool registry errors. The pipeline maps them to event reasons.
var (
	// ErrUnknownPool: no pool of that name for the request's tenant and channel
	// (reason unknown_pool).
	ErrUnknownPool = errors.New("dispatch: unknown pool")
	// ErrPoolExhausted: no number of the pool may be used now (reason pool_exhausted).
	ErrPoolExhausted = errors.New("dispatch: pool exhausted")
)

// ReasonPoolExhausted is the event reason of a request failed on an exhausted pool.
const ReasonPoolExhausted = "pool_exhausted"

// SettingsPools is the Settings namespace pools are persisted in: key = pool name, value =
// the pool's JSON configuration, or "null" for a pool of the configuration file deleted
// through the control plane.
const SettingsPools = "pools"

// PoolView is a pool as GET /v1/pools shows it: its configuration, where it comes from,
// its pool-wide health and the live state of each number.
type PoolView struct {
	rotation.PoolConfig
	// Source is "config" (configuration file) or "settings" (control plane, persisted).
	Source string `json:"source"`
	// Health is the pool-wide outcome count in the health window.
	Health rotation.PoolHealth `json:"health"`
	// State has one entry per number: uses this hour and today, state, health.
	State []rotation.NumberView `json:"state"`
}

// Pools is the live registry of rotation pools the pipeline picks sender numbers from.
// Safe for concurrent use.
//
// Pools from the configuration file are loaded first; pools persisted in Settings (written
// by Put) override them by name and add to them, and a tombstone left by Delete removes a
// configuration pool for good, so that control-plane changes survive restarts.
//
// Use counts go to UsageCounters on every pick (synchronously, outside the pool's lock) and
// are loaded from it when a pool or a number appears, so that hourly and daily caps hold
// across restarts. Within a process, caps hold under any concurrency: the check and the
// count happen under the pool's lock. A crash can lose the counts of picks whose AddUse had
// not returned (at most the picks in flight).
type Pools struct {
	settings Settings      // nil: nothing persisted
	counters UsageCounters // nil: counts in memory only
	log      *slog.Logger
	m        poolMetrics

	writeMu sync.Mutex // serialises Put and Delete
	pools   atomic.Pointer[map[string]*poolEntry]
	fromCfg map[string]bool
	clock   func() time.Time // the instant of loads and views; time.Now outside tests
}

type poolEntry struct {
	mu      sync.Mutex // guards p and retired
	p       *rotation.Pool
	retired bool // replaced or deleted: look the pool up again
	cfg     rotation.PoolConfig
	tenant  string
	source  string
	ok      prometheus.Counter
	exh     prometheus.Counter
}

type poolMetrics struct {
	picks       *prometheus.CounterVec // pool, result
	quarantines *prometheus.CounterVec // pool
	counterErrs prometheus.Counter
}

// NewPools builds the registry from the configuration file's pools and those persisted in
// settings, loads their use counts from counters (both may be nil: nothing persisted) and
// registers its metrics with reg (nil: not registered). A bad pool anywhere is an error
// naming it.
func NewPools(cfgs []rotation.PoolConfig, settings Settings, counters UsageCounters, log *slog.Logger, reg prometheus.Registerer) (*Pools, error) {
	return newPools(cfgs, settings, counters, log, reg, time.Now)
}

func newPools(cfgs []rotation.PoolConfig, settings Settings, counters UsageCounters, log *slog.Logger, reg prometheus.Registerer, clock func() time.Time) (*Pools, error) {
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	p := &Pools{settings: settings, counters: counters, log: log, fromCfg: map[string]bool{}, clock: clock}
	p.m = poolMetrics{
		picks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_rotation_picks_total",
			Help: "Number picks from rotation pools, by pool and result (ok, exhausted, unknown_pool).",
		}, []string{"pool", "result"}),
		quarantines: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_rotation_quarantines_total",
			Help: "Numbers quarantined for a success rate well below their pool's, by pool.",
		}, []string{"pool"}),
		counterErrs: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_rotation_counter_errors_total",
			Help: "Use counts that could not be written to or read from storage.",
		}),
	}
	if reg != nil {
		states := stateCollector{p: p, desc: prometheus.NewDesc("sendcore_rotation_numbers",
			"Numbers of each rotation pool by state (active, resting, quarantined, probation, disabled).",
			[]string{"pool", "state"}, nil)}
		for _, c := range []prometheus.Collector{p.m.picks, p.m.quarantines, p.m.counterErrs, states} {
			if err := reg.Register(c); err != nil {
				return nil, fmt.Errorf("dispatch: pools metrics: %w", err)
			}
		}
	}
	now := clock()
	m := map[string]*poolEntry{}
	for i, c := range cfgs {
		if m[c.Name] != nil {
			return nil, fmt.Errorf("%w: pools[%d].name: %q listed twice", rotation.ErrInvalidPool, i, c.Name)
		}
		e, err := p.build(c, "config", nil, now)
		if err != nil {
			return nil, fmt.Errorf("pools[%d]: %w", i, err)
		}
		m[c.Name] = e
		p.fromCfg[c.Name] = true
	}
	if settings != nil {
		err := settings.ListSettings(SettingsPools, func(key string, value []byte) error {
			if string(value) == "null" {
				delete(m, key)
				return nil
			}
			var c rotation.PoolConfig
			if err := json.Unmarshal(value, &c); err != nil {
				return fmt.Errorf("%w: settings pools/%s: %v", rotation.ErrInvalidPool, key, err)
			}
			if c.Name != key {
				return fmt.Errorf("%w: settings pools/%s: name: %q differs from its key", rotation.ErrInvalidPool, key, c.Name)
			}
			e, err := p.build(c, "settings", nil, now)
			if err != nil {
				return fmt.Errorf("settings pools/%s: %w", key, err)
			}
			m[key] = e
			return nil
		})
		if err != nil {
			return nil, err
		}
	}
	p.pools.Store(&m)
	return p, nil
}

// build makes an entry for c whose numbers not in old (nil: all) have their counts loaded
// from the counters.
func (p *Pools) build(c rotation.PoolConfig, source string, old *rotation.Pool, now time.Time) (*poolEntry, error) {
	rp, err := rotation.New(c)
	if err != nil {
		return nil, err
	}
	if p.counters != nil {
		var keep map[string]bool
		if old != nil {
			keep = map[string]bool{}
			for _, n := range old.Config().Numbers {
				keep[n.Number] = true
			}
		}
		for _, n := range rp.Config().Numbers {
			if keep[n.Number] {
				continue
			}
			h, d, err := p.counters.Uses(c.Name, n.Number, now)
			if err != nil {
				p.m.counterErrs.Inc()
				return nil, fmt.Errorf("dispatch: pool %q: loading use counts of %s: %w", c.Name, n.Number, err)
			}
			if err := rp.SetUses(n.Number, h, d, now); err != nil {
				return nil, err
			}
		}
	}
	tenant := c.Tenant
	if tenant == "" {
		tenant = "default"
	}
	return &poolEntry{p: rp, cfg: rp.Config(), tenant: tenant, source: source,
		ok:  p.m.picks.WithLabelValues(c.Name, "ok"),
		exh: p.m.picks.WithLabelValues(c.Name, "exhausted")}, nil
}

// lookup returns the locked live entry of name, or nil.
func (p *Pools) lookup(name string) *poolEntry {
	for {
		e := (*p.pools.Load())[name]
		if e == nil {
			return nil
		}
		e.mu.Lock()
		if !e.retired {
			return e
		}
		e.mu.Unlock()
	}
}

// Pick returns a number of pool for a request of tenant on channel to recipient to, and
// counts its use. Errors: ErrUnknownPool when no such pool serves tenant and channel;
// ErrPoolExhausted when no number may be used now, with retryAt the instant one frees up
// for a pool whose on_exhausted is hold (zero for fail, or when none ever will), so that a
// caller holds exactly when retryAt is not zero.
func (p *Pools) Pick(tenant, channel, pool, to string, now time.Time) (number string, retryAt time.Time, err error) {
	e := p.lookup(pool)
	if e == nil {
		p.m.picks.WithLabelValues("", "unknown_pool").Inc()
		return "", time.Time{}, fmt.Errorf("%w: %q", ErrUnknownPool, pool)
	}
	if e.tenant != tenant || e.cfg.Channel != channel {
		e.mu.Unlock()
		p.m.picks.WithLabelValues("", "unknown_pool").Inc()
		return "", time.Time{}, fmt.Errorf("%w: %q has no %s numbers for tenant %q", ErrUnknownPool, pool, channel, tenant)
	}
	number, retryAt, err = e.p.Pick(to, now)
	e.mu.Unlock()
	if err != nil {
		e.exh.Inc()
		if !e.cfg.Hold() {
			retryAt = time.Time{}
		}
		return "", retryAt, fmt.Errorf("%w: %q: %w", ErrPoolExhausted, pool, err)
	}
	e.ok.Inc()
	if p.counters != nil {
		if _, _, err := p.counters.AddUse(pool, number, now, 1); err != nil {
			p.m.counterErrs.Inc()
			p.log.Warn("pool use count not persisted", "pool", pool, "number", number, "err", err)
		}
	}
	return number, time.Time{}, nil
}

// OnExhausted returns the on_exhausted setting of pool ("hold" or "fail") and whether the
// pool exists.
func (p *Pools) OnExhausted(pool string) (string, bool) {
	e := (*p.pools.Load())[pool]
	if e == nil {
		return "", false
	}
	if e.cfg.Hold() {
		return "hold", true
	}
	return "fail", true
}

// Feedback records the outcome of a use of number from pool for its health: answered,
// completed and delivered count as successes; busy, no_answer, declined, failed and
// undelivered as failures; any other status is ignored. Feed one terminal status per use.
// Unknown pools and numbers are ignored (the pool may have changed since the pick).
func (p *Pools) Feedback(pool, number string, status Status, now time.Time) {
	var success bool
	switch status {
	case StatusAnswered, StatusCompleted, StatusDelivered:
		success = true
	case StatusBusy, StatusNoAnswer, StatusDeclined, StatusFailed, StatusUndelivered:
	default:
		return
	}
	e := p.lookup(pool)
	if e == nil {
		return
	}
	st, changed, err := e.p.Record(number, success, now)
	e.mu.Unlock()
	if err != nil || !changed {
		return
	}
	if st == rotation.StateQuarantined {
		p.m.quarantines.WithLabelValues(pool).Inc()
	}
	p.log.Info("pool number state changed", "pool", pool, "number", number, "state", st.String())
}

// Put validates cfg, persists it in Settings and replaces (or adds) the pool of its name
// atomically: a Pick sees the old pool or the new one, never a mix. Numbers present in both
// keep their counts, cooldowns, health and states; new numbers' counts are loaded from the
// counters.
func (p *Pools) Put(cfg rotation.PoolConfig) error {
	if _, err := rotation.New(cfg); err != nil {
		return err
	}
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	now := p.clock()
	old := (*p.pools.Load())[cfg.Name]
	var oldPool *rotation.Pool
	if old != nil {
		old.mu.Lock()
		oldPool = old.p
		old.mu.Unlock()
	}
	e, err := p.build(cfg, "settings", oldPool, now)
	if err != nil {
		return err
	}
	if p.settings != nil {
		b, err := json.Marshal(cfg)
		if err != nil {
			return fmt.Errorf("dispatch: pool %q: %w", cfg.Name, err)
		}
		if err := p.settings.PutSetting(SettingsPools, cfg.Name, b); err != nil {
			return fmt.Errorf("dispatch: persisting pool %q: %w", cfg.Name, err)
		}
	}
	if old != nil {
		old.mu.Lock()
		defer old.mu.Unlock()
		e.p.Inherit(old.p, now)
		old.retired = true
	}
	p.swap(cfg.Name, e)
	return nil
}

// Delete removes pool name, persistently. It returns ErrUnknownPool if there is none.
func (p *Pools) Delete(name string) error {
	p.writeMu.Lock()
	defer p.writeMu.Unlock()
	old := (*p.pools.Load())[name]
	if old == nil {
		return fmt.Errorf("%w: %q", ErrUnknownPool, name)
	}
	if p.settings != nil {
		var err error
		if p.fromCfg[name] {
			err = p.settings.PutSetting(SettingsPools, name, []byte("null"))
		} else {
			err = p.settings.DeleteSetting(SettingsPools, name)
		}
		if err != nil {
			return fmt.Errorf("dispatch: deleting pool %q: %w", name, err)
		}
	}
	old.mu.Lock()
	old.retired = true
	p.swap(name, nil)
	old.mu.Unlock()
	return nil
}

// swap installs e as pool name (nil: removes it) in a new map. writeMu held.
func (p *Pools) swap(name string, e *poolEntry) {
	cur := *p.pools.Load()
	m := make(map[string]*poolEntry, len(cur)+1)
	for k, v := range cur {
		m[k] = v
	}
	if e == nil {
		delete(m, name)
	} else {
		m[name] = e
	}
	p.pools.Store(&m)
}

// Get returns the view of pool name at this instant.
func (p *Pools) Get(name string) (PoolView, bool) {
	e := p.lookup(name)
	if e == nil {
		return PoolView{}, false
	}
	defer e.mu.Unlock()
	return e.view(p.clock()), true
}

// List returns the view of every pool, by name.
func (p *Pools) List() []PoolView {
	m := *p.pools.Load()
	names := make([]string, 0, len(m))
	for k := range m {
		names = append(names, k)
	}
	sort.Strings(names)
	out := make([]PoolView, 0, len(names))
	for _, n := range names {
		if v, ok := p.Get(n); ok {
			out = append(out, v)
		}
	}
	return out
}

// view builds the entry's view. e.mu held.
func (e *poolEntry) view(now time.Time) PoolView {
	return PoolView{PoolConfig: e.cfg, Source: e.source, Health: e.p.Health(now), State: e.p.View(now)}
}

// stateCollector exports sendcore_rotation_numbers{pool,state} at scrape time.
type stateCollector struct {
	p    *Pools
	desc *prometheus.Desc
}

func (c stateCollector) Describe(ch chan<- *prometheus.Desc) { ch <- c.desc }

func (c stateCollector) Collect(ch chan<- prometheus.Metric) {
	now := c.p.clock()
	for name := range *c.p.pools.Load() {
		e := c.p.lookup(name)
		if e == nil {
			continue
		}
		var counts [rotation.StateDisabled + 1]int
		e.p.CountStates(now, &counts)
		e.mu.Unlock()
		for s, n := range counts {
			ch <- prometheus.MustNewConstMetric(c.desc, prometheus.GaugeValue, float64(n), name, rotation.State(s).String())
		}
	}
}
