package storage

import "github.com/prometheus/client_golang/prometheus"

type metrics struct {
	checks        *prometheus.CounterVec
	checkFiltered prometheus.Counter
	checkMiss     prometheus.Counter
	checkOptedOut prometheus.Counter
	writeSeconds  *prometheus.HistogramVec
	writeBy       map[string]prometheus.Observer // writeSeconds' children, resolved once
	collectors    []prometheus.Collector
}

func newMetrics(db *DB) *metrics {
	m := &metrics{
		checks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_storage_optout_checks_total",
			Help: "Opt-out checks by result: opted_out, allowed (read Badger), allowed_filter (answered by the in-memory filter).",
		}, []string{"result"}),
		writeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sendcore_storage_write_seconds",
			Help:    "Latency of committed writes by operation (claim, append, optout, import, track, receipt).",
			Buckets: prometheus.ExponentialBuckets(10e-6, 2.5, 12),
		}, []string{"op"}),
	}
	m.writeBy = map[string]prometheus.Observer{}
	for _, op := range []string{"append", "claim", "import", "optout", "published", "receipt", "track"} {
		m.writeBy[op] = m.writeSeconds.WithLabelValues(op)
	}
	m.checkFiltered = m.checks.WithLabelValues("allowed_filter")
	m.checkMiss = m.checks.WithLabelValues("allowed")
	m.checkOptedOut = m.checks.WithLabelValues("opted_out")
	m.collectors = []prometheus.Collector{
		m.checks, m.writeSeconds,
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendcore_storage_schedule_depth",
			Help: "Requests held in the schedule, leased ones included.",
		}, func() float64 { return float64(db.schedLen.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendcore_storage_optouts",
			Help: "Opt-out records stored.",
		}, func() float64 { return float64(db.optCount.Load()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendcore_storage_lsm_bytes",
			Help: "Size of Badger's LSM tree on disk.",
		}, func() float64 { l, _ := db.Size(); return float64(l) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendcore_storage_vlog_bytes",
			Help: "Size of Badger's value log on disk.",
		}, func() float64 { _, v := db.Size(); return float64(v) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{
			Name: "sendcore_storage_optout_filter_bytes",
			Help: "Memory held by the in-memory opt-out filter.",
		}, func() float64 {
			if db.filter == nil {
				return 0
			}
			return float64(db.filter.bytes())
		}),
	}
	return m
}

func (m *metrics) register(reg prometheus.Registerer) error {
	for _, c := range m.collectors {
		if err := reg.Register(c); err != nil {
			return err
		}
	}
	return nil
}

// write records the latency of a committed write of op (one of writeBy's keys).
func (m *metrics) write(op string, seconds float64) {
	if o, ok := m.writeBy[op]; ok {
		o.Observe(seconds)
		return
	}
	m.writeSeconds.WithLabelValues(op).Observe(seconds)
}
