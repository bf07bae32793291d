package dispatch

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"
)

var limT0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

// TestGiveBackRestoresTokens pins the x/time/rate behaviour Cancel relies on: a
// reservation of -n tokens returns n tokens, also when the bucket is in debt.
func TestGiveBackRestoresTokens(t *testing.T) {
	b := rate.NewLimiter(1, 1)
	if !b.AllowN(limT0, 1) || b.AllowN(limT0, 1) {
		t.Fatal("bucket of 1 should allow exactly one")
	}
	giveBack(b, 1, limT0)
	if !b.AllowN(limT0, 1) {
		t.Fatal("given-back token not available")
	}
	if d := b.ReserveN(limT0, 1).DelayFrom(limT0); d != time.Second {
		t.Fatalf("debt reservation delay %v, want 1s", d)
	}
	giveBack(b, 1, limT0)
	if tok := b.TokensAt(limT0); tok != 0 {
		t.Fatalf("tokens after giving back the debt: %v, want 0", tok)
	}
	giveBack(b, 5, limT0)
	if tok := b.TokensAt(limT0.Add(time.Millisecond)); tok > 1 {
		t.Fatalf("tokens %v exceed the burst after a give-back", tok)
	}
}

// TestLimiterHoldsRateUnderOverload guarantees each limit: a simulated 10-second run at 3×
// the limit sends the limit within 5% (and never more than limit × time + one burst). Callers wait up to 250 ms and otherwise cancel, as
// the pipeline does when it holds a request.
func TestLimiterHoldsRateUnderOverload(t *testing.T) {
	for _, tc := range []struct {
		name   string
		cfg    LimitsConfig
		limit  float64
		n      int // units per request
		sender func(k int) string
	}{
		{"global 1000 segments/s", LimitsConfig{GlobalTPS: 1000}, 1000, 1, nil},
		{"global 1000 segments/s, 3-segment messages", LimitsConfig{GlobalTPS: 1000}, 1000, 3, nil},
		{"tenant 200/s under a higher global", LimitsConfig{GlobalTPS: 5000, Tenants: map[string]float64{"acme": 200}}, 200, 1, nil},
		{"sender 1/s (long code)", LimitsConfig{SenderTPS: 1}, 1, 1, nil},
		{"sender 10/s, 2 segments", LimitsConfig{SenderTPS: 10}, 10, 2, nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			l := NewLimiter(tc.cfg, nil)
			const run = 10 * time.Second
			interval := time.Duration(float64(time.Second) / (3 * tc.limit / float64(tc.n)))
			units := 0
			for now := limT0; now.Before(limT0.Add(run)); now = now.Add(interval) {
				wait, err := l.Reserve("acme", "+358401110001", "", tc.n, now)
				if err != nil {
					t.Fatal(err)
				}
				if wait > 250*time.Millisecond {
					l.Cancel("acme", "+358401110001", "", tc.n, now)
					continue
				}
				if now.Add(wait).Before(limT0.Add(run)) {
					units += tc.n
				}
			}
			// A bucket starts full: the run may send one burst (100 ms of traffic, at least
			// one unit) on top of limit × 10 s. The steady rate excludes that burst.
			burst := math.Max(1, math.Ceil(tc.limit*burstWindow))
			got := (float64(units) - burst) / run.Seconds()
			if math.Abs(got/tc.limit-1) > 0.05 {
				t.Errorf("achieved %.2f units/s (%d units in %v), want %.1f ± 5%%", got, units, run, tc.limit)
			}
			if float64(units) > tc.limit*run.Seconds()+burst {
				t.Errorf("%d units in %v exceed limit × time + burst", units, run)
			}
		})
	}
}

