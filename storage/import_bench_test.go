package storage

import (
	"bytes"
	"fmt"
	"io"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strconv"
	"syscall"
	"testing"
	"time"
)

// importCSV writes n opt-out rows (tenant,channel,address; addresses +3584 then 8 digits,
// in order or shuffled) with a header, optionally every tenth one quoted.
func importCSV(n int, shuffle, quoted bool) []byte {
	idx := make([]int, n)
	for i := range idx {
		idx[i] = 2 * i
	}
	if shuffle {
		r := rand.New(rand.NewPCG(3, 4))
		r.Shuffle(n, func(i, j int) { idx[i], idx[j] = idx[j], idx[i] })
	}
	var b bytes.Buffer
	b.Grow(n * 26)
	b.WriteString("tenant,channel,address\n")
	for i, k := range idx {
		if quoted && i%10 == 0 {
			fmt.Fprintf(&b, "\"default\",sms,\"+3584%08d\"\n", k)
			continue
		}
		fmt.Fprintf(&b, "default,sms,+3584%08d\n", k)
	}
	return b.Bytes()
}

// cpuTime is the CPU time (user and system) of the whole process so far.
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// BenchmarkImportRows imports 200k rows per iteration into a fresh database and reports
// rows/s (wall) and the process CPU per row, which depends less on the machine's load.
func BenchmarkImportRows(b *testing.B) {
	const rows = 200_000
	for _, c := range []struct {
		name            string
		shuffle, quoted bool
	}{
		{"sorted", false, false},
		{"shuffled", true, false},
		{"quoted10pct", false, true},
	} {
		b.Run(c.name, func(b *testing.B) {
			data := importCSV(rows, c.shuffle, c.quoted)
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			var wall, cpu time.Duration
			for b.Loop() {
				b.StopTimer()
				db, err := Open(b.TempDir(), Options{}, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
				start, cpu0 := time.Now(), cpuTime()
				res, err := db.ImportOptOutsCSV(bytes.NewReader(data), ImportOptions{})
				wall += time.Since(start)
				cpu += cpuTime() - cpu0
				if err != nil || res.Imported != rows {
					b.Fatalf("%+v %v", res, err)
				}
				b.StopTimer()
				db.Close()
				b.StartTimer()
			}
			b.ReportMetric(float64(rows*b.N)/wall.Seconds(), "rows/s")
			b.ReportMetric(float64(cpu.Microseconds())/float64(rows*b.N), "cpu-µs/row")
		})
	}
}

// BenchmarkImportParse measures the CSV parser alone (no database), per row.
func BenchmarkImportParse(b *testing.B) {
	for _, quoted := range []bool{false, true} {
		b.Run(fmt.Sprintf("quoted10pct=%v", quoted), func(b *testing.B) {
			data := importCSV(100_000, false, quoted)
			opt := ImportOptions{Tenant: DefaultTenant, Channel: "all", Source: "import"}
			now := time.Now()
			b.ReportAllocs()
			b.SetBytes(int64(len(data)))
			buf := make([]byte, 0, importChunkBuf)
			rows := 0
			for b.Loop() {
				p := newCSVParser(bytes.NewReader(data), &opt, now)
				for {
					buf = buf[:0]
					_, _, _, err := p.next(&buf)
					if err == io.EOF {
						break
					}
					if err != nil {
						b.Fatal(err)
					}
					rows++
				}
			}
			b.ReportMetric(float64(rows)/b.Elapsed().Seconds(), "rows/s")
		})
	}
}

// BenchmarkOpenOptOuts opens a database holding SENDCORE_BENCH_OPEN_OPTOUTS opt-outs
// (default 1M; built once per process in a temp dir) after a clean Close: "state" uses the
// state file that Close saved, "scan" removes it first (as after a crash, or before the
// state file existed).
func BenchmarkOpenOptOuts(b *testing.B) {
	n := 1_000_000
	if s := os.Getenv("SENDCORE_BENCH_OPEN_OPTOUTS"); s != "" {
		n, _ = strconv.Atoi(s)
	}
	dir := b.TempDir()
	db, err := Open(dir, Options{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	start := time.Now()
	const step = 1_000_000
	for i := 0; i < n; i += step {
		var buf bytes.Buffer
		for j := i; j < min(n, i+step); j++ {
			fmt.Fprintf(&buf, "default,sms,+3584%08d\n", 2*j)
		}
		if _, err := db.ImportOptOutsCSV(&buf, ImportOptions{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Logf("loaded %d opt-outs in %v", n, time.Since(start))
	if err := db.Close(); err != nil {
		b.Fatal(err)
	}
	for _, mode := range []string{"state", "scan"} {
		b.Run(mode, func(b *testing.B) {
			b.ReportAllocs()
			for b.Loop() {
				if mode == "scan" {
					if err := os.Remove(filepath.Join(dir, optStateFile)); err != nil && !os.IsNotExist(err) {
						b.Fatal(err)
					}
				}
				db, err := Open(dir, Options{}, nil, nil)
				if err != nil {
					b.Fatal(err)
				}
				b.StopTimer()
				if c, _ := db.CountOptOuts(); c != n {
					b.Fatalf("count %d, want %d", c, n)
				}
				if err := db.Close(); err != nil {
					b.Fatal(err)
				}
				b.StartTimer()
			}
		})
	}
}
