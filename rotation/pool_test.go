package rotation

import (
	"errors"
	"fmt"
	"math"
	"strings"
	"testing"
	"time"
)

var t0 = time.Date(2026, 3, 2, 10, 0, 0, 0, time.UTC)

func numbers(n int, prefix string) []NumberConfig {
	out := make([]NumberConfig, n)
	for i := range out {
		out[i] = NumberConfig{Number: fmt.Sprintf("%s%04d", prefix, i), Weight: 1}
	}
	return out
}

func mustPool(t testing.TB, cfg PoolConfig) *Pool {
	t.Helper()
	if cfg.Name == "" {
		cfg.Name = "p"
	}
	if cfg.Channel == "" {
		cfg.Channel = "voice"
	}
	p, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return p
}

func picks(t *testing.T, p *Pool, to string, n int, now time.Time) []string {
	t.Helper()
	var out []string
	for k := 0; k < n; k++ {
		num, _, err := p.Pick(to, now)
		if err != nil {
			t.Fatalf("pick %d: %v", k, err)
		}
		out = append(out, num)
	}
	return out
}

func TestStrategies(t *testing.T) {
	abc := []NumberConfig{{Number: "+358401110003"}, {Number: "+358401110001"}, {Number: "+358401110002"}}
	for _, tc := range []struct {
		name string
		cfg  PoolConfig
		seed map[string]int // uses today
		to   string
		n    int
		want string // picks, last 4 digits, comma-separated
	}{
		{name: "round robin goes through numbers in number order",
			cfg: PoolConfig{Strategy: "round_robin", Numbers: abc}, n: 7,
			want: "0001,0002,0003,0001,0002,0003,0001"},
		{name: "weighted 4:2:1 is smooth, no run of one number",
			cfg: PoolConfig{Strategy: "weighted", Numbers: []NumberConfig{
				{Number: "+358401110001", Weight: 4}, {Number: "+358401110002", Weight: 2}, {Number: "+358401110003", Weight: 1}}},
			n: 14, want: "0001,0002,0001,0003,0001,0002,0001,0001,0002,0001,0003,0001,0002,0001"},
		{name: "least used takes the fewest uses today, then the least recently used",
			cfg: PoolConfig{Strategy: "least_used", Numbers: abc}, seed: map[string]int{"+358401110001": 3, "+358401110003": 1},
			n: 6, want: "0002,0003,0002,0003,0002,0001"},
		{name: "sticky gives one recipient one number",
			cfg: PoolConfig{Strategy: "sticky", Numbers: abc}, to: "+15551234567", n: 4,
			want: "0002,0002,0002,0002"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPool(t, tc.cfg)
			for num, d := range tc.seed {
				if err := p.SetUses(num, d, d, t0); err != nil {
					t.Fatal(err)
				}
			}
			var got []string
			for _, s := range picks(t, p, tc.to, tc.n, t0) {
				got = append(got, s[len(s)-4:])
			}
			if g := strings.Join(got, ","); g != tc.want {
				t.Errorf("picks\n got %s\nwant %s", g, tc.want)
			}
		})
	}
}

// TestWeightedSmooth guarantees that in every window of sum(weights) consecutive picks each
// number gets its weight within ±1: no number bursts, whatever the weights.
func TestWeightedSmooth(t *testing.T) {
	weights := []int{7, 5, 3, 1, 1}
	var cfg PoolConfig
	total := 0
	for i, w := range weights {
		cfg.Numbers = append(cfg.Numbers, NumberConfig{Number: fmt.Sprintf("+35840111%04d", i), Weight: w})
		total += w
	}
	cfg.Strategy = "weighted"
	p := mustPool(t, cfg)
	seq := picks(t, p, "", total*50, t0)
	for start := 0; start+total <= len(seq); start++ {
		count := map[string]int{}
		for _, s := range seq[start : start+total] {
			count[s]++
		}
		for i, w := range weights {
			if c := count[cfg.Numbers[i].Number]; c < w-1 || c > w+1 {
				t.Fatalf("window at %d: number %d (weight %d) picked %d times", start, i, w, c)
			}
		}
	}
}

