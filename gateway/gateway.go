package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"sync"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/control"
	"github.com/sendcore/sendcore/gateway/kafka"
	"github.com/sendcore/sendcore/gateway/sip"
	"github.com/sendcore/sendcore/gateway/smpp"
	"github.com/sendcore/sendcore/rotation"
	"github.com/sendcore/sendcore/storage"
)

// Gateway is one sendcore instance: every part built from a Config.
type Gateway struct {
	cfg       Config
	log       *slog.Logger
	reg       *prometheus.Registry
	lookupEnv func(string) (string, bool)

	ready chan struct{}

	mu          sync.Mutex
	brokers     []string
	controlAddr string
}

// Option changes how New builds a gateway.
type Option func(*Gateway)

// WithLookupEnv makes the gateway read environment variables (the bootstrap admin token)
// through fn instead of os.LookupEnv.
func WithLookupEnv(fn func(string) (string, bool)) Option {
	return func(g *Gateway) { g.lookupEnv = fn }
}

// WithRegistry makes the gateway register its metrics on reg instead of a new registry
// (control.NewRegistry) of its own.
func WithRegistry(reg *prometheus.Registry) Option {
	return func(g *Gateway) { g.reg = reg }
}

// New validates cfg. Nothing is opened or started until Run.
func New(cfg Config, log *slog.Logger, opts ...Option) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	g := &Gateway{cfg: cfg, log: log, lookupEnv: os.LookupEnv, ready: make(chan struct{})}
	for _, o := range opts {
		o(g)
	}
	if g.reg == nil {
		g.reg = control.NewRegistry()
	}
	return g, nil
}

// Ready is closed once Run has started every part.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Registry is the Prometheus registry every part registers on.
func (g *Gateway) Registry() *prometheus.Registry { return g.reg }

// Brokers returns the Kafka bootstrap addresses in use: the embedded broker's once Run
// has started it.
func (g *Gateway) Brokers() []string {
	g.mu.Lock()
	defer g.mu.Unlock()
	if g.brokers != nil {
		return g.brokers
	}
	return g.cfg.Kafka.Brokers
}

// ControlAddr returns the control plane's listen address once Run has started it ("" if
// disabled or not yet listening).
func (g *Gateway) ControlAddr() string {
	g.mu.Lock()
	defer g.mu.Unlock()
	return g.controlAddr
}

