package dispatch

import (
	"github.com/prometheus/client_golang/prometheus"
)

// metrics of the pipeline. Labels are low-cardinality: statuses, outcomes, stages,
// connection names and encodings; never a number or a request id.
type metrics struct {
	requests           *prometheus.CounterVec // outcome
	events             *prometheus.CounterVec // status
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
	stageChild     children[prometheus.Observer]
	requestChild   children[prometheus.Counter]
	eventChild     children[prometheus.Counter]
	optOutPass     prometheus.Counter
	optOutOptedOut prometheus.Counter
}

// children holds the children of one metric vector for the label values known up front;
// any other value is looked up on use. Read-only after construction.
type children[T any] struct {
	known map[string]T
	with  func(string) T
}

func newChildren[T any](with func(string) T, values ...string) children[T] {
	c := children[T]{known: make(map[string]T, len(values)), with: with}
	for _, v := range values {
		c.known[v] = with(v)
	}
	return c
}

func (c children[T]) get(value string) T {
	if v, ok := c.known[value]; ok {
		return v
	}
	return c.with(value)
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
			Help:    "Latency of pipeline stages; wait is from the record's produce timestamp until a worker takes it.",
			Buckets: prometheus.ExponentialBuckets(0.00002, 2, 18), // 20 µs to 2.6 s
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
	statuses := []string{}
	outcomes := []string{string(StatusSubmitted), string(StatusScheduled), "redelivered", "abandoned", "dead_lettered"}
	for _, s := range []Status{StatusAccepted, StatusScheduled, StatusSuppressed, StatusRejected,
		StatusDuplicate, StatusCancelled, StatusExpired, StatusSubmitted, StatusDelivered,
		StatusUndelivered, StatusFailed, StatusAnswered, StatusCompleted, StatusBusy,
		StatusNoAnswer, StatusDeclined, StatusOptedOut, StatusOptedIn} {
		statuses = append(statuses, string(s))
		if s.Terminal() {
			outcomes = append(outcomes, string(s))
		}
	}
	m.eventChild = newChildren(func(v string) prometheus.Counter { return m.events.WithLabelValues(v) }, statuses...)
	m.requestChild = newChildren(func(v string) prometheus.Counter { return m.requests.WithLabelValues(v) }, outcomes...)
	m.stageChild = newChildren(func(v string) prometheus.Observer { return m.stage.WithLabelValues(v) },
		"parse", "claim", "optout", "segment", "submit", "ledger_append", "event_write")
	m.optOutPass = m.optOutChecks.WithLabelValues("pass")
	m.optOutOptedOut = m.optOutChecks.WithLabelValues("opted_out")
	return m
}

// observeStage records the latency of stage.
func (m *metrics) observeStage(stage string, seconds float64) {
	m.stageChild.get(stage).Observe(seconds)
}

// request counts one request handled with outcome.
func (m *metrics) request(outcome string) { m.requestChild.get(outcome).Inc() }

// event counts one durable event.
func (m *metrics) event(s Status) { m.eventChild.get(string(s)).Inc() }
