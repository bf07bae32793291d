package dispatch

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendcore/sendcore/rotation"
)

// memSettings is a map-backed Settings.
type memSettings struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemSettings() *memSettings { return &memSettings{m: map[string][]byte{}} }

func (s *memSettings) PutSetting(ns, key string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[ns+"\x00"+key] = append([]byte(nil), v...)
	return nil
}

func (s *memSettings) GetSetting(ns, key string) ([]byte, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.m[ns+"\x00"+key]
	return v, ok, nil
}

func (s *memSettings) DeleteSetting(ns, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, ns+"\x00"+key)
	return nil
}

func (s *memSettings) ListSettings(ns string, fn func(key string, value []byte) error) error {
	s.mu.Lock()
	var keys []string
	for k := range s.m {
		if strings.HasPrefix(k, ns+"\x00") {
			keys = append(keys, k)
		}
	}
	s.mu.Unlock()
	for _, k := range keys {
		v, _, _ := s.GetSetting(ns, strings.TrimPrefix(k, ns+"\x00"))
		if err := fn(strings.TrimPrefix(k, ns+"\x00"), v); err != nil {
			return err
		}
	}
	return nil
}

// memCounters is a map-backed UsageCounters (UTC hour and day buckets).
type memCounters struct {
	mu sync.Mutex
	m  map[string]int
}

func newMemCounters() *memCounters { return &memCounters{m: map[string]int{}} }

func (c *memCounters) keys(pool, number string, t time.Time) (string, string) {
	t = t.UTC()
	return pool + "/" + number + "/h" + t.Format("2006010215"), pool + "/" + number + "/d" + t.Format("20060102")
}

func (c *memCounters) AddUse(pool, number string, t time.Time, n int) (int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, d := c.keys(pool, number, t)
	c.m[h] += n
	c.m[d] += n
	return c.m[h], c.m[d], nil
}

func (c *memCounters) Uses(pool, number string, t time.Time) (int, int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, d := c.keys(pool, number, t)
	return c.m[h], c.m[d], nil
}

var poolT0 = time.Date(2026, 3, 2, 10, 15, 0, 0, time.UTC)

func testPools(t *testing.T, cfgs []rotation.PoolConfig, s Settings, c UsageCounters, reg prometheus.Registerer) *Pools {
	t.Helper()
	p, err := newPools(cfgs, s, c, nil, reg, func() time.Time { return poolT0 })
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func capPool(name string, n, perHour int, onExhausted string) rotation.PoolConfig {
	c := rotation.PoolConfig{Name: name, Tenant: "default", Channel: "voice", Strategy: "round_robin", OnExhausted: onExhausted}
	for i := 0; i < n; i++ {
		c.Numbers = append(c.Numbers, rotation.NumberConfig{Number: fmt.Sprintf("+35840111%04d", i), MaxPerHour: perHour})
	}
	return c
}

func TestPoolsPickErrors(t *testing.T) {
	p := testPools(t, []rotation.PoolConfig{capPool("hold", 1, 1, "hold"), capPool("fail", 1, 1, "fail"), capPool("unset", 1, 1, "")}, nil, nil, nil)
	for _, name := range []string{"hold", "fail", "unset"} {
		if _, _, err := p.Pick("default", "voice", name, "+46701234567", poolT0); err != nil {
			t.Fatal(err)
		}
	}
	for _, tc := range []struct {
		name, tenant, channel, pool string
		want                        error
		wantRetry                   time.Time
	}{
		{"unknown name", "default", "voice", "nope", ErrUnknownPool, time.Time{}},
		{"other tenant's pool", "acme", "voice", "hold", ErrUnknownPool, time.Time{}},
		{"other channel", "default", "sms", "hold", ErrUnknownPool, time.Time{}},
		{"exhausted, hold: retry at next hour", "default", "voice", "hold", ErrPoolExhausted, poolT0.Truncate(time.Hour).Add(time.Hour)},
		{"exhausted, fail: no retry", "default", "voice", "fail", ErrPoolExhausted, time.Time{}},
		{"exhausted, on_exhausted unset: fails like fail", "default", "voice", "unset", ErrPoolExhausted, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			_, retry, err := p.Pick(tc.tenant, tc.channel, tc.pool, "+46701234567", poolT0)
			if !errors.Is(err, tc.want) || !retry.Equal(tc.wantRetry) {
				t.Fatalf("got %v, %v; want %v, %v", retry, err, tc.wantRetry, tc.want)
			}
		})
	}
	if _, _, err := p.Pick("default", "voice", "nope", "", poolT0); !strings.Contains(err.Error(), "unknown pool") {
		t.Errorf("message %q must say unknown pool", err)
	}
	for name, want := range map[string]string{"fail": "fail", "hold": "hold", "unset": "fail"} {
		if h, ok := p.OnExhausted(name); !ok || h != want {
			t.Errorf("OnExhausted(%s) = %q %v, want %q", name, h, ok, want)
		}
	}
}