// Run opens the data dir, starts every part, and blocks until ctx is cancelled or a part
// fails. Shutdown is staged: the pipeline stops first (stop fetching, finish or hand off
// in-flight work within dispatch.shutdown_grace, flush events, commit), then the
// connections, trunks, control plane and storage. Run returns only when every goroutine
// it started has returned.
func (g *Gateway) Run(ctx context.Context) (err error) {
	cfg := g.cfg
	ApplyProcs(cfg.Procs, g.log)
	if err := os.MkdirAll(cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("gateway: data_dir %q: %w", cfg.DataDir, err)
	}

	brokers := cfg.Kafka.Brokers
	if len(brokers) == 0 {
		b, err := kafka.StartBroker(kafka.BrokerOptions{Partitions: cfg.Kafka.Partitions, Topics: cfg.Kafka.Topics(), Retention: cfg.Kafka.EmbeddedRetention}, g.log)
		if err != nil {
			return err
		}
		defer b.Close()
		brokers = b.Addrs()
	}
	g.mu.Lock()
	g.brokers = brokers
	g.mu.Unlock()

	db, err := storage.Open(cfg.DataDir, storage.Options{
		Retention: cfg.Dispatch.Retention, SyncWrites: cfg.Storage.SyncWrites, GCInterval: cfg.Storage.GCInterval,
		DefaultRegion: cfg.Storage.DefaultRegion, BlockCacheBytes: cfg.Storage.BlockCacheBytes,
		MemTableBytes: cfg.Storage.MemTableBytes, ValueThresholdBytes: cfg.Storage.ValueThresholdBytes,
		NoOptOutFilter: cfg.Storage.NoOptOutFilter, Compression: cfg.Storage.Compression,
		OnCompaction: compactionProcs(cfg.Procs, g.log),
	}, g.log.With("part", "storage"), g.reg)
	if err != nil {
		return err
	}
	defer func() {
		if cerr := db.Close(); cerr != nil && err == nil {
			err = cerr
		}
	}()

	kc, err := kafka.NewClient(cfg.Kafka, brokers, cfg.NodeID, g.log.With("part", "kafka"), g.reg)
	if err != nil {
		return err
	}
	defer kc.Close()
	if err := kc.EnsureTopics(ctx); err != nil {
		return fmt.Errorf("gateway: kafka topics: %w", err)
	}

	pools, err := dispatch.NewPools(cfg.Pools, db, db, g.log.With("part", "pools"), g.reg)
	if err != nil {
		return err
	}
	limiter := dispatch.NewLimiter(cfg.Limits, g.reg)

	// The connections hand receipts and MO to the pipeline, built after them.
	var pipe *dispatch.Pipeline
	handlers := smpp.Handlers{
		Receipt: func(r dispatch.Receipt) error { return pipe.HandleReceipt(r) },
		MO:      func(mo dispatch.MO) error { return pipe.HandleMO(mo) },
	}
	var conns []*smpp.Connection
	var smsRoutes []dispatch.SMSRoute
	for _, c := range cfg.SMPP {
		conn, err := smpp.NewConnection(c, handlers, g.log.With("part", "smpp", "connection", c.Name), g.reg)
		if err != nil {
			return fmt.Errorf("gateway: smpp %s: %w", c.Name, err)
		}
		conns = append(conns, conn)
		smsRoutes = append(smsRoutes, dispatch.SMSRoute{Sender: conn, Prefixes: c.Routes, DefaultFrom: c.DefaultFrom})
	}
	var trunks []*sip.Trunk
	var voiceRoutes []dispatch.VoiceRoute
	for _, c := range cfg.SIP {
		t, err := sip.NewTrunk(c, g.log.With("part", "sip", "trunk", c.Name), g.reg)
		if err != nil {
			return fmt.Errorf("gateway: sip %s: %w", c.Name, err)
		}
		trunks = append(trunks, t)
		voiceRoutes = append(voiceRoutes, dispatch.VoiceRoute{Caller: t, Prefixes: c.Routes, MaxCalls: c.MaxCalls})
	}

	pipe, err = dispatch.New(dispatch.Options{
		Config: cfg.Dispatch, QuietHours: cfg.QuietHours, Node: cfg.NodeID,
		Source: kc.Source(), Events: kc, DLQ: kc, OptOutBus: kc,
		OptOuts: db, Ledger: db, Receipts: db, Schedule: db,
		Limiter: limiter, Pools: pools,
		SMS: smsRoutes, Voice: voiceRoutes,
		Log: g.log.With("part", "dispatch"), Registry: g.reg,
	})
	if err != nil {
		return err
	}

	ready := func() error {
		var errs []error
		if err := pipe.Ready(); err != nil {
			errs = append(errs, err)
		}
		for _, c := range conns {
			if !c.Ready() {
				errs = append(errs, fmt.Errorf("smpp %s: no bound session", c.Name()))
			}
		}
		for _, t := range trunks {
			if !t.Ready() {
				errs = append(errs, fmt.Errorf("sip %s: not ready", t.Name()))
			}
		}
		return errors.Join(errs...)
	}

	var ctl *control.Server
	if cfg.Control.Addr != "" {
		ctl, err = control.New(cfg.Control, g.backend(db, kc, pipe, pools, limiter, conns, trunks, ready),
			g.log.With("part", "control"), g.reg)
		if err != nil {
			return err
		}
		defer ctl.Close() // releases the listener if Run never starts it; harmless after Run
		g.mu.Lock()
		g.controlAddr = ctl.Addr().String()
		g.mu.Unlock()
	}

	// Adapters run until the pipeline has stopped: a failing part cancels gctx, the
	// pipeline returns, and stopAdapters follows.
	grp, gctx := errgroup.WithContext(ctx)
	actx, stopAdapters := context.WithCancel(context.Background())
	defer stopAdapters()
	grp.Go(func() error { return db.Run(actx) })
	for _, c := range conns {
		grp.Go(func() error { return c.Run(actx) })
	}
	for _, t := range trunks {
		grp.Go(func() error { return t.Run(actx) })
	}
	if ctl != nil {
		grp.Go(func() error { return ctl.Run(actx) })
	}
	grp.Go(func() error { return kc.RunOptOutSync(gctx, db) })
	grp.Go(func() error {
		defer stopAdapters()
		return pipe.Run(gctx)
	})

	g.log.Info("sendcore ready", "node", cfg.NodeID, "brokers", brokers, "smpp", len(conns), "sip", len(trunks),
		"control", g.ControlAddr(), "data_dir", cfg.DataDir)
	close(g.ready)

	err = grp.Wait()
	g.log.Info("sendcore stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

// backend adapts the parts to the control plane's interfaces.
func (g *Gateway) backend(db *storage.DB, kc *kafka.Client, pipe *dispatch.Pipeline, pools *dispatch.Pools,
	limiter *dispatch.Limiter, conns []*smpp.Connection, trunks []*sip.Trunk, ready func() error) control.Backend {
	return control.Backend{
		LookupEnv: g.lookupEnv,
		OptOuts:   db,
		ImportOptOuts: func(r io.Reader) (control.ImportResult, error) {
			res, err := db.ImportOptOutsCSV(r, storage.ImportOptions{Source: "import"})
			out := control.ImportResult{Imported: res.Imported, Rejected: res.Rejected}
			for _, e := range res.Errors {
				out.Errors = append(out.Errors, control.ImportError{Line: e.Line, Message: e.Err})
			}
			return out, err
		},
		ExportOptOuts: db.ExportOptOutsCSV,
		History:       db,
		Tokens:        db,
		Pools:         poolAdmin{pools},
		Limits:        limitsAdmin{limiter},
		Connections: func() any {
			type view struct {
				SMPP []smpp.Stats `json:"smpp"`
				SIP  []sip.Stats  `json:"sip"`
			}
			v := view{SMPP: []smpp.Stats{}, SIP: []sip.Stats{}}
			for _, c := range conns {
				v.SMPP = append(v.SMPP, c.Stats())
			}
			for _, t := range trunks {
				v.SIP = append(v.SIP, t.Stats())
			}
			return v
		},
		Ready: ready,
		ValidateRequest: func(record []byte) error {
			return dispatch.ValidateRequest(record, g.cfg.Dispatch.MaxRequestBytes, g.cfg.Dispatch.SmartEncoding)
		},
		Enqueue: kc.Enqueue,
		CancelCampaign: func(_ context.Context, tenant, campaign string) (int, error) {
			return pipe.CancelCampaign(tenant, campaign)
		},
	}
}

// poolAdmin adapts *dispatch.Pools to control.PoolAdmin.
type poolAdmin struct{ p *dispatch.Pools }

func (a poolAdmin) ListPools() (any, error) { return a.p.List(), nil }
func (a poolAdmin) Pool(name string) (any, bool, error) {
	v, ok := a.p.Get(name)
	return v, ok, nil
}
func (a poolAdmin) PutPool(c rotation.PoolConfig) error { return a.p.Put(c) }
func (a poolAdmin) DeletePool(name string) (bool, error) {
	if _, ok := a.p.Get(name); !ok {
		return false, nil
	}
	return true, a.p.Delete(name)
}

// limitsAdmin adapts *dispatch.Limiter to control.LimitsAdmin.
type limitsAdmin struct{ l *dispatch.Limiter }

func (a limitsAdmin) Limits() dispatch.LimitsConfig              { return a.l.Config() }
func (a limitsAdmin) UpdateLimits(c dispatch.LimitsConfig) error { return a.l.Update(c) }

// NewLogger builds the slog logger the configuration asks for, writing to w.
func NewLogger(c LogConfig, w io.Writer) *slog.Logger {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(c.Level))
	opts := &slog.HandlerOptions{Level: lvl}
	if c.Format == "json" {
		return slog.New(slog.NewJSONHandler(w, opts))
	}
	return slog.New(slog.NewTextHandler(w, opts))
}