func TestStickyIgnoresOrderAndFallsBackWithinCaps(t *testing.T) {
	nums := numbers(10, "+35840")
	rev := append([]NumberConfig(nil), nums...)
	for i, j := 0, len(rev)-1; i < j; i, j = i+1, j-1 {
		rev[i], rev[j] = rev[j], rev[i]
	}
	a := mustPool(t, PoolConfig{Strategy: "sticky", Numbers: nums})
	b := mustPool(t, PoolConfig{Strategy: "sticky", Numbers: rev})
	for k := 0; k < 200; k++ {
		to := fmt.Sprintf("+4670%07d", k)
		x, _, _ := a.Pick(to, t0)
		y, _, _ := b.Pick(to, t0)
		if x != y {
			t.Fatalf("recipient %s: %s on one instance, %s on another", to, x, y)
		}
	}
	// With a cap of 1 per hour, the recipient's number is used once, then another one.
	for i := range nums {
		nums[i].MaxPerHour = 1
	}
	c := mustPool(t, PoolConfig{Strategy: "sticky", Numbers: nums})
	first := picks(t, c, "+46701234567", 1, t0)[0]
	second := picks(t, c, "+46701234567", 1, t0)[0]
	if first == second {
		t.Fatalf("capped number %s picked twice in an hour", first)
	}
	if again := picks(t, c, "+46701234567", 1, t0.Add(time.Hour))[0]; again != first {
		t.Errorf("next hour: got %s, want the recipient's own number %s back", again, first)
	}
}

