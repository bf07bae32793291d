package kafka_test

import (
	"bytes"
	"fmt"
	"log/slog"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
	"github.com/sendcore/sendcore/storage"
)

// BenchmarkEndToEnd measures the whole pipeline in one process: embedded broker →
// Source → parse/claim/opt-out check → smpp.Connection → smsctest, events on, Badger
// storage. 1-segment GSM-7 requests to distinct recipients; the opt-out list holds
// SENDCORE_BENCH_OPTOUTS entries (default 1,000,000). It reports requests/s from the
// first produce to the last `submitted`.
func BenchmarkEndToEnd(b *testing.B) {
	nOpt := 1_000_000
	if v, err := strconv.Atoi(os.Getenv("SENDCORE_BENCH_OPTOUTS")); err == nil {
		nOpt = v
	}
	cfg := testConfig()
	cfg.Partitions = 8
	broker := startBroker(b, cfg)
	smsc := smsctest.NewServer(smsctest.Options{SystemID: "esme", Password: "secret", DisableRecording: true})
	defer smsc.Close()
	dir := b.TempDir()
	{
		db, err := storage.Open(dir, storage.Options{}, slog.New(slog.DiscardHandler), nil)
		if err != nil {
			b.Fatal(err)
		}
		var csv bytes.Buffer
		for i := 0; i < nOpt; i++ {
			fmt.Fprintf(&csv, "default,all,+4470%08d,bench,\n", i)
		}
		if _, err := db.ImportOptOutsCSV(&csv, storage.ImportOptions{}); err != nil {
			b.Fatal(err)
		}
		db.Close()
	}
	s := startStack(b, cfg, broker, dir, smsc, nil)
	defer s.stop(b)
	keys := make([]string, b.N)
	values := make([][]byte, b.N)
	for i := range values {
		to := fmt.Sprintf("+3584%08d", i)
		keys[i], values[i] = to, []byte(sms(fmt.Sprintf("b-%d-%d", b.N, i), to, "Your code is 123456", ""))
	}
	b.ReportAllocs()
	b.ResetTimer()
	start := time.Now()
	produce(b, broker.Addrs(), cfg.RequestsTopic, keys, values)
	deadline := time.Now().Add(5 * time.Minute)
	for s.counter("sendcore_dispatch_requests_total", "submitted") < float64(b.N) {
		if time.Now().After(deadline) {
			b.Fatalf("only %v of %d submitted", s.counter("sendcore_dispatch_requests_total", "submitted"), b.N)
		}
		time.Sleep(2 * time.Millisecond)
	}
	el := time.Since(start)
	b.StopTimer()
	b.ReportMetric(float64(b.N)/el.Seconds(), "req/s")
	mfs, _ := s.reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() == "sendcore_dispatch_stage_seconds" {
			for _, m := range mf.GetMetric() {
				h := m.GetHistogram()
				b.Logf("stage %s: mean %.3f ms over %d", m.GetLabel()[0].GetValue(), 1000*h.GetSampleSum()/float64(h.GetSampleCount()), h.GetSampleCount())
			}
		}
	}
}
