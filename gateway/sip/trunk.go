package sip

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/time/rate"

	"github.com/sendcore/sendcore/dispatch"
)

// Errors of this package.
var (
	ErrConfig  = errors.New("sip: invalid config")
	ErrListen  = errors.New("sip: listen")
	ErrRunning = errors.New("sip: trunk already running")
	ErrMedia   = errors.New("sip: media")
	ErrPrompt  = errors.New("sip: prompt")
	ErrSDP     = errors.New("sip: sdp")
)

// hangupTimeout bounds the wait for the answer to a BYE or CANCEL we send.
const hangupTimeout = 4 * time.Second

// Trunk is one SIP trunk: it places outbound calls (dispatch.Caller) through one
// sipgo user agent. Create it with NewTrunk, then Run it; Call may be used from any
// goroutine once Run has started.
type Trunk struct {
	cfg       Config
	log       *slog.Logger
	m         *metrics
	transport string // UDP, TCP or TLS
	scheme    string // sip or sips
	localIP   net.IP
	domain    string

	ua  *sipgo.UserAgent
	cli *sipgo.Client
	srv *sipgo.Server
	pc  net.PacketConn // udp
	ln  net.Listener   // tcp
	// contact is our Contact header (with the bound port).
	contact sip.ContactHeader

	slots   chan struct{}
	limiter *rate.Limiter
	prompts *prompts

	mu      sync.Mutex
	state   int // 0 new, 3 starting, 1 running, 2 stopping
	started chan struct{}
	runCtx  context.Context
	calls   sync.WaitGroup // Call invocations in progress

	dialogs sync.Map // Call-ID -> *dialog

	attempts atomic.Uint64
	active   atomic.Int64
	outcomes [nOutcomes]atomic.Uint64
}

// Stats is a snapshot of a trunk for the control plane.
type Stats struct {
	Name     string            `json:"name"`
	Ready    bool              `json:"ready"`
	Active   int64             `json:"active_calls"`
	Attempts uint64            `json:"attempts"`
	Outcomes map[string]uint64 `json:"outcomes"` // by terminal status
}

var outcomeNames = [...]dispatch.Status{dispatch.StatusCompleted, dispatch.StatusBusy,
	dispatch.StatusNoAnswer, dispatch.StatusDeclined, dispatch.StatusFailed}

const nOutcomes = len(outcomeNames)

func outcomeIndex(s dispatch.Status) int {
	for i, n := range outcomeNames {
		if n == s {
			return i
		}
	}
	return nOutcomes - 1
}

// NewTrunk validates cfg, binds the local SIP socket (cfg.Listen) and prepares the user
// agent; it places no call until Run. reg may be nil (no metrics); several trunks may share
// one registerer.
func NewTrunk(cfg Config, log *slog.Logger, reg prometheus.Registerer) (*Trunk, error) {
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: sip[%s]: %w", ErrConfig, cfg.Name, err)
	}
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	log = log.With("trunk", cfg.Name)
	m, err := newMetrics(reg)
	if err != nil {
		return nil, err
	}
	t := &Trunk{
		cfg:       cfg,
		log:       log,
		m:         m,
		transport: strings.ToUpper(cfg.Transport),
		scheme:    "sip",
		slots:     make(chan struct{}, cfg.MaxCalls),
		limiter:   rate.NewLimiter(rate.Limit(cfg.CPS), 1),
		prompts:   newPrompts(cfg.PromptDir),
		started:   make(chan struct{}),
	}
	if t.transport == "TLS" {
		t.scheme = "sips"
	}
	host, _, _ := net.SplitHostPort(cfg.Addr)
	t.domain = cfg.Domain
	if t.domain == "" {
		t.domain = host
	}
	if err := t.bind(); err != nil {
		return nil, err
	}
	return t, nil
}

