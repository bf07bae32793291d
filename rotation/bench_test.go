package rotation

import (
	"fmt"
	"testing"
	"time"
)

func benchPick(b *testing.B, strategy string, n int) {
	nums := make([]NumberConfig, n)
	for i := range nums {
		// Numbers spread over 100 US area codes, so local_presence has real groups.
		nums[i] = NumberConfig{Number: fmt.Sprintf("+1%03d555%04d", 200+i%100, i), Weight: 1 + i%3,
			MaxPerHour: 1 << 30, MaxPerDay: 1 << 30}
	}
	p := mustPool(b, PoolConfig{Strategy: strategy, Numbers: nums})
	to := make([]string, 1024)
	for i := range to {
		to[i] = fmt.Sprintf("+1%03d%07d", 200+i*7%150, i*7919%10000000)
	}
	now := t0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := p.Pick(to[i&1023], now); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkPick: one pick from a 1,000-number pool with caps; sticky also with 10,000.
func BenchmarkPick(b *testing.B) {
	for _, s := range []string{"round_robin", "weighted", "least_used", "sticky", "local_presence"} {
		b.Run(s+"/1000", func(b *testing.B) { benchPick(b, s, 1000) })
	}
	b.Run("sticky/10000", func(b *testing.B) { benchPick(b, "sticky", 10000) })
}

// BenchmarkPickCooldown: round robin over 1,000 numbers where most are in their cooldown
// (timer heap churn on every pick).
func BenchmarkPickCooldown(b *testing.B) {
	p := mustPool(b, PoolConfig{Strategy: "round_robin", Cooldown: time.Millisecond, Numbers: numbers(1000, "+35840")})
	now := t0
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		now = now.Add(time.Microsecond)
		if _, _, err := p.Pick("", now); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkRecord(b *testing.B) {
	p := mustPool(b, PoolConfig{Strategy: "round_robin", Numbers: numbers(1000, "+35840")})
	b.ReportAllocs()
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if _, _, err := p.Record(p.nums[i%1000].id, i%3 != 0, t0); err != nil {
			b.Fatal(err)
		}
	}
}
