package smpp

import (
	"context"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	gosmpp "github.com/fiorix/go-smpp/smpp"
	"github.com/fiorix/go-smpp/smpp/pdu/pdutext"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
	"github.com/sendcore/sendcore/segment"
)

// benchSubmits drives one session with the given window against smsctest: b.N one-part
// messages, measured from the first Send to the last done. Allocations include smsctest's.
func benchSubmits(b *testing.B, window int) {
	b.ReportAllocs()
	runSubmits(b, smsctest.Options{DisableRecording: true}, func(cfg *Config) { cfg.Window = window })
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
}

// runSubmits sends b.N one-part messages through a connection (cfg from testConfig,
// changed by tune) to an smsctest server with opts, timing from the first Send to the
// last done; it fails the benchmark if any message did not go through and returns the
// connection's stats.
func runSubmits(b *testing.B, opts smsctest.Options, tune func(*Config)) Stats {
	srv := smsctest.NewServer(opts)
	defer srv.Close()
	cfg := testConfig(srv.Addr())
	cfg.SystemID, cfg.Password = "", ""
	tune(&cfg)
	c, err := NewConnection(cfg, Handlers{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	runDone := make(chan error)
	go func() { runDone <- c.Run(ctx) }()
	for !c.Ready() {
		time.Sleep(time.Millisecond)
	}
	m := &dispatch.SMS{RequestID: "b", To: "+358401234567", From: "Sendcore",
		Parts: []segment.Part{{ShortMessage: []byte("benchmark message text"), Seq: 1, Total: 1}}}
	var done, failed atomic.Int64
	all := make(chan struct{})
	n := int64(b.N)
	cb := func(r []dispatch.PartResult) {
		if r[0].Outcome != dispatch.OutcomeOK {
			failed.Add(1)
		}
		if done.Add(1) == n {
			close(all)
		}
	}
	b.ResetTimer()
	for i := 0; i < b.N; i++ {
		if err := c.Send(ctx, m, cb); err != nil {
			b.Fatal(err)
		}
	}
	<-all
	b.StopTimer()
	st := c.Stats()
	cancel()
	<-runDone
	if failed.Load() > 0 {
		b.Fatalf("%d failed", failed.Load())
	}
	return st
}

func BenchmarkSubmitWindow100(b *testing.B) { benchSubmits(b, 100) }
func BenchmarkSubmitWindow1(b *testing.B)   { benchSubmits(b, 1) }

// BenchmarkGoSMPPTransmitter100 is the baseline: go-smpp's own Transmitter driven by 100
// goroutines (its in-flight count is its goroutine count) against the same smsctest.
func BenchmarkGoSMPPTransmitter100(b *testing.B) {
	srv := smsctest.NewServer(smsctest.Options{DisableRecording: true})
	defer srv.Close()
	tx := &gosmpp.Transmitter{Addr: srv.Addr(), User: "esme", Passwd: "pw", RespTimeout: 5 * time.Second}
	st := tx.Bind()
	for s := range st {
		if s.Status() == gosmpp.Connected {
			break
		}
	}
	defer tx.Close()
	var next atomic.Int64
	var wg sync.WaitGroup
	var failed atomic.Int64
	b.ReportAllocs()
	b.ResetTimer()
	for g := 0; g < 100; g++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for next.Add(1) <= int64(b.N) {
				_, err := tx.Submit(&gosmpp.ShortMessage{Src: "Sendcore", Dst: "358401234567", Text: pdutext.Raw("benchmark message text")})
				if err != nil {
					failed.Add(1)
				}
			}
		}()
	}
	wg.Wait()
	b.StopTimer()
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "submits/s")
	if failed.Load() > 0 {
		b.Fatalf("%d failed", failed.Load())
	}
}

// BenchmarkThrottledSMSC: b.N one-part messages through two binds configured for 2000/s
// to an SMSC that throttles above 500/s. It reports the achieved rate (the adaptive
// throttle should hold it near 500/s) and throttled responses per 100 submits. Run it with
// a fixed count, e.g. -benchtime 3000x.
func BenchmarkThrottledSMSC(b *testing.B) {
	st := runSubmits(b, smsctest.Options{ThrottleAbove: 500, DisableRecording: true}, func(cfg *Config) {
		cfg.TPS, cfg.Window, cfg.Binds = 2000, 20, 2
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "achieved/s")
	b.ReportMetric(100*float64(st.Throttles)/float64(b.N), "throttled/100")
	b.ReportMetric(0, "ns/op")
}
