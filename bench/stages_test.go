package bench

import (
	"testing"

	"github.com/prometheus/client_golang/prometheus"
)

// TestStagesCoverOnlyTheRun guarantees that the stage latencies of a report count what
// happened between the two samples (not the warm-up before), with each quantile at most
// the bound of its bucket, and a tail beyond the last bucket flagged.
func TestStagesCoverOnlyTheRun(t *testing.T) {
	reg := prometheus.NewRegistry()
	h := prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: StageMetric,
		Buckets: []float64{0.001, 0.002, 0.004}}, []string{"stage"})
	reg.MustRegister(h)
	for range 1000 { // warm-up: slow, must not count
		h.WithLabelValues("claim").Observe(0.0035)
	}
	before := SampleStages(reg)
	for range 98 {
		h.WithLabelValues("claim").Observe(0.0005)
	}
	h.WithLabelValues("claim").Observe(0.0015)
	h.WithLabelValues("claim").Observe(0.0015)
	for range 10 {
		h.WithLabelValues("submit").Observe(0.5)
	}
	got := Stages(before, SampleStages(reg))
	if c := got["claim"]; c.Count != 100 || c.P50MS != 1 || c.P99MS != 2 || c.Over {
		t.Errorf("claim = %+v, want 100 observations, p50 ≤ 1 ms, p99 ≤ 2 ms", c)
	}
	if s := got["submit"]; s.Count != 10 || s.P99MS != 4 || !s.Over {
		t.Errorf("submit = %+v, want 10 observations beyond the last bucket (4 ms, over)", s)
	}
	if len(SampleStages(nil)) != 0 {
		t.Error("stages without a registry")
	}
}
