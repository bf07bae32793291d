package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the pipeline. Labels are low-cardinality: statuses, outcomes, stages,
// connection names and encodings; never a number or a request id.
type metrics struct {
	requests           *prometheus.CounterVec // outcome
	events             *prometheus.CounterVec // status
	eventByStatus      map[Status]prometheus.Counter
	segments           *prometheus.CounterVec // connection, encoding
	stage              *prometheus.HistogramVec
	e2e                prometheus.Histogram
	scheduleDepth      prometheus.Gauge
	optOutChecks       *prometheus.CounterVec // result
	limiterWaits       *prometheus.CounterVec // kind
	eventWriteFailures prometheus.Counter
	eventsDropped      prometheus.Counter
	eventsSuperseded   prometheus.Counter
	republished        prometheus.Counter
	receiptTimeouts    prometheus.Counter
	ledgerRetries      prometheus.Counter
	storeErrors        *prometheus.CounterVec // op
	inflight           prometheus.Gauge

	// Children of the vectors above used on every request, resolved once: a
	// WithLabelValues lookup hashes its labels on every call.
	stageObs       map[string]prometheus.Observer
	requestByOut   map[string]prometheus.Counter
	optOutPass     prometheus.Counter
	optOutOptedOut prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) *metrics {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_dispatch_requests_total",
			Help: "Request records handled, by outcome (terminal status, or submitted/scheduled hand-off, redelivered, abandoned).",
		}, []string{"outcome"}),
		events: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_dispatch_events_total",
			Help: "Status events made durable (ledger and events topic), by status.",
		}, []string{"status"}),
		segments: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_dispatch_segments_total",
			Help: "SMS segments submitted successfully (the billing count), by connection and encoding.",
		}, []string{"connection", "encoding"}),
		stage: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sendcore_dispatch_stage_seconds",
			Help:    "Latency of pipeline stages.",
			Buckets: prometheus.ExponentialBuckets(0.00002, 3, 12),
		}, []string{"stage"}),
		e2e: prometheus.NewHistogram(prometheus.HistogramOpts{
			Name:    "sendcore_dispatch_produce_to_submit_seconds",
			Help:    "From the request record's produce timestamp to the last submit_sm_resp of the request.",
			Buckets: prometheus.ExponentialBuckets(0.0005, 2, 16),
		}),
		scheduleDepth: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sendcore_schedule_depth",
			Help: "Requests held in the schedule (not_before, quiet hours, long rate-limit waits).",
		}),
		optOutChecks: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_dispatch_optout_checks_total",
			Help: "Opt-out lookups, by result (pass, opted_out, error).",
		}, []string{"result"}),
		limiterWaits: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_dispatch_limiter_waits_total",
			Help: "Rate-limiter waits, by kind (timer: waited in memory, hold: held in the schedule).",
		}, []string{"kind"}),
		eventWriteFailures: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_dispatch_event_write_failures_total",
			Help: "Events that could not be written after retries (shutdown deadline).",
		}),
		eventsDropped: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_dispatch_events_dropped_total",
			Help: "Events emitted after shutdown closed the event stream (their records stay unacknowledged and are redelivered).",
		}),
		eventsSuperseded: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_dispatch_events_superseded_total",
			Help: "Terminal events not added because their request already had a terminal status (a repeated receipt, a receipt after a timeout).",
		}),
		republished: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_dispatch_events_republished_total",
			Help: "Events re-published at start from the outbox (an earlier run stopped before the events topic acknowledged them).",
		}),
		receiptTimeouts: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_dispatch_receipt_timeouts_total",
			Help: "Submissions that got no final receipt for every part within receipt_ttl (undelivered, receipt_timeout).",
		}),
		ledgerRetries: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_dispatch_event_write_retries_total",
			Help: "Retries of event batch writes to the ledger.",
		}),
		storeErrors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_dispatch_store_errors_total",
			Help: "Store operations that failed, by operation.",
		}, []string{"op"}),
		inflight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sendcore_dispatch_inflight_requests",
			Help: "Requests being processed (between pick-up and hand-off).",
		}),
	}
	if reg != nil {
		reg.MustRegister(m.requests, m.events, m.segments, m.stage, m.e2e, m.scheduleDepth,
			m.optOutChecks, m.limiterWaits, m.eventWriteFailures, m.eventsDropped, m.eventsSuperseded,
			m.republished, m.receiptTimeouts, m.ledgerRetries,
			m.storeErrors, m.inflight)
	}
	m.eventByStatus = map[Status]prometheus.Counter{}
	for _, s := range []Status{StatusAccepted, StatusScheduled, StatusSuppressed, StatusRejected,
		StatusDuplicate, StatusCancelled, StatusExpired, StatusSubmitted, StatusDelivered,
		StatusUndelivered, StatusFailed, StatusAnswered, StatusCompleted, StatusBusy,
		StatusNoAnswer, StatusDeclined, StatusOptedOut, StatusOptedIn} {
		m.eventByStatus[s] = m.events.WithLabelValues(string(s))
	}
	m.stageObs = map[string]prometheus.Observer{}
	for _, st := range []string{"parse", "claim", "optout", "segment", "submit", "ledger_append", "event_write"} {
		m.stageObs[st] = m.stage.WithLabelValues(st)
	}
	m.requestByOut = map[string]prometheus.Counter{}
	for s := range m.eventByStatus {
		m.requestByOut[string(s)] = m.requests.WithLabelValues(string(s))
	}
	for _, o := range []string{"redelivered", "abandoned", "dead_lettered"} {
		m.requestByOut[o] = m.requests.WithLabelValues(o)
	}
	m.optOutPass = m.optOutChecks.WithLabelValues("pass")
	m.optOutOptedOut = m.optOutChecks.WithLabelValues("opted_out")
	return m
}

// observeStage records the latency of stage; the map is read-only after construction.
func (m *metrics) observeStage(stage string, seconds float64) {
	if o, ok := m.stageObs[stage]; ok {
		o.Observe(seconds)
		return
	}
	m.stage.WithLabelValues(stage).Observe(seconds)
}

// request counts one request handled with outcome.
func (m *metrics) request(outcome string) {
	if c, ok := m.requestByOut[outcome]; ok {
		c.Inc()
		return
	}
	m.requests.WithLabelValues(outcome).Inc()
}

// event counts one durable event; the map is read-only after construction.
func (m *metrics) event(s Status) {
	if c, ok := m.eventByStatus[s]; ok {
		c.Inc()
		return
	}
	m.events.WithLabelValues(string(s)).Inc()
}
