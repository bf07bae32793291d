package bench

import (
	"encoding/json"
	"fmt"
	"io"
	"maps"
	"os"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of one bench run (contract §7). Its JSON has at least the
// contract's keys; the rest are additions.
type Report struct {
	// Requests is the number of requests done (terminal event, or submitted when
	// receipts are not awaited) within the run.
	Requests int `json:"requests"`
	// Segments is the billing count of every request seen submitted.
	Segments  int64   `json:"segments"`
	DurationS float64 `json:"duration_s"` // first produce → last request done
	// RequestsPerS and SegmentsPerS are Requests and Segments over DurationS.
	RequestsPerS float64 `json:"requests_per_s"`
	SegmentsPerS float64 `json:"segments_per_s"`
	// LatencyMS is produce → submit_sm_resp (the submitted event's ts − the request's t0).
	LatencyMS Latency `json:"latency_ms"`
	// CPUS is the user+system CPU time of the whole bench process during the run: the
	// gateway and, when embedded, the broker, the SMSC, the SIP endpoint and the
	// generator itself.
	CPUS float64 `json:"cpu_s"`
	// PeakRSSBytes is the process's peak resident set size (it includes the embedded peers).
	PeakRSSBytes int64 `json:"peak_rss_bytes"`
	// Outcomes counts done requests by terminal status ("submitted" when receipts are not
	// awaited); it sums to Requests.
	Outcomes map[string]int `json:"outcomes"`
	// Settings are every flag's value.
	Settings map[string]string `json:"settings"`

	Produced int64 `json:"produced"` // requests acknowledged by the broker
	// Incomplete is Produced − Requests: requests without an outcome at the deadline.
	Incomplete int64            `json:"incomplete"`
	ProduceS   float64          `json:"produce_s"` // time spent producing
	ByKind     map[string]int64 `json:"by_kind"`   // produced requests per kind
	Receipts   int64            `json:"receipts"`
	// Stages is the gateway's latency per pipeline stage over the run (from its metrics;
	// empty with an external gateway): where produce → submit_sm_resp goes. "wait" is
	// from the request's produce timestamp until a worker takes it (the broker, the
	// consumer and the worker's queue).
	Stages map[string]StageLatency `json:"stages,omitempty"`
	// ExtraTerminals counts terminal events beyond an id's first (should be 0).
	ExtraTerminals int64     `json:"extra_terminals"`
	Started        time.Time `json:"started"`
	Machine        Machine   `json:"machine"`
}

// Machine describes where a report was made.
type Machine struct {
	CPUs      int    `json:"cpus"`
	Procs     int    `json:"gomaxprocs"`
	GOOS      string `json:"goos"`
	GOARCH    string `json:"goarch"`
	GoVersion string `json:"go_version"`
	Hostname  string `json:"hostname"`
}

// ThisMachine describes the running machine.
func ThisMachine() Machine {
	h, _ := os.Hostname()
	return Machine{CPUs: runtime.NumCPU(), Procs: runtime.GOMAXPROCS(0), GOOS: runtime.GOOS, GOARCH: runtime.GOARCH, GoVersion: runtime.Version(), Hostname: h}
}

// Usage is a sample of the process's resource usage.
type Usage struct {
	CPU          time.Duration // user + system, since the process started
	PeakRSSBytes int64
}

// BuildReport assembles a report from the generator's and the tally's counters, the
// resource usage before and after the run, and the settings.
func BuildReport(gen GenStats, tally TallySnapshot, before, after Usage, settings map[string]string) Report {
	r := Report{
		Requests: tally.Done, Segments: tally.Segments, LatencyMS: tally.Latency,
		CPUS: (after.CPU - before.CPU).Seconds(), PeakRSSBytes: after.PeakRSSBytes,
		Outcomes: tally.Outcomes, Settings: settings, Produced: gen.Acked,
		Incomplete: gen.Acked - int64(tally.Done), ByKind: gen.ByKind, Receipts: tally.Receipts,
		ExtraTerminals: tally.ExtraTerminals, Started: gen.Start, Machine: ThisMachine(),
	}
	if r.Outcomes == nil {
		r.Outcomes = map[string]int{}
	}
	if r.Settings == nil {
		r.Settings = map[string]string{}
	}
	if !gen.End.IsZero() {
		r.ProduceS = gen.End.Sub(gen.Start).Seconds()
	}
	if !tally.LastDone.IsZero() && tally.LastDone.After(gen.Start) {
		r.DurationS = tally.LastDone.Sub(gen.Start).Seconds()
	}
	if r.DurationS > 0 {
		r.RequestsPerS = float64(r.Requests) / r.DurationS
		r.SegmentsPerS = float64(r.Segments) / r.DurationS
	}
	return r
}

// Check reports what is inconsistent in r: outcomes that do not sum to requests, fewer
// segments than SMS requests done through submission, incomplete requests, extra
// terminal events. nil means consistent.
func (r Report) Check() []string {
	var bad []string
	sum := 0
	for _, n := range r.Outcomes {
		sum += n
	}
	if sum != r.Requests {
		bad = append(bad, fmt.Sprintf("outcomes sum to %d, requests are %d", sum, r.Requests))
	}
	sent := 0
	for _, s := range []string{"submitted", "delivered", "undelivered"} {
		sent += r.Outcomes[s]
	}
	if r.Segments < int64(sent) {
		bad = append(bad, fmt.Sprintf("segments %d < SMS requests sent %d", r.Segments, sent))
	}
	if r.Incomplete != 0 {
		bad = append(bad, fmt.Sprintf("%d requests produced but not done", r.Incomplete))
	}
	if r.ExtraTerminals != 0 {
		bad = append(bad, fmt.Sprintf("%d terminal events beyond one per request", r.ExtraTerminals))
	}
	return bad
}

// WriteJSON writes r as indented JSON.
func (r Report) WriteJSON(w io.Writer) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(r)
}