func TestLocalPresence(t *testing.T) {
	cfg := PoolConfig{Strategy: "local_presence", Numbers: []NumberConfig{
		{Number: "+12125550101", MaxPerHour: 1},
		{Number: "+12125550102", MaxPerHour: 1},
		{Number: "+14155550101"},
		{Number: "+358401110001"},
		{Number: "+358911110001"},
		{Number: "+46701110001"},
	}}
	for _, tc := range []struct {
		name, to string
		want     []string // acceptable picks in order
	}{
		{"area code first", "+12125559999", []string{"+12125550101", "+12125550102"}},
		{"area capped: same country", "+12125559999", []string{"+14155550101"}},
		{"Finnish mobile area", "+358409999999", []string{"+358401110001"}},
		{"Helsinki landline area", "+35891234567", []string{"+358911110001"}},
		{"country without that area", "+358501234567", []string{"+358401110001", "+358911110001"}},
		{"no local number: any", "+447700900123", nil},
	} {
		t.Run(tc.name, func(t *testing.T) {
			p := mustPool(t, cfg)
			if tc.name == "area capped: same country" {
				picks(t, p, tc.to, 2, t0) // uses both +1212 numbers' hourly cap
			}
			for _, w := range tc.want {
				got := picks(t, p, tc.to, 1, t0)[0]
				ok := false
				for _, a := range tc.want {
					ok = ok || a == got
				}
				if !ok {
					t.Fatalf("picked %s, want one of %v (first expected %s)", got, tc.want, w)
				}
			}
			if tc.want == nil {
				if _, _, err := p.Pick(tc.to, t0); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

func TestCapsCooldownAndExhaustion(t *testing.T) {
	for _, tc := range []struct {
		name      string
		num       NumberConfig
		cooldown  time.Duration
		uses      int
		wantRetry time.Time
	}{
		{"hourly cap until next hour", NumberConfig{Number: "+358401110001", MaxPerHour: 2}, 0, 2, t0.Truncate(time.Hour).Add(time.Hour)},
		{"daily cap until next UTC day", NumberConfig{Number: "+358401110001", MaxPerHour: 5, MaxPerDay: 3}, 0, 3, t0.Truncate(24 * time.Hour).Add(24 * time.Hour)},
		{"cooldown after each use", NumberConfig{Number: "+358401110001"}, 90 * time.Second, 1, t0.Add(90 * time.Second)},
		{"disabled: never", NumberConfig{Number: "+358401110001", Disabled: true}, 0, 0, time.Time{}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, strategy := range []string{"round_robin", "weighted", "least_used", "sticky", "local_presence"} {
				p := mustPool(t, PoolConfig{Strategy: strategy, Cooldown: tc.cooldown, Numbers: []NumberConfig{tc.num}})
				picks(t, p, "+358409999999", tc.uses, t0)
				_, retry, err := p.Pick("+358409999999", t0)
				if !errors.Is(err, ErrExhausted) || !retry.Equal(tc.wantRetry) {
					t.Fatalf("%s: got retry %v err %v, want %v %v", strategy, retry, err, tc.wantRetry, ErrExhausted)
				}
				if !tc.wantRetry.IsZero() {
					if _, _, err := p.Pick("+358409999999", tc.wantRetry); err != nil {
						t.Fatalf("%s: at retryAt: %v", strategy, err)
					}
				}
			}
		})
	}
}

func TestSetUsesHoldsCapAcrossRestart(t *testing.T) {
	p := mustPool(t, PoolConfig{Strategy: "round_robin", Numbers: []NumberConfig{{Number: "+358401110001", MaxPerDay: 10}}})
	if err := p.SetUses("+358401110001", 9, 9, t0); err != nil {
		t.Fatal(err)
	}
	picks(t, p, "", 1, t0)
	if _, _, err := p.Pick("", t0); !errors.Is(err, ErrExhausted) {
		t.Fatalf("11th use of the day: err %v, want ErrExhausted", err)
	}
	if err := p.SetUses("+000", 1, 1, t0); !errors.Is(err, ErrUnknownNumber) {
		t.Errorf("unknown number: %v", err)
	}
}

func TestInheritKeepsCountsOfRemainingNumbers(t *testing.T) {
	old := mustPool(t, PoolConfig{Strategy: "round_robin", Numbers: []NumberConfig{
		{Number: "+358401110001", MaxPerHour: 2}, {Number: "+358401110002", MaxPerHour: 2}}})
	picks(t, old, "", 4, t0)
	p := mustPool(t, PoolConfig{Strategy: "least_used", Numbers: []NumberConfig{
		{Number: "+358401110002", MaxPerHour: 2}, {Number: "+358401110003", MaxPerHour: 2}}})
	p.Inherit(old, t0)
	got := picks(t, p, "", 2, t0)
	if got[0] != "+358401110003" || got[1] != "+358401110003" {
		t.Errorf("got %v: the kept number's two uses this hour were lost", got)
	}
	if _, _, err := p.Pick("", t0); !errors.Is(err, ErrExhausted) {
		t.Errorf("err %v, want ErrExhausted", err)
	}
}

// TestHealthQuarantineProbation guarantees the health cycle: a number far below its pool's
// answer rate is quarantined and never picked, comes back on probation with a limited share
// after the rest, and is active again after healthy outcomes.
func TestHealthQuarantineProbation(t *testing.T) {
	cfg := PoolConfig{Strategy: "round_robin", Numbers: numbers(10, "+35840111"),
		Health: HealthConfig{MinSamples: 20, Ratio: 0.5, Rest: time.Hour, ProbationShare: 0.2, ProbationSamples: 5}}
	p := mustPool(t, cfg)
	bad := cfg.Numbers[3].Number
	now := t0
	for k := 0; k < 40; k++ {
		for i, n := range cfg.Numbers {
			if n.Number == bad {
				continue
			}
			if _, _, err := p.Record(n.Number, (k+i)%3 != 0, now); err != nil {
				t.Fatal(err)
			}
		}
	}
	var st State
	var changed bool
	for k := 0; k < 25 && st != StateQuarantined; k++ {
		st, changed, _ = p.Record(bad, k%10 == 0, now)
	}
	if st != StateQuarantined || !changed {
		t.Fatalf("bad number state %v after 25 outcomes at 10%%, want quarantined", st)
	}
	for _, s := range picks(t, p, "", 100, now) {
		if s == bad {
			t.Fatal("quarantined number picked")
		}
	}
	now = now.Add(time.Hour)
	count := 0
	for _, s := range picks(t, p, "", 900, now) {
		if s == bad {
			count++
		}
	}
	// Normal share 90 of 900; probation share 0.2 → about 18.
	if count == 0 || count > 25 {
		t.Errorf("probation number picked %d times of 900, want about 18", count)
	}
	if v := p.View(now)[3]; v.State != StateProbation {
		t.Errorf("state %v, want probation", v.State)
	}
	for k := 0; k < 5; k++ {
		st, _, _ = p.Record(bad, true, now)
	}
	if st != StateActive {
		t.Errorf("after 5 successes on probation: %v, want active", st)
	}
}

func TestValidate(t *testing.T) {
	good := PoolConfig{Name: "p", Channel: "sms", Strategy: "weighted", Numbers: numbers(2, "+35840")}
	for _, tc := range []struct {
		name string
		mod  func(*PoolConfig)
		want string
	}{
		{"ok", func(*PoolConfig) {}, ""},
		{"strategy", func(c *PoolConfig) { c.Strategy = "random" }, "strategy"},
		{"duplicate", func(c *PoolConfig) { c.Numbers[1].Number = c.Numbers[0].Number }, "numbers[1].number"},
		{"health ratio", func(c *PoolConfig) { c.Health.Ratio = 2 }, "health.ratio"},
		{"probation share", func(c *PoolConfig) { c.Health.ProbationShare = -1 }, "health.probation_share"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c := good
			c.Numbers = append([]NumberConfig(nil), good.Numbers...)
			tc.mod(&c)
			_, err := New(c)
			if tc.want == "" {
				if err != nil {
					t.Fatal(err)
				}
				return
			}
			if !errors.Is(err, ErrInvalidPool) || !strings.Contains(err.Error(), tc.want) {
				t.Fatalf("err %v, want ErrInvalidPool naming %s", err, tc.want)
			}
		})
	}
}

func stickyMap(t *testing.T, nums []NumberConfig, recipients []string) map[string]string {
	t.Helper()
	p := mustPool(t, PoolConfig{Strategy: "sticky", Numbers: nums})
	m := make(map[string]string, len(recipients))
	for _, r := range recipients {
		n, _, err := p.Pick(r, t0)
		if err != nil {
			t.Fatal(err)
		}
		m[r] = n
	}
	return m
}

// TestStickyProperty guarantees consistent hashing: removing one of 20 numbers keeps at
// least 95% of recipients (all but those of the removed number, in fact) on their number,
// and recipients spread over numbers within ±10% of their weights.
func TestStickyProperty(t *testing.T) {
	recipients := make([]string, 100000)
	for i := range recipients {
		recipients[i] = fmt.Sprintf("+3584%08d", i*7919%100000000)
	}
	for _, weights := range [][]int{{1}, {1, 2, 3}} {
		t.Run(fmt.Sprint("weights ", weights), func(t *testing.T) {
			nums := numbers(20, "+35840111")
			total := 0
			for i := range nums {
				nums[i].Weight = weights[i%len(weights)]
				total += nums[i].Weight
			}
			before := stickyMap(t, nums, recipients)
			count := map[string]int{}
			for _, n := range before {
				count[n]++
			}
			for _, n := range nums {
				want := float64(len(recipients)) * float64(n.Weight) / float64(total)
				if dev := float64(count[n.Number])/want - 1; math.Abs(dev) > 0.10 {
					t.Errorf("number %s weight %d: %d recipients, %.1f%% off its share", n.Number, n.Weight, count[n.Number], 100*dev)
				}
			}
			removed := nums[7].Number
			after := stickyMap(t, append(append([]NumberConfig(nil), nums[:7]...), nums[8:]...), recipients)
			kept, others := 0, 0
			for _, r := range recipients {
				if before[r] == removed {
					continue
				}
				others++
				if after[r] == before[r] {
					kept++
				}
			}
			if share := float64(kept) / float64(others); share < 0.95 {
				t.Errorf("kept %.2f%% of recipients not on the removed number, want >= 95%%", 100*share)
			}
			t.Logf("kept %d of %d recipients not on the removed number; %d of %d overall",
				kept, others, kept, len(recipients))
		})
	}
}

// FuzzPick guarantees that no recipient string breaks a pick (sticky hashing and the
// local-presence prefix match read it byte by byte).
func FuzzPick(f *testing.F) {
	for _, s := range []string{"", "+", "+1", "+12125550101", "+3584", "ALPHA", "+99999999999999999"} {
		f.Add(s)
	}
	nums := []NumberConfig{{Number: "+12125550101"}, {Number: "+358401110001"}, {Number: "SENDCORE"}}
	sticky := mustPool(f, PoolConfig{Strategy: "sticky", Numbers: nums})
	local := mustPool(f, PoolConfig{Strategy: "local_presence", Numbers: nums})
	f.Fuzz(func(t *testing.T, to string) {
		for _, p := range []*Pool{sticky, local} {
			if n, _, err := p.Pick(to, t0); err != nil || n == "" {
				t.Fatalf("Pick(%q) = %q, %v", to, n, err)
			}
		}
	})
}
