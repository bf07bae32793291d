package bench

import (
	"math"
	"slices"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// StageMetric is the histogram of the pipeline's stage latencies (dispatch).
const StageMetric = "sendcore_dispatch_stage_seconds"

// StageLatency is one pipeline stage's latency over a run, from its histogram: each
// quantile is the upper bound of the bucket it falls in (so "at most"), in ms; a
// quantile beyond the last bucket is reported as that bucket's bound with Over set.
type StageLatency struct {
	Count int64   `json:"count"`
	P50MS float64 `json:"p50_ms"`
	P99MS float64 `json:"p99_ms"`
	Over  bool    `json:"over,omitempty"`
}

// StageCounts are the stage histograms' cumulative bucket counts at one instant; the
// difference of two (Stages) covers what happened between them.
type StageCounts map[string]stageBuckets

type stageBuckets struct {
	bounds []float64 // seconds, ascending, finite
	cum    []uint64  // cumulative count per bound
	total  uint64
}

// SampleStages reads the stage histograms from g (nil: none).
func SampleStages(g prometheus.Gatherer) StageCounts {
	out := StageCounts{}
	if g == nil {
		return out
	}
	mfs, err := g.Gather()
	if err != nil {
		return out
	}
	for _, mf := range mfs {
		if mf.GetName() != StageMetric || mf.GetType() != dto.MetricType_HISTOGRAM {
			continue
		}
		for _, m := range mf.Metric {
			var stage string
			for _, l := range m.Label {
				if l.GetName() == "stage" {
					stage = l.GetValue()
				}
			}
			h := m.GetHistogram()
			var sb stageBuckets
			for _, b := range h.Bucket {
				if math.IsInf(b.GetUpperBound(), 1) {
					continue
				}
				sb.bounds = append(sb.bounds, b.GetUpperBound())
				sb.cum = append(sb.cum, b.GetCumulativeCount())
			}
			sb.total = h.GetSampleCount()
			out[stage] = sb
		}
	}
	return out
}

// Stages returns each stage's latency between before and after (samples of the same
// histograms). Stages without observations in between are left out.
func Stages(before, after StageCounts) map[string]StageLatency {
	out := map[string]StageLatency{}
	for stage, a := range after {
		b := before[stage]
		n := a.total - b.total
		if n == 0 || len(a.bounds) == 0 {
			continue
		}
		cum := slices.Clone(a.cum)
		if slices.Equal(a.bounds, b.bounds) {
			for i := range b.cum {
				cum[i] -= b.cum[i]
			}
		}
		q := func(p float64) (float64, bool) {
			need := uint64(math.Ceil(p * float64(n)))
			for i, c := range cum {
				if c >= need {
					return a.bounds[i] * 1000, false
				}
			}
			return a.bounds[len(a.bounds)-1] * 1000, true
		}
		p50, _ := q(0.50)
		p99, over := q(0.99)
		out[stage] = StageLatency{Count: int64(n), P50MS: p50, P99MS: p99, Over: over}
	}
	return out
}

// stageOrder is the order of the pipeline's stages in a request's life; others follow
// by name.
var stageOrder = []string{"wait", "parse", "claim", "optout", "segment", "submit", "ledger_append", "event_write"}

func sortedStages(m map[string]StageLatency) []string {
	var out []string
	for _, s := range stageOrder {
		if _, ok := m[s]; ok {
			out = append(out, s)
		}
	}
	var rest []string
	for s := range m {
		if !slices.Contains(stageOrder, s) {
			rest = append(rest, s)
		}
	}
	slices.Sort(rest)
	return append(out, rest...)
}
