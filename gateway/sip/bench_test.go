package sip_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	sipgw "github.com/sendcore/sendcore/gateway/sip"
	"github.com/sendcore/sendcore/gateway/sip/uastest"
)

func cpuTime() time.Duration {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkCallCycle measures complete call cycles (INVITE, 200, ACK, BYE, 200; no media)
// against uastest in the same process, many calls in flight.
func BenchmarkCallCycle(b *testing.B) {
	for _, transport := range []string{"udp", "tcp"} {
		b.Run(transport, func(b *testing.B) {
			u := newUAS(b, uastest.Options{})
			u.SetDefault(uastest.Behavior{NoMedia: true})
			addr := u.UDPAddr()
			if transport == "tcp" {
				addr = u.TCPAddr()
			}
			tr, _ := startTrunk(b, transport, addr, func(c *sipgw.Config) { c.CPS, c.MaxCalls = 1e6, 2000 })
			var n atomic.Int64
			var bad atomic.Int64
			b.ReportAllocs()
			b.SetParallelism(16)
			cpu0, t0 := cpuTime(), time.Now()
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					i := n.Add(1)
					c := &dispatch.Call{To: fmt.Sprintf("+3584%08d", i), From: "+358401110001", RingTimeout: 5 * time.Second, MaxDuration: time.Second}
					if r := tr.Call(context.Background(), c, nil); r.Status != dispatch.StatusCompleted {
						bad.Add(1)
					}
				}
			})
			b.StopTimer()
			el := time.Since(t0)
			b.ReportMetric(float64(b.N)/el.Seconds(), "calls/s")
			cpu := (cpuTime() - cpu0).Seconds()
			b.ReportMetric(cpu/el.Seconds(), "cpu_cores")
			b.ReportMetric(float64(b.N)/cpu, "calls/cpu_s")
			if bad.Load() > 0 {
				b.Fatalf("%d of %d calls not completed", bad.Load(), b.N)
			}
			u.Reset()
		})
	}
}

// BenchmarkCPSLimit offers far more calls than cps allows for 2 s and reports the attempt
// rate held (cps_measured, and its deviation from the limit in percent).
func BenchmarkCPSLimit(b *testing.B) {
	const cps = 200.0
	u := newUAS(b, uastest.Options{})
	u.SetDefault(uastest.Behavior{Status: 486})
	tr, _ := startTrunk(b, "udp", u.UDPAddr(), func(c *sipgw.Config) { c.CPS, c.MaxCalls = cps, 1000 })
	b.ReportAllocs()
	for b.Loop() {
		before := tr.Stats().Attempts
		ctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
		t0 := time.Now()
		var wg sync.WaitGroup
		for w := range 50 {
			wg.Go(func() {
				for i := 0; ctx.Err() == nil; i++ {
					tr.Call(ctx, &dispatch.Call{To: fmt.Sprintf("+3585%03d%05d", w, i), From: "+358401110001", RingTimeout: time.Second}, nil)
				}
			})
		}
		wg.Wait()
		cancel()
		got := float64(tr.Stats().Attempts-before) / time.Since(t0).Seconds()
		b.ReportMetric(got, "cps_measured")
		b.ReportMetric(100*(got-cps)/cps, "deviation_%")
		u.Reset()
	}
}

// BenchmarkConcurrentPrompts answers 200 calls at once, each playing a 3 s prompt, and
// reports the process CPU (trunk and uastest together) in cores, and the mean RTP packet
// interval the UAS saw (20 ms when paced right).
func BenchmarkConcurrentPrompts(b *testing.B) {
	const calls = 200
	u := newUAS(b, uastest.Options{})
	tr, _ := startTrunk(b, "udp", u.UDPAddr(), func(c *sipgw.Config) { c.CPS, c.MaxCalls = 1e6, calls })
	b.ReportAllocs()
	for b.Loop() {
		u.Reset()
		cpu0, t0 := cpuTime(), time.Now()
		var wg sync.WaitGroup
		var bad atomic.Int64
		for i := range calls {
			wg.Go(func() {
				c := &dispatch.Call{To: fmt.Sprintf("+3586%06d", i), From: "+358401110001", RingTimeout: 5 * time.Second, MaxDuration: 10 * time.Second, Prompt: "three"}
				if r := tr.Call(context.Background(), c, nil); r.Status != dispatch.StatusCompleted {
					bad.Add(1)
				}
			})
		}
		wg.Wait()
		el := time.Since(t0)
		cores := (cpuTime() - cpu0).Seconds() / el.Seconds()
		var pkts int64
		var intervals, worst time.Duration
		n := 0
		for _, c := range u.Calls() {
			pkts += c.RTPPackets
			if c.RTPPackets > 1 {
				iv := c.RTPLast.Sub(c.RTPFirst) / time.Duration(c.RTPPackets-1)
				intervals += iv
				worst = max(worst, iv)
				n++
			}
		}
		if bad.Load() > 0 || n != calls {
			b.Fatalf("%d calls not completed, %d with RTP", bad.Load(), n)
		}
		b.ReportMetric(cores, "cpu_cores")
		b.ReportMetric(float64(pkts)/float64(calls), "rtp_pkts/call")
		b.ReportMetric(float64(intervals/time.Duration(n))/1e6, "rtp_interval_ms")
		b.ReportMetric(float64(worst)/1e6, "rtp_interval_worst_ms")
	}
}