// WriteJSONFile writes r as indented JSON to path.
func (r Report) WriteJSONFile(path string) error {
	f, err := os.Create(path)
	if err != nil {
		return fmt.Errorf("bench: report: %w", err)
	}
	if err := r.WriteJSON(f); err != nil {
		f.Close()
		return fmt.Errorf("bench: report %s: %w", path, err)
	}
	return f.Close()
}

// WriteTable writes r for a human: results, latency, resources, outcomes, settings.
func (r Report) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	p := func(f string, a ...any) { fmt.Fprintf(tw, f+"\n", a...) }
	p("requests\t%d\t(produced %d, incomplete %d)", r.Requests, r.Produced, r.Incomplete)
	p("segments\t%d", r.Segments)
	p("duration\t%.2f s\t(producing %.2f s)", r.DurationS, r.ProduceS)
	p("throughput\t%.0f requests/s\t%.0f segments/s", r.RequestsPerS, r.SegmentsPerS)
	p("latency (produce → submit_sm_resp)\tp50 %.2f ms\tp90 %.2f ms\tp99 %.2f ms\tmax %.2f ms\t(n=%d)",
		r.LatencyMS.P50, r.LatencyMS.P90, r.LatencyMS.P99, r.LatencyMS.Max, r.LatencyMS.Count)
	if len(r.Stages) > 0 {
		parts := make([]string, 0, len(r.Stages))
		for _, st := range sortedStages(r.Stages) {
			l := r.Stages[st]
			over := ""
			if l.Over {
				over = "+"
			}
			parts = append(parts, fmt.Sprintf("%s %s/%s%s", st, fmtMS(l.P50MS), fmtMS(l.P99MS), over))
		}
		p("stages (p50/p99 ms, at most)\t%s", strings.Join(parts, "  "))
	}
	p("cpu\t%.2f s\t(%.2f cores)", r.CPUS, r.CPUS/max(r.DurationS, 1e-9))
	p("peak rss\t%.1f MiB", float64(r.PeakRSSBytes)/(1<<20))
	p("outcomes\t%s", joinCounts(r.Outcomes))
	if len(r.ByKind) > 0 {
		p("mix\t%s", joinCounts(r.ByKind))
	}
	if r.ExtraTerminals > 0 {
		p("extra terminal events\t%d", r.ExtraTerminals)
	}
	keys := slices.Sorted(maps.Keys(r.Settings))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, k+"="+r.Settings[k])
	}
	p("settings\t%s", strings.Join(parts, " "))
	p("machine\t%d cpus (GOMAXPROCS %d) %s/%s %s", r.Machine.CPUs, r.Machine.Procs, r.Machine.GOOS, r.Machine.GOARCH, r.Machine.GoVersion)
	return tw.Flush()
}

// joinCounts formats a count map as "k=v k=v" in key order.
func joinCounts[V int | int64](m map[string]V) string {
	if len(m) == 0 {
		return "-"
	}
	keys := slices.Sorted(maps.Keys(m))
	parts := make([]string, 0, len(keys))
	for _, k := range keys {
		parts = append(parts, fmt.Sprintf("%s=%d", k, m[k]))
	}
	return strings.Join(parts, " ")
}

// fmtMS formats milliseconds with three significant digits at most, without exponents.
func fmtMS(v float64) string {
	switch {
	case v >= 100:
		return strconv.FormatFloat(v, 'f', 0, 64)
	case v >= 10:
		return strconv.FormatFloat(v, 'f', 1, 64)
	case v >= 1:
		return strconv.FormatFloat(v, 'f', 2, 64)
	}
	return strconv.FormatFloat(v, 'f', 3, 64)
}
