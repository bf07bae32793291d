package storage_test

import (
	"bytes"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

// optOutCSV writes n opt-outs (addresses +3584 then 8 digits, spread over 0..2n) as CSV.
func optOutCSV(n int) []byte {
	var b bytes.Buffer
	b.Grow(n * 24)
	b.WriteString("tenant,channel,address\n")
	for i := range n {
		b.WriteString("default,sms,+3584")
		fmt.Fprintf(&b, "%08d", 2*i)
		b.WriteByte('\n')
	}
	return b.Bytes()
}

// BenchmarkImportCSV imports 200k rows per iteration into a fresh database.
func BenchmarkImportCSV(b *testing.B) {
	const rows = 200_000
	data := optOutCSV(rows)
	b.ReportAllocs()
	b.SetBytes(int64(len(data)))
	var total time.Duration
	for b.Loop() {
		b.StopTimer()
		db, err := storage.Open(b.TempDir(), storage.Options{}, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		start := time.Now()
		res, err := db.ImportOptOutsCSV(bytes.NewReader(data), storage.ImportOptions{})
		total += time.Since(start)
		if err != nil || res.Imported != rows {
			b.Fatalf("%+v %v", res, err)
		}
		b.StopTimer()
		db.Close()
		b.StartTimer()
	}
	b.ReportMetric(float64(rows*b.N)/total.Seconds(), "rows/s")
}

// loadedDB is one database with many opt-outs, built once per benchmark process in
// SENDCORE_BENCH_DIR (kept between runs) or a temp dir.
var (
	loadOnce sync.Once
	loadDir  string
	loadErr  error
)

func benchOptOuts() int {
	if s := os.Getenv("SENDCORE_BENCH_OPTOUTS"); s != "" {
		n, _ := strconv.Atoi(s)
		return n
	}
	return 10_000_000
}

func loadedDir(b *testing.B) string {
	b.Helper()
	n := benchOptOuts()
	loadOnce.Do(func() {
		loadDir = os.Getenv("SENDCORE_BENCH_DIR")
		if loadDir == "" {
			loadDir, loadErr = os.MkdirTemp("", "sendcore-optout-bench-")
			if loadErr != nil {
				return
			}
		}
		marker := filepath.Join(loadDir, fmt.Sprintf("loaded-%d", n))
		if _, err := os.Stat(marker); err == nil {
			return
		}
		db, err := storage.Open(loadDir, storage.Options{}, nil, nil)
		if err != nil {
			loadErr = err
			return
		}
		start := time.Now()
		res, err := db.ImportOptOutsCSV(bytes.NewReader(optOutCSV(n)), storage.ImportOptions{})
		if err != nil || res.Imported != n {
			loadErr = fmt.Errorf("load: %+v %v", res, err)
			return
		}
		fmt.Fprintf(os.Stderr, "loaded %d opt-outs in %v\n", n, time.Since(start))
		if loadErr = db.Close(); loadErr == nil {
			loadErr = os.WriteFile(marker, nil, 0o640)
		}
	})
	if loadErr != nil {
		b.Fatal(loadErr)
	}
	return loadDir
}

func dirSize(dir string) int64 {
	var n int64
	_ = filepath.Walk(dir, func(_ string, fi os.FileInfo, err error) error {
		if err == nil && !fi.IsDir() {
			if st, ok := fi.Sys().(*syscall.Stat_t); ok {
				n += st.Blocks * 512 // allocated, not apparent: vlog files are sparse
			} else {
				n += fi.Size()
			}
		}
		return nil
	})
	return n
}

func rssBytes() int64 {
	data, err := os.ReadFile("/proc/self/status")
	if err != nil {
		return 0
	}
	for _, l := range strings.Split(string(data), "\n") {
		if strings.HasPrefix(l, "VmRSS:") {
			f := strings.Fields(l)
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb * 1024
		}
	}
	return 0
}

// BenchmarkOptedOut checks numbers against 10M loaded opt-outs (SENDCORE_BENCH_OPTOUTS to
// change), 99% misses, from GOMAXPROCS*4 goroutines; it reports p50/p99 latency, the RSS
// of the process and the size of the data dir.
func BenchmarkOptedOut(b *testing.B) {
	dir := loadedDir(b)
	n := benchOptOuts()
	for _, c := range []struct {
		name string
		opts storage.Options
	}{
		{"filter", storage.Options{}},
		{"nofilter", storage.Options{NoOptOutFilter: true}},
	} {
		start := time.Now()
		db, err := storage.Open(dir, c.opts, nil, nil)
		if err != nil {
			b.Fatal(err)
		}
		openTook := time.Since(start)
		if cnt, _ := db.CountOptOuts(); cnt != n {
			b.Fatalf("count %d, want %d", cnt, n)
		}
		b.Run(c.name, func(b *testing.B) {
			// Addresses: 1% present (even numbers below 2n), 99% absent (odd ones).
			const nAddr = 1 << 16
			addrs := make([]string, nAddr)
			r := rand.New(rand.NewPCG(1, 2))
			for i := range addrs {
				k := 2 * r.IntN(n)
				if i%100 != 0 {
					k++
				}
				addrs[i] = fmt.Sprintf("+3584%08d", k)
			}
			var hits atomic.Int64
			var mu sync.Mutex
			var lat []time.Duration
			b.ReportAllocs()
			b.SetParallelism(4)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				i := rand.IntN(nAddr)
				local := make([]time.Duration, 0, 1<<14)
				for pb.Next() {
					i = (i + 1) & (nAddr - 1)
					t0 := time.Now()
					ok, err := db.OptedOut("default", "sms", addrs[i])
					if len(local) < cap(local) {
						local = append(local, time.Since(t0))
					}
					if err != nil {
						b.Error(err)
						return
					}
					if ok {
						hits.Add(1)
					}
				}
				mu.Lock()
				lat = append(lat, local...)
				mu.Unlock()
			})
			b.StopTimer()
			slices.Sort(lat)
			if len(lat) > 0 {
				b.ReportMetric(float64(lat[len(lat)/2].Nanoseconds())/1e3, "p50-µs")
				b.ReportMetric(float64(lat[len(lat)*99/100].Nanoseconds())/1e3, "p99-µs")
			}
			b.ReportMetric(float64(hits.Load())/float64(b.N)*100, "hit-%")
			b.ReportMetric(float64(rssBytes())/(1<<20), "rss-MiB")
			b.ReportMetric(float64(dirSize(dir))/(1<<20), "disk-MiB")
			b.ReportMetric(openTook.Seconds(), "open-s")
		})
		if err := db.Close(); err != nil {
			b.Fatal(err)
		}
	}
}

