package control

import (
	"strconv"
	"sync/atomic"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
)

// NewRegistry returns the process's metrics registry with the Go runtime and process
// collectors registered. The gateway creates it once and passes it to every package (no
// package uses the global default registerer); New serves it at /metrics.
func NewRegistry() *prometheus.Registry {
	reg := prometheus.NewRegistry()
	reg.MustRegister(
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}),
	)
	return reg
}

// metrics are the control plane's own metrics.
type metrics struct {
	requests     *prometheus.CounterVec   // route, method, code
	duration     *prometheus.HistogramVec // route, method
	authFailures *prometheus.CounterVec   // reason
	inFlight     prometheus.Gauge
	panics       prometheus.Counter
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		requests: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_control_requests_total",
			Help: "HTTP requests answered by the control plane, by route pattern, method and status code.",
		}, []string{"route", "method", "code"}),
		duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "sendcore_control_request_duration_seconds",
			Help:    "Time to handle one control-plane request, by route pattern and method.",
			Buckets: []float64{.0001, .00025, .0005, .001, .0025, .005, .01, .025, .05, .1, .25, .5, 1, 2.5, 10},
		}, []string{"route", "method"}),
		authFailures: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "sendcore_control_auth_failures_total",
			Help: "Rejected control-plane authentications: missing, invalid (unknown or revoked token) or scope (too small).",
		}, []string{"reason"}),
		inFlight: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "sendcore_control_requests_in_flight",
			Help: "Control-plane requests being handled now.",
		}),
		panics: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "sendcore_control_panics_total",
			Help: "Handler panics recovered by the control plane (answered 500).",
		}),
	}
	for _, c := range []prometheus.Collector{m.requests, m.duration, m.authFailures, m.inFlight, m.panics} {
		if err := reg.Register(c); err != nil {
			return nil, err
		}
	}
	for _, r := range []string{"missing", "invalid", "scope"} {
		m.authFailures.WithLabelValues(r) // export zeros so rate() works from the start
	}
	return m, nil
}

// routeMetrics are the children of one (route, method), resolved once so the hot path
// does no label hashing except for the status code.
type routeMetrics struct {
	duration prometheus.Observer
	byCode   [6]atomic.Pointer[prometheus.Counter] // children of commonCodes, made on first use
	vec      *prometheus.CounterVec
	route    string
	method   string
}

var commonCodes = [6]int{200, 201, 202, 204, 400, 404}

func (m *metrics) forRoute(route, method string) *routeMetrics {
	rm := &routeMetrics{
		duration: m.duration.WithLabelValues(route, method),
		vec:      m.requests,
		route:    route,
		method:   method,
	}
	return rm
}

func (rm *routeMetrics) count(code int) {
	for i, c := range commonCodes {
		if c == code {
			p := rm.byCode[i].Load()
			if p == nil {
				ctr := rm.vec.WithLabelValues(rm.route, rm.method, strconv.Itoa(code))
				p = &ctr
				rm.byCode[i].Store(p)
			}
			(*p).Inc()
			return
		}
	}
	rm.vec.WithLabelValues(rm.route, rm.method, strconv.Itoa(code)).Inc()
}