// TestPoolsCapsConcurrentAndAcrossRestart guarantees that hourly caps are never exceeded
// by concurrent picks, nor after a restart over the same counters.
func TestPoolsCapsConcurrentAndAcrossRestart(t *testing.T) {
	counters := newMemCounters()
	cfg := capPool("p", 5, 20, "hold")
	p := testPools(t, []rotation.PoolConfig{cfg}, nil, counters, nil)
	var ok atomic.Int64
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 50; k++ {
				if _, _, err := p.Pick("default", "voice", "p", "+46701234567", poolT0); err == nil {
					ok.Add(1)
				} else if !errors.Is(err, ErrPoolExhausted) {
					t.Error(err)
				}
			}
		}()
	}
	wg.Wait()
	if ok.Load() != 100 {
		t.Fatalf("%d picks succeeded, want exactly 5 × 20", ok.Load())
	}
	for _, n := range cfg.Numbers {
		if h, _, _ := counters.Uses("p", n.Number, poolT0); h != 20 {
			t.Errorf("%s: %d uses counted, want 20", n.Number, h)
		}
	}
	restarted := testPools(t, []rotation.PoolConfig{cfg}, nil, counters, nil)
	if _, _, err := restarted.Pick("default", "voice", "p", "+46701234567", poolT0); !errors.Is(err, ErrPoolExhausted) {
		t.Fatalf("after restart: %v, want ErrPoolExhausted", err)
	}
	if _, _, err := restarted.Pick("default", "voice", "p", "+46701234567", poolT0.Add(time.Hour)); err != nil {
		t.Fatalf("next hour after restart: %v", err)
	}
}

// TestPoolsPutSwapsAtomicallyUnderPicks guarantees that replacing a pool while picks run
// keeps the counts of the numbers that stay: the caps hold through every swap.
func TestPoolsPutSwapsAtomicallyUnderPicks(t *testing.T) {
	cfg := capPool("p", 4, 25, "hold")
	p := testPools(t, []rotation.PoolConfig{cfg}, newMemSettings(), newMemCounters(), nil)
	var ok atomic.Int64
	var wg sync.WaitGroup
	done := make(chan struct{})
	for g := 0; g < 4; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				select {
				case <-done:
					return
				default:
				}
				if _, _, err := p.Pick("default", "voice", "p", "", poolT0); err == nil {
					ok.Add(1)
				}
			}
		}()
	}
	for k := 0; k < 50; k++ {
		c := cfg
		c.Strategy = []string{"round_robin", "least_used", "weighted", "sticky"}[k%4]
		if err := p.Put(c); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(5 * time.Second)
	for ok.Load() < 100 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	close(done)
	wg.Wait()
	if ok.Load() != 100 {
		t.Fatalf("%d picks succeeded across 50 swaps, want exactly 4 × 25", ok.Load())
	}
}

func TestPoolsPutDeletePersist(t *testing.T) {
	settings, counters := newMemSettings(), newMemCounters()
	fromFile := capPool("file", 2, 10, "hold")
	p := testPools(t, []rotation.PoolConfig{fromFile}, settings, counters, nil)
	for k := 0; k < 3; k++ {
		if _, _, err := p.Pick("default", "voice", "file", "", poolT0); err != nil {
			t.Fatal(err)
		}
	}
	// Replace: one number stays, one goes, one comes.
	next := fromFile
	next.Numbers = []rotation.NumberConfig{fromFile.Numbers[0], {Number: "+358401119999", MaxPerHour: 10}}
	if err := p.Put(next); err != nil {
		t.Fatal(err)
	}
	bad := next
	bad.Strategy = "random"
	if err := p.Put(bad); !errors.Is(err, rotation.ErrInvalidPool) || !strings.Contains(err.Error(), "strategy") {
		t.Fatalf("bad Put: %v", err)
	}
	extra := capPool("extra", 1, 0, "fail")
	if err := p.Put(extra); err != nil {
		t.Fatal(err)
	}
	v, ok := p.Get("file")
	if !ok || v.Source != "settings" || len(v.State) != 2 || v.State[0].UsesHour != 2 || v.State[1].UsesHour != 0 {
		t.Fatalf("view after Put: %+v", v)
	}
	if err := p.Delete("file"); err != nil {
		t.Fatal(err)
	}
	if err := p.Delete("file"); !errors.Is(err, ErrUnknownPool) {
		t.Fatalf("second Delete: %v", err)
	}
	restarted := testPools(t, []rotation.PoolConfig{fromFile}, settings, counters, nil)
	list := restarted.List()
	if len(list) != 1 || list[0].Name != "extra" || list[0].Source != "settings" {
		t.Fatalf("after restart: %+v; want only the pool put through the control plane", list)
	}
}

func TestPoolsFeedbackQuarantineVisible(t *testing.T) {
	reg := prometheus.NewRegistry()
	cfg := capPool("p", 5, 0, "hold")
	cfg.Health = rotation.HealthConfig{MinSamples: 10}
	p := testPools(t, []rotation.PoolConfig{cfg}, nil, nil, reg)
	for k := 0; k < 20; k++ {
		for i, n := range cfg.Numbers {
			st := StatusCompleted
			if i == 0 || k%4 == 0 {
				st = StatusNoAnswer
			}
			p.Feedback("p", n.Number, st, poolT0)
		}
	}
	p.Feedback("p", cfg.Numbers[1].Number, StatusSubmitted, poolT0) // ignored
	if got := gathered(t, reg, "sendcore_rotation_quarantines_total"); len(got) != 1 || got[0] != 1 {
		t.Errorf("quarantines = %v, want [1]", got)
	}
	v, _ := p.Get("p")
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(string(b), `"number":"+358401110000","state":"quarantined"`) {
		t.Errorf("GET /v1/pools JSON does not show the quarantine: %s", b)
	}
	if got := gathered(t, reg, "sendcore_rotation_numbers"); len(got) != 5 || got[3] != 1 {
		t.Errorf("state gauge by state (active, disabled, probation, quarantined, resting) = %v", got)
	}
}

// gathered returns the values of every series of metric family name in reg.
func gathered(t *testing.T, reg *prometheus.Registry, name string) []float64 {
	t.Helper()
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	var out []float64
	for _, mf := range mfs {
		if mf.GetName() != name {
			continue
		}
		for _, m := range mf.GetMetric() {
			switch {
			case m.Counter != nil:
				out = append(out, m.Counter.GetValue())
			case m.Gauge != nil:
				out = append(out, m.Gauge.GetValue())
			}
		}
	}
	return out
}