// BenchmarkLedger measures a request's ledger writes: Claim, then Append of one event,
// from many goroutines.
func BenchmarkLedger(b *testing.B) {
	for _, par := range []int{1, 8, 64} {
		b.Run(fmt.Sprintf("claim+append/goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			db, err := storage.Open(b.TempDir(), storage.Options{}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var seq atomic.Int64
			now := time.Now()
			b.ReportAllocs()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := "req-" + strconv.FormatInt(seq.Add(1), 10)
					if _, _, err := db.Claim(id, "sendcore.requests/0/1", now); err != nil {
						b.Error(err)
						return
					}
					if err := db.Append([]dispatch.Event{{ID: id, Status: dispatch.StatusAccepted, TS: now}}); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
		// What the pipeline does now: the claim and its accepted event in one write.
		b.Run(fmt.Sprintf("claimaccepted/goroutines=%d", par*runtime.GOMAXPROCS(0)), func(b *testing.B) {
			db, err := storage.Open(b.TempDir(), storage.Options{}, nil, nil)
			if err != nil {
				b.Fatal(err)
			}
			defer db.Close()
			var seq atomic.Int64
			now := time.Now()
			b.ReportAllocs()
			b.SetParallelism(par)
			b.ResetTimer()
			b.RunParallel(func(pb *testing.PB) {
				for pb.Next() {
					id := "req-" + strconv.FormatInt(seq.Add(1), 10)
					ev := dispatch.Event{ID: id, Tenant: "default", Channel: "sms", To: "+358401234567", Status: dispatch.StatusAccepted, TS: now}
					if _, existed, q, err := db.ClaimAccepted(id, "sendcore.requests/0/1", now, ev); err != nil || existed || q == 0 {
						b.Errorf("ClaimAccepted(%s) = existed %v, seq %d, %v", id, existed, q, err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "requests/s")
		})
	}
}

// BenchmarkLedgerAppendBatch measures status updates written as the pipeline writes them:
// one Append per batch of 100 events (a quarter of them terminal), from 2 goroutines.
func BenchmarkLedgerAppendBatch(b *testing.B) {
	db, err := storage.Open(b.TempDir(), storage.Options{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var seq atomic.Int64
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		batch := make([]dispatch.Event, 100)
		for pb.Next() {
			fillEventBatch(batch, seq.Add(100), now)
			if err := db.Append(batch); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}

// fillEventBatch sets batch to events of ids base.. with a quarter of them terminal.
func fillEventBatch(batch []dispatch.Event, base int64, now time.Time) {
	for i := range batch {
		st := dispatch.StatusSubmitted
		if i%4 == 0 {
			st = dispatch.StatusDelivered
		}
		batch[i] = dispatch.Event{ID: "req-" + strconv.FormatInt(base+int64(i), 10), Status: st, TS: now, Segments: 1}
	}
}

// BenchmarkLedgerOutboxCycle measures the transactional outbox as the pipeline drives it:
// AppendSeqs of a batch of 100 events (each event's outbox entry and history index in one
// transaction, a quarter of them terminal), then Published of their sequence numbers
// (one watermark write).
func BenchmarkLedgerOutboxCycle(b *testing.B) {
	db, err := storage.Open(b.TempDir(), storage.Options{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	var seq atomic.Int64
	now := time.Now()
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		batch := make([]dispatch.Event, 100)
		for pb.Next() {
			fillEventBatch(batch, seq.Add(100), now)
			seqs, err := db.AppendSeqs(batch)
			if err != nil {
				b.Error(err)
				return
			}
			if err := db.Published(seqs); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N*100)/b.Elapsed().Seconds(), "events/s")
}
