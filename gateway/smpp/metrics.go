package smpp

import (
	"errors"

	"github.com/prometheus/client_golang/prometheus"
)

// metrics are one connection's children of the package's collectors. Connections share
// collectors on one registry (an AlreadyRegisteredError yields the existing one).
type metrics struct {
	bindsUp   prometheus.Gauge
	inflight  prometheus.Gauge
	outcomes  [5]prometheus.Counter // by dispatch.Outcome
	latency   prometheus.Observer
	throttles prometheus.Counter
	retries   prometheus.Counter
	unknown   prometheus.Counter
	receipts  *prometheus.CounterVec // curried by connection; label state
	mo        prometheus.Counter
	refused   [3]prometheus.Counter // deliveries answered with an error, by refusal
}

// Why a deliver_sm/data_sm was answered with an error status (the SMSC redelivers it).
const (
	refusedBusy        = iota // the handler queue was full: ESME_RX_T_APPN
	refusedHandler            // the handler returned an error: ESME_RX_T_APPN
	refusedUndecodable        // the PDU could not be decoded: ESME_RSYSERR
)

func register[C prometheus.Collector](reg prometheus.Registerer, c C) C {
	if reg == nil {
		return c
	}
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if existing, ok := are.ExistingCollector.(C); ok {
				return existing
			}
		}
	}
	return c
}

func newMetrics(reg prometheus.Registerer, conn string) *metrics {
	l := []string{"connection"}
	up := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sendcore_smpp_binds_up", Help: "Bound SMPP sessions."}, l))
	inf := register(reg, prometheus.NewGaugeVec(prometheus.GaugeOpts{
		Name: "sendcore_smpp_inflight", Help: "submit_sm awaiting a response."}, l))
	sub := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendcore_smpp_submits_total", Help: "Final submit outcomes per part, by outcome."}, []string{"connection", "outcome"}))
	lat := register(reg, prometheus.NewHistogramVec(prometheus.HistogramOpts{
		Name: "sendcore_smpp_submit_duration_seconds", Help: "submit_sm to submit_sm_resp.",
		Buckets: prometheus.ExponentialBuckets(0.0001, 2.5, 14)}, l))
	thr := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendcore_smpp_throttles_total", Help: "ESME_RTHROTTLED/ESME_RMSGQFUL responses."}, l))
	ret := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendcore_smpp_retries_total", Help: "Segments submitted again."}, l))
	unk := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendcore_smpp_unknown_total", Help: "Submits without a response (timeout or lost session)."}, l))
	rc := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendcore_smpp_receipts_total", Help: "Delivery receipts received, by state."}, []string{"connection", "state"}))
	mo := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendcore_smpp_mo_total", Help: "Mobile-originated messages received."}, l))
	ref := register(reg, prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "sendcore_smpp_deliveries_refused_total",
		Help: "deliver_sm/data_sm answered with an error so that the SMSC redelivers, by reason: busy (handler queue full), handler (receipt or MO handler failed), undecodable."},
		[]string{"connection", "reason"}))
	m := &metrics{
		bindsUp: up.WithLabelValues(conn), inflight: inf.WithLabelValues(conn),
		latency: lat.WithLabelValues(conn), throttles: thr.WithLabelValues(conn),
		retries: ret.WithLabelValues(conn), unknown: unk.WithLabelValues(conn),
		receipts: rc.MustCurryWith(prometheus.Labels{"connection": conn}), mo: mo.WithLabelValues(conn),
	}
	for i, r := range []string{"busy", "handler", "undecodable"} {
		m.refused[i] = ref.WithLabelValues(conn, r)
	}
	for i, o := range []string{"ok", "permanent", "transient", "unknown", "not_sent"} {
		m.outcomes[i] = sub.WithLabelValues(conn, o)
	}
	return m
}
