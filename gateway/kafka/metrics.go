package kafka

import (
	"github.com/prometheus/client_golang/prometheus"
)

type metrics struct {
	lag           *prometheus.GaugeVec // partition
	fetched       prometheus.Counter
	refetched     *prometheus.CounterVec // kind: duplicate, rewound
	inflight      prometheus.Gauge
	commits       prometheus.Counter
	commitErrors  prometheus.Counter
	fetchErrors   prometheus.Counter
	written       *prometheus.CounterVec // topic
	writeRetries  *prometheus.CounterVec // topic
	writeFailures *prometheus.CounterVec // topic
	optoutsIn     prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		lag: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "sendcore_kafka_consumer_lag",
			Help: "Records of the requests topic not yet fetched, by partition (high watermark minus next offset).",
		}, []string{"partition"}),
		fetched: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_kafka_fetched_total", Help: "Request records fetched.",
		}),
		refetched: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_kafka_refetched_total",
			Help: "Request records fetched again: duplicate (still in flight, dropped) or rewound (finished before, processed again for the ledger to absorb).",
		}, []string{"kind"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sendcore_kafka_inflight_records", Help: "Request records fetched and not yet finished.",
		}),
		commits: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_kafka_commits_total", Help: "Offset commits of the requests consumer.",
		}),
		commitErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_kafka_commit_errors_total", Help: "Failed offset commits (retried at the next interval).",
		}),
		fetchErrors: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_kafka_fetch_errors_total", Help: "Failed fetches of the requests consumer.",
		}),
		written: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_kafka_written_total", Help: "Records written and acknowledged, by topic.",
		}, []string{"topic"}),
		writeRetries: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_kafka_write_retries_total", Help: "Records whose write failed and was retried, by topic.",
		}, []string{"topic"}),
		writeFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_kafka_write_failures_total", Help: "Records given up on (shutdown deadline), by topic.",
		}, []string{"topic"}),
		optoutsIn: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_kafka_optouts_applied_total", Help: "Opt-out changes of other instances applied locally.",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.lag, m.fetched, m.refetched, m.inflight, m.commits, m.commitErrors,
			m.fetchErrors, m.written, m.writeRetries, m.writeFailures, m.optoutsIn)
	}
	return m
}