// bind opens the listening socket and builds the user agent around it.
func (t *Trunk) bind() error {
	lhost, _, _ := net.SplitHostPort(t.cfg.Listen)
	ip := net.ParseIP(lhost)
	if ip == nil || ip.IsUnspecified() {
		// The local address that routes to the trunk; a UDP "dial" sends nothing.
		c, err := net.Dial("udp", t.cfg.Addr)
		if err != nil {
			return fmt.Errorf("%w: route to addr %q: %w", ErrListen, t.cfg.Addr, err)
		}
		ip = c.LocalAddr().(*net.UDPAddr).IP
		c.Close()
	}
	t.localIP = ip

	var port int
	switch t.transport {
	case "UDP":
		network := "udp"
		if ip.To4() != nil {
			network = "udp4"
		}
		pc, err := net.ListenPacket(network, t.cfg.Listen)
		if err != nil {
			return fmt.Errorf("%w: listen %q: %w", ErrListen, t.cfg.Listen, err)
		}
		t.pc, port = pc, pc.LocalAddr().(*net.UDPAddr).Port
	case "TCP":
		ln, err := net.Listen("tcp", t.cfg.Listen)
		if err != nil {
			return fmt.Errorf("%w: listen %q: %w", ErrListen, t.cfg.Listen, err)
		}
		t.ln, port = ln, ln.Addr().(*net.TCPAddr).Port
	case "TLS":
		// No inbound TLS listener (it would need a certificate): in-dialog requests from
		// the trunk are expected on the connection we opened.
	}

	tlsConf := &tls.Config{ServerName: t.domain, InsecureSkipVerify: t.cfg.TLSInsecureSkipVerify, MinVersion: tls.VersionTLS12}
	ua, err := sipgo.NewUA(
		sipgo.WithUserAgent("sendcore"),
		sipgo.WithUserAgentHostname(ip.String()),
		sipgo.WithUserAgenTLSConfig(tlsConf),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(t.log)),
		sipgo.WithUserAgentTransactionLayerOptions(
			sip.WithTransactionLayerLogger(t.log),
			sip.WithTransactionLayerUnhandledResponseHandler(t.onStrayResponse),
		),
	)
	if err != nil {
		t.closeListeners()
		return fmt.Errorf("%w: user agent: %w", ErrListen, err)
	}
	opts := []sipgo.ClientOption{sipgo.WithClientLogger(t.log), sipgo.WithClientHostname(ip.String())}
	if t.pc != nil {
		// Send from the listening socket, so responses and the far end's in-dialog requests
		// come back to it (the transport finds the listener by its exact local address).
		opts = append(opts, sipgo.WithClientConnectionAddr(t.pc.LocalAddr().String()))
	}
	cli, err := sipgo.NewClient(ua, opts...)
	if err != nil {
		ua.Close()
		t.closeListeners()
		return fmt.Errorf("%w: client: %w", ErrListen, err)
	}
	srv, err := sipgo.NewServer(ua, sipgo.WithServerLogger(t.log))
	if err != nil {
		ua.Close()
		t.closeListeners()
		return fmt.Errorf("%w: server: %w", ErrListen, err)
	}
	srv.OnBye(t.onBye)
	srv.OnOptions(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	})
	t.ua, t.cli, t.srv = ua, cli, srv
	t.contact = sip.ContactHeader{Address: sip.Uri{Scheme: t.scheme, User: "sendcore", Host: ip.String(), Port: port}}
	if t.transport != "UDP" {
		t.contact.Address.UriParams = sip.NewParams()
		t.contact.Address.UriParams.Add("transport", strings.ToLower(t.transport))
	}
	return nil
}

func (t *Trunk) closeListeners() {
	if t.pc != nil {
		t.pc.Close()
	}
	if t.ln != nil {
		t.ln.Close()
	}
}

// Name is the trunk's configured name.
func (t *Trunk) Name() string { return t.cfg.Name }

// Ready reports whether Run is serving and the trunk accepts calls.
func (t *Trunk) Ready() bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.state == 1
}

// Addr is the local SIP address the trunk listens on ("" over TLS).
func (t *Trunk) Addr() string {
	switch {
	case t.pc != nil:
		return t.pc.LocalAddr().String()
	case t.ln != nil:
		return t.ln.Addr().String()
	}
	return ""
}

// Stats returns a snapshot of the trunk's counters.
func (t *Trunk) Stats() Stats {
	s := Stats{Name: t.cfg.Name, Ready: t.Ready(), Active: t.active.Load(), Attempts: t.attempts.Load(),
		Outcomes: make(map[string]uint64, nOutcomes)}
	for i, n := range outcomeNames {
		s.Outcomes[string(n)] = t.outcomes[i].Load()
	}
	return s
}

// Run serves the trunk's transport until ctx is done. Then calls in progress are hung up
// (CANCEL before answer, BYE after) and each still returns its result; Run returns once
// every call and goroutine it started has ended. Run may be called once.
func (t *Trunk) Run(ctx context.Context) error {
	t.mu.Lock()
	if t.state != 0 {
		t.mu.Unlock()
		return ErrRunning
	}
	t.state = 3 // starting
	t.mu.Unlock()

	var serve sync.WaitGroup
	errc := make(chan error, 1)
	switch {
	case t.pc != nil:
		serve.Go(func() { errc <- t.srv.ServeUDP(t.pc) })
		// Requests are sent from the listener once sipgo has pooled it; before that a
		// request would try to bind the same port. sipgo has no ready signal: poll briefly.
		pool := t.ua.TransportLayer().Pool("udp")
		for deadline := time.Now().Add(2 * time.Second); pool.Size() == 0 && time.Now().Before(deadline); {
			time.Sleep(time.Millisecond)
		}
	case t.ln != nil:
		serve.Go(func() { errc <- t.srv.ServeTCP(t.ln) })
	}
	t.mu.Lock()
	t.state, t.runCtx = 1, ctx
	close(t.started)
	t.mu.Unlock()
	t.log.Info("sip trunk running", "local", t.Addr(), "remote", t.cfg.Addr, "transport", t.transport)

	var err error
	select {
	case <-ctx.Done():
	case err = <-errc:
		if err != nil {
			err = fmt.Errorf("%w: serve: %w", ErrListen, err)
		}
	}
	t.mu.Lock()
	t.state = 2
	t.mu.Unlock()
	// Calls see ctx (runCtx) done and hang up through the still-open transport.
	t.calls.Wait()
	t.closeListeners()
	t.ua.Close()
	serve.Wait()
	t.log.Info("sip trunk stopped")
	return err
}

