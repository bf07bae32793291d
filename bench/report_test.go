package bench

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"
)

func sampleReport() Report {
	start := time.Unix(1700000000, 0)
	gen := GenStats{Produced: 100, Acked: 100, ByKind: map[string]int64{"gsm": 80, "gsm_multi": 20}, Start: start, End: start.Add(time.Second)}
	tally := TallySnapshot{Done: 100, Outcomes: map[string]int{"delivered": 95, "suppressed": 5}, Segments: 114,
		Receipts: 95, Latency: Latency{Count: 95, P50: 1, P90: 2, P99: 3, Max: 4}, LastDone: start.Add(2 * time.Second)}
	return BuildReport(gen, tally, Usage{CPU: time.Second}, Usage{CPU: 3 * time.Second, PeakRSSBytes: 64 << 20},
		map[string]string{"requests": "100", "window": "10"})
}

func TestBuildReport(t *testing.T) {
	r := sampleReport()
	if r.Requests != 100 || r.Segments != 114 || r.DurationS != 2 || r.RequestsPerS != 50 || r.SegmentsPerS != 57 ||
		r.CPUS != 2 || r.PeakRSSBytes != 64<<20 || r.ProduceS != 1 || r.Incomplete != 0 {
		t.Fatalf("report %+v", r)
	}
	if bad := r.Check(); bad != nil {
		t.Fatalf("Check = %v", bad)
	}
}

// The JSON report has every key of contract §7.
func TestReportJSONKeys(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteJSON(&buf); err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := json.Unmarshal(buf.Bytes(), &m); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"requests", "segments", "duration_s", "requests_per_s", "segments_per_s", "latency_ms",
		"cpu_s", "peak_rss_bytes", "outcomes", "settings"} {
		if _, ok := m[k]; !ok {
			t.Errorf("key %q missing", k)
		}
	}
	lat, _ := m["latency_ms"].(map[string]any)
	for _, k := range []string{"p50", "p90", "p99", "max"} {
		if _, ok := lat[k]; !ok {
			t.Errorf("latency_ms.%s missing", k)
		}
	}
}

func TestReportCheck(t *testing.T) {
	for _, tc := range []struct {
		name string
		mod  func(*Report)
		want string
	}{
		{"outcomes do not add up", func(r *Report) { r.Outcomes["delivered"]-- }, "outcomes sum"},
		{"fewer segments than sent SMS", func(r *Report) { r.Segments = 10 }, "segments 10"},
		{"incomplete", func(r *Report) { r.Incomplete = 3 }, "not done"},
		{"extra terminals", func(r *Report) { r.ExtraTerminals = 1 }, "beyond one"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			r := sampleReport()
			tc.mod(&r)
			bad := r.Check()
			if len(bad) != 1 || !strings.Contains(bad[0], tc.want) {
				t.Fatalf("Check = %v, want one problem naming %q", bad, tc.want)
			}
		})
	}
}

func TestReportTable(t *testing.T) {
	var buf bytes.Buffer
	if err := sampleReport().WriteTable(&buf); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"50 requests/s", "57 segments/s", "p99 3.00 ms", "delivered=95 suppressed=5", "requests=100 window=10", "64.0 MiB"} {
		if !strings.Contains(buf.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, buf.String())
		}
	}
}

// The usage sample is real: CPU time grows with work, and the peak RSS is non-zero.
func TestSampleUsage(t *testing.T) {
	a := SampleUsage()
	x := 0
	for deadline := time.Now().Add(30 * time.Millisecond); time.Now().Before(deadline); {
		x++
	}
	b := SampleUsage()
	if b.CPU <= a.CPU || b.PeakRSSBytes < 1<<20 {
		t.Fatalf("usage before %+v after %+v (loops %d)", a, b, x)
	}
}
