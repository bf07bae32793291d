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
		{"global 5000 segments/s (bucket credit in use)", LimitsConfig{GlobalTPS: 5000}, 5000, 1, nil},
		{"global 5000 segments/s, 3-segment messages", LimitsConfig{GlobalTPS: 5000}, 5000, 3, nil},
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

// TestBucketCreditNeverAddsToBurst guarantees that the credit a large bucket takes ahead
// (bucket.take) never lets more than one burst through at an instant, also after an idle
// spell longer than creditTTL with credit held, and that Cancel returns units.
func TestBucketCreditNeverAddsToBurst(t *testing.T) {
	const tps = 10000 // burst 1000, batch 32
	l := NewLimiter(LimitsConfig{GlobalTPS: tps}, nil)
	burst := int(tps * burstWindow)
	count := func(now time.Time) int {
		t.Helper()
		k := 0
		for ; k < 10*burst; k++ {
			if w, _ := l.Reserve("t", "", "", 1, now); w > 0 {
				l.Cancel("t", "", "", 1, now)
				return k
			}
		}
		return k
	}
	if w, _ := l.Reserve("t", "", "", 1, limT0); w != 0 || l.global.credit != l.global.batch || l.global.batch == 0 {
		t.Fatalf("first unit: wait %v, credit %d, batch %d; want 0 and credit = batch > 0", w, l.global.credit, l.global.batch)
	}
	if got := count(limT0); got != burst-1 {
		t.Errorf("rest of a full bucket: %d immediate, want %d", got, burst-1)
	}
	l = NewLimiter(LimitsConfig{GlobalTPS: tps}, nil)
	l.Reserve("t", "", "", 1, limT0) // takes credit ahead
	later := limT0.Add(time.Second)  // credit older than creditTTL, bucket full again
	if got := count(later); got != burst {
		t.Errorf("after idle with credit held: %d immediate, want the burst %d", got, burst)
	}
	l.Cancel("t", "", "", 5, later)
	if got := count(later); got != 5 {
		t.Errorf("after cancelling 5 units: %d immediate, want 5", got)
	}
}

// TestRecipientTable covers the open-addressing table: keys sharing a home slot
// (collisions) stay apart, cancel finds keys past others in the chain, expired slots are
// reused without growing, the table grows under load and shrinks when windows expire.
func TestRecipientTable(t *testing.T) {
	const win = int64(time.Hour)
	t0 := limT0.UnixNano()
	// Keys with the same home slot in any small table: only low bits differ (home scales
	// the high bits to the table).
	collide := func(k int) uint64 { return 0x5555<<48 | uint64(k+1)<<recipientShardBits | 3 }

	t.Run("collisions", func(t *testing.T) {
		var r recipientTable
		for k := 0; k < 10; k++ {
			for m := 0; m < 2; m++ {
				if _, _, ok := r.take(collide(k), t0, win, 2); !ok {
					t.Fatalf("key %d message %d refused", k, m+1)
				}
			}
		}
		for k := 0; k < 10; k++ {
			if _, n, ok := r.take(collide(k), t0, win, 2); ok || n != 2 {
				t.Errorf("key %d: 3rd message ok=%v count=%d, want refused at 2", k, ok, n)
			}
		}
		if r.home(collide(0)) != r.home(collide(9)) {
			t.Fatal("test keys do not share a home slot")
		}
		r.cancel(collide(7))
		r.cancel(collide(99)) // absent: no effect
		for k := 0; k < 10; k++ {
			_, _, ok := r.take(collide(k), t0, win, 2)
			if ok != (k == 7) {
				t.Errorf("key %d after cancelling key 7: ok=%v", k, ok)
			}
		}
	})

	t.Run("expiry reuses slots", func(t *testing.T) {
		var r recipientTable
		for round := int64(0); round < 50; round++ {
			now := t0 + round*win
			for k := 0; k < 40; k++ {
				start, n, ok := r.take(uint64(round*1000+int64(k)+1)<<recipientShardBits, now, win, 1)
				if !ok || n != 0 || start != now {
					t.Fatalf("round %d key %d: start=%d n=%d ok=%v", round, k, start, n, ok)
				}
			}
		}
		if len(r.slots) != recipientMinSlots {
			t.Errorf("2,000 keys, 40 live at a time: %d slots, want %d", len(r.slots), recipientMinSlots)
		}
		// A key whose window expired starts a new one.
		h := uint64(42) << recipientShardBits
		r.take(h, t0, win, 1)
		if _, _, ok := r.take(h, t0+win-1, win, 1); ok {
			t.Error("second message within the window accepted")
		}
		if start, _, ok := r.take(h, t0+win, win, 1); !ok || start != t0+win {
			t.Errorf("at window end: ok=%v start=%d", ok, start)
		}
	})

	t.Run("growth and shrink", func(t *testing.T) {
		var r recipientTable
		const keys = 10000
		for k := 0; k < keys; k++ {
			if _, _, ok := r.take(uint64(k+1)*0x9E3779B97F4A7C15|1, t0, win, 1); !ok {
				t.Fatalf("key %d refused", k)
			}
		}
		if r.used != keys || r.used > len(r.slots)*7/8 {
			t.Errorf("used %d of %d slots after %d keys", r.used, len(r.slots), keys)
		}
		for k := 0; k < keys; k++ {
			if _, _, ok := r.take(uint64(k+1)*0x9E3779B97F4A7C15|1, t0, win, 1); ok {
				t.Fatalf("key %d lost in growth", k)
			}
		}
		r.rehash(t0+win, win)
		if len(r.slots) != recipientMinSlots || r.used != 0 {
			t.Errorf("all expired: %d slots, %d used; want %d, 0", len(r.slots), r.used, recipientMinSlots)
		}
	})
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