// enter registers a call; false when the trunk is stopping (or ctx ends before Run).
func (t *Trunk) enter(ctx context.Context) (context.Context, bool) {
	select {
	case <-t.started:
	case <-ctx.Done():
		return nil, false
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.state != 1 {
		return nil, false
	}
	t.calls.Add(1)
	return t.runCtx, true
}

// onBye ends the matching call (the far end hung up).
func (t *Trunk) onBye(req *sip.Request, tx sip.ServerTransaction) {
	var d *dialog
	if id := req.CallID(); id != nil {
		if v, ok := t.dialogs.Load(id.Value()); ok {
			d = v.(*dialog)
		}
	}
	if d == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	d.remoteBye()
}

// onStrayResponse handles responses no transaction waits for. A 2xx to an INVITE we gave
// up on (no response within answer_timeout, then a late answer) would leave the far end
// with a call nobody hangs up: ACK it and BYE it.
func (t *Trunk) onStrayResponse(res *sip.Response) {
	cseq := res.CSeq()
	if !res.IsSuccess() || cseq == nil || cseq.MethodName != sip.INVITE || res.CallID() == nil {
		return
	}
	if v, ok := t.dialogs.Load(res.CallID().Value()); ok && v.(*dialog).answered() {
		return // a retransmission for a live call
	}
	t.mu.Lock()
	if t.state != 1 {
		t.mu.Unlock()
		return
	}
	t.calls.Add(1)
	t.mu.Unlock()
	go func() {
		defer t.calls.Done()
		t.log.Warn("late answer to an abandoned INVITE: hanging up", "call_id", res.CallID().Value())
		ack := t.newInDialog(sip.ACK, res, cseq.SeqNo, res.From(), res.To())
		_ = t.cli.WriteRequest(ack)
		bye := t.newInDialog(sip.BYE, res, cseq.SeqNo+1, res.From(), res.To())
		ctx, cancel := context.WithTimeout(context.Background(), hangupTimeout)
		defer cancel()
		_, _ = t.cli.Do(ctx, bye)
	}()
}

// metrics are shared by every trunk on one registerer (label "trunk").
type metrics struct {
	calls   *prometheus.CounterVec
	active  *prometheus.GaugeVec
	setup   *prometheus.HistogramVec
	rtpSent *prometheus.CounterVec
}

func newMetrics(reg prometheus.Registerer) (*metrics, error) {
	m := &metrics{
		calls: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendcore_sip_calls_total",
			Help: "Calls ended, by trunk and outcome (terminal status)."}, []string{"trunk", "outcome"}),
		active: prometheus.NewGaugeVec(prometheus.GaugeOpts{Name: "sendcore_sip_active_calls",
			Help: "Calls in progress (INVITE sent, not yet ended), by trunk."}, []string{"trunk"}),
		setup: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "sendcore_sip_call_setup_seconds",
			Help:    "Time from INVITE to the first final response, by trunk.",
			Buckets: []float64{0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60}}, []string{"trunk"}),
		rtpSent: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "sendcore_sip_rtp_packets_sent_total",
			Help: "RTP packets sent, by trunk."}, []string{"trunk"}),
	}
	if reg == nil {
		return m, nil
	}
	var err error
	m.calls, err = register(reg, m.calls)
	if err == nil {
		m.active, err = register(reg, m.active)
	}
	if err == nil {
		m.setup, err = register(reg, m.setup)
	}
	if err == nil {
		m.rtpSent, err = register(reg, m.rtpSent)
	}
	return m, err
}

// register registers c, or returns the collector already registered under its name.
func register[C prometheus.Collector](reg prometheus.Registerer, c C) (C, error) {
	if err := reg.Register(c); err != nil {
		var are prometheus.AlreadyRegisteredError
		if errors.As(err, &are) {
			if ex, ok := are.ExistingCollector.(C); ok {
				return ex, nil
			}
		}
		return c, fmt.Errorf("sip: metrics: %w", err)
	}
	return c, nil
}