func TestRecipientCapStopsFourthMessage(t *testing.T) {
	l := NewLimiter(LimitsConfig{RecipientMax: 3, RecipientWindow: 24 * time.Hour}, nil)
	to := "+358401234567"
	for k := 0; k < 3; k++ {
		if _, err := l.Reserve("default", "", to, 1, limT0.Add(time.Duration(k)*time.Hour)); err != nil {
			t.Fatalf("message %d: %v", k+1, err)
		}
	}
	_, err := l.Reserve("default", "", to, 1, limT0.Add(5*time.Hour))
	if !errors.Is(err, ErrRecipientCap) {
		t.Fatalf("4th message: %v, want ErrRecipientCap", err)
	}
	for _, want := range []string{to, "3 messages", "recipient_max 3 per 24h0m0s"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q lacks %q", err, want)
		}
	}
	if _, err := l.Reserve("default", "", "+358409999999", 1, limT0.Add(5*time.Hour)); err != nil {
		t.Errorf("another recipient: %v", err)
	}
	l.Cancel("default", "", to, 1, limT0.Add(5*time.Hour))
	if _, err := l.Reserve("default", "", to, 1, limT0.Add(5*time.Hour)); err != nil {
		t.Errorf("after a cancelled message: %v", err)
	}
	if _, err := l.Reserve("default", "", to, 1, limT0.Add(24*time.Hour)); err != nil {
		t.Errorf("next window: %v", err)
	}
}

// TestRecipientCapConcurrent guarantees the cap under concurrent reservations.
func TestRecipientCapConcurrent(t *testing.T) {
	l := NewLimiter(LimitsConfig{GlobalTPS: 1e6, RecipientMax: 5, RecipientWindow: time.Hour}, prometheus.NewRegistry())
	var mu sync.Mutex
	ok := map[string]int{}
	var wg sync.WaitGroup
	for g := 0; g < 8; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for k := 0; k < 200; k++ {
				to := fmt.Sprintf("+35840%07d", k%20)
				if _, err := l.Reserve("t", "s", to, 1, limT0); err == nil {
					mu.Lock()
					ok[to]++
					mu.Unlock()
				}
			}
		}()
	}
	wg.Wait()
	for to, n := range ok {
		if n != 5 {
			t.Errorf("%s got %d messages, want 5", to, n)
		}
	}
}

func TestLimiterChunksAndUpdate(t *testing.T) {
	l := NewLimiter(LimitsConfig{SenderTPS: 1}, nil)
	if w, _ := l.Reserve("t", "A", "", 3, limT0); w != 2*time.Second {
		t.Errorf("3 segments at 1/s from a full bucket of 1: wait %v, want 2s", w)
	}
	if w, _ := l.Reserve("t", "A", "", 1, limT0); w != 3*time.Second {
		t.Errorf("next segment: wait %v, want 3s", w)
	}
	if w, _ := l.Reserve("t", "B", "", 1, limT0); w != 0 {
		t.Errorf("another sender: wait %v, want 0", w)
	}
	if err := l.Update(LimitsConfig{GlobalTPS: -1}); err == nil || !strings.Contains(err.Error(), "global_tps") {
		t.Errorf("bad update: %v", err)
	}
	if err := l.Update(LimitsConfig{SenderTPS: 100, Tenants: map[string]float64{"t": 5}}); err != nil {
		t.Fatal(err)
	}
	if w, _ := l.Reserve("t", "A", "", 1, limT0); w != 0 {
		t.Errorf("after raising sender_tps: wait %v, want 0", w)
	}
	c := l.Config()
	c.Tenants["t"] = 99
	if l.Config().Tenants["t"] != 5 {
		t.Error("Config returned the live map")
	}
}

// BenchmarkReserve: one decision with global, tenant and sender limits and the recipient
// cap, over 100,000 distinct live recipients.
func BenchmarkReserve(b *testing.B) {
	l := NewLimiter(LimitsConfig{GlobalTPS: 1e9, Tenants: map[string]float64{"t": 1e9}, SenderTPS: 1e9,
		RecipientMax: 1 << 30, RecipientWindow: time.Hour}, nil)
	to := make([]string, 100000)
	for i := range to {
		to[i] = fmt.Sprintf("+3584%08d", i)
		if _, err := l.Reserve("t", "+358401110001", to[i], 1, limT0); err != nil {
			b.Fatal(err)
		}
	}
	now := limT0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, err := l.Reserve("t", "+358401110001", to[i%len(to)], 1, now); err != nil {
			b.Fatal(err)
		}
	}
}
