package main

import (
	"bytes"
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
)

func runBenchCmd(t *testing.T, args ...string) (int, string, string) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := dispatchCommand(ctx, args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

// A small bench through the real pipeline writes a complete and consistent JSON report:
// every key of contract §7, outcomes summing to the requests, at least one segment per
// SMS sent, ordered percentiles, every flag in settings.
func TestBenchSmallReport(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole gateway")
	}
	path := filepath.Join(t.TempDir(), "report.json")
	code, stdout, stderr := runBenchCmd(t, "bench", "--requests", "300", "--voice", "0.05", "--ucs2", "0.2", "--multipart", "0.2",
		"--optouts", "1000", "--quiet", "--timeout", "40s", "--json", path)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var raw map[string]json.RawMessage
	if err := json.Unmarshal(data, &raw); err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{"requests", "segments", "duration_s", "requests_per_s", "segments_per_s", "latency_ms",
		"cpu_s", "peak_rss_bytes", "outcomes", "settings"} {
		if _, ok := raw[k]; !ok {
			t.Errorf("report lacks %q", k)
		}
	}
	var r struct {
		Requests     int                `json:"requests"`
		Segments     int64              `json:"segments"`
		DurationS    float64            `json:"duration_s"`
		RequestsPerS float64            `json:"requests_per_s"`
		SegmentsPerS float64            `json:"segments_per_s"`
		Latency      map[string]float64 `json:"latency_ms"`
		CPUS         float64            `json:"cpu_s"`
		PeakRSS      int64              `json:"peak_rss_bytes"`
		Outcomes     map[string]int     `json:"outcomes"`
		Settings     map[string]string  `json:"settings"`
		ByKind       map[string]int     `json:"by_kind"`
		Stages       map[string]struct {
			Count int64   `json:"count"`
			P99MS float64 `json:"p99_ms"`
		} `json:"stages"`
	}
	if err := json.Unmarshal(data, &r); err != nil {
		t.Fatal(err)
	}
	sum := 0
	for _, n := range r.Outcomes {
		sum += n
	}
	sms := r.Outcomes["delivered"] + r.Outcomes["undelivered"]
	if r.Requests != 300 || sum != r.Requests || sms+r.Outcomes["completed"] != 300 || r.ByKind["voice"] != r.Outcomes["completed"] {
		t.Fatalf("requests %d, outcomes %v (sum %d), by kind %v", r.Requests, r.Outcomes, sum, r.ByKind)
	}
	// GSM 1, multi-part 2, UCS-2 1 segment each.
	if wantSeg := int64(sms + r.ByKind["gsm_multi"]); r.Segments != wantSeg || r.Segments < int64(sms) {
		t.Errorf("segments %d, want %d (SMS %d + multi-part %d)", r.Segments, wantSeg, sms, r.ByKind["gsm_multi"])
	}
	if r.DurationS <= 0 || r.RequestsPerS <= 0 || r.SegmentsPerS < r.RequestsPerS*float64(sms)/300 || r.CPUS <= 0 || r.PeakRSS <= 0 {
		t.Errorf("duration %v, rates %v %v, cpu %v, rss %d", r.DurationS, r.RequestsPerS, r.SegmentsPerS, r.CPUS, r.PeakRSS)
	}
	l := r.Latency
	if !(l["p50"] > 0 && l["p50"] <= l["p90"] && l["p90"] <= l["p99"] && l["p99"] <= l["max"]) {
		t.Errorf("latency %v not ordered", l)
	}
	for k, v := range map[string]string{"requests": "300", "voice": "0.05", "optouts": "1000", "binds": "1", "window": "10", "partitions": "8"} {
		if r.Settings[k] != v {
			t.Errorf("settings[%s] = %q, want %q", k, r.Settings[k], v)
		}
	}
	// Every measured request was waited for, parsed and claimed once (warm-up excluded).
	for _, st := range []string{"wait", "parse", "claim"} {
		if c := r.Stages[st]; c.Count != 300 || c.P99MS <= 0 {
			t.Errorf("stage %s = %+v, want 300 observations with a p99", st, c)
		}
	}
	for _, want := range []string{"requests/s", "segments/s", "p99", "outcomes", "stages"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("table lacks %q:\n%s", want, stdout)
		}
	}
}

// A sweep runs every cell and writes the table and the SVG chart.
func TestBenchSweepSmall(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole gateway per cell")
	}
	svg := filepath.Join(t.TempDir(), "sweep.svg")
	code, stdout, stderr := runBenchCmd(t, "bench", "sweep", "--windows", "1,20", "--binds", "1", "--smsc-latencies", "0",
		"--requests", "150", "--quiet", "--timeout", "30s", "--svg", svg)
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr)
	}
	lines := strings.Split(strings.TrimSpace(stdout), "\n")
	if len(lines) != 3 {
		t.Fatalf("table:\n%s", stdout)
	}
	data, err := os.ReadFile(svg)
	if err != nil || !bytes.Contains(data, []byte("<svg")) || !bytes.Contains(data, []byte("binds 1, smsc 0s")) {
		t.Fatalf("svg: %v, %d bytes", err, len(data))
	}
}

func TestBenchUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no count nor duration", []string{"bench", "--requests", "0"}, "--requests or --duration"},
		{"binds", []string{"bench", "--binds", "0"}, "--binds"},
		{"mix over one", []string{"bench", "--ucs2", "0.6", "--voice", "0.6"}, "at most 1"},
		{"log level", []string{"bench", "--log-level", "loud"}, "--log-level"},
		{"argument", []string{"bench", "now"}, `unexpected argument "now"`},
		{"sweep windows", []string{"bench", "sweep", "--windows", "1,x"}, "--windows"},
		{"sweep latencies", []string{"bench", "sweep", "--smsc-latencies", "fast"}, "--smsc-latencies"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d naming %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}
