package harness

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"time"

	"github.com/sendcore/sendcore/gateway"
	"github.com/sendcore/sendcore/gateway/sip"
	"github.com/sendcore/sendcore/gateway/sip/uastest"
	"github.com/sendcore/sendcore/gateway/smpp"
	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
	"github.com/sendcore/sendcore/rotation"
	"github.com/sendcore/sendcore/storage"
)

// ErrStart reports that the stack did not come up.
var ErrStart = errors.New("harness: start failed")

// Options say what to start. The zero value starts everything embedded with one bind,
// a window of 10 and no control plane.
type Options struct {
	// Kafka are external brokers; empty: the gateway's embedded broker.
	Kafka []string
	// Partitions of the embedded broker's topics (default 8).
	Partitions int
	// SMSC is an external SMSC host:port; empty: an smsctest server with SMSCOptions.
	SMSC        string
	SMSCOptions smsctest.Options
	// SIP is an external SIP trunk host:port (UDP); empty: a uastest endpoint answering
	// with DefaultCall, and with Calls per called number.
	SIP         string
	DefaultCall uastest.Behavior
	Calls       map[string]uastest.Behavior
	// Binds and Window of the SMPP connection (defaults 1 and 10).
	Binds, Window int
	// Pools are the rotation pools of the configuration.
	Pools []rotation.PoolConfig
	// Control starts the control plane on a free 127.0.0.1 port, with AdminToken as the
	// bootstrap admin token (at least 16 characters).
	Control    bool
	AdminToken string
	// DataDir is the gateway's data directory; "": a temporary one, removed by Close.
	DataDir string
	// Prepare runs on the data directory's database before the gateway starts (e.g. to
	// preload opt-outs); nil: nothing.
	Prepare func(db *storage.DB) error
	// Tune makes last changes to the configuration before gateway.New; nil: none. An
	// error stops Start.
	Tune func(cfg *gateway.Config) error
	// Log receives the gateway's and the peers' logs; nil discards them.
	Log *slog.Logger
}

// Stack is a running gateway and its peers.
type Stack struct {
	Config     gateway.Config
	Brokers    []string         // Kafka bootstrap addresses in use
	SMSC       *smsctest.Server // nil when external
	UAS        *uastest.UAS     // nil when external
	ControlURL string           // "http://127.0.0.1:port", or "" without a control plane
	Gateway    *gateway.Gateway

	tmpDir string
	cancel context.CancelFunc
	done   chan error
}

// Start starts the peers and the gateway and returns once the gateway is ready. The
// gateway runs until Close; if it stops by itself, Done reports why.
func Start(ctx context.Context, o Options) (s *Stack, err error) {
	log := o.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s = &Stack{}
	started := s // the error returns below set s to nil; what started must still stop
	defer func() {
		if err != nil {
			started.Close()
		}
	}()
	cfg, err := s.config(o, log)
	if err != nil {
		return nil, err
	}
	if o.Prepare != nil {
		// Level 0 compacted at Close, as a long-running store holds its opt-outs:
		// otherwise the run's first compactions move the whole preload.
		db, err := storage.Open(cfg.DataDir, storage.Options{CompactL0OnClose: true}, log, nil)
		if err != nil {
			return nil, fmt.Errorf("%w: open %s: %w", ErrStart, cfg.DataDir, err)
		}
		perr := o.Prepare(db)
		if cerr := db.Close(); perr == nil {
			perr = cerr
		}
		if perr != nil {
			return nil, fmt.Errorf("%w: prepare %s: %w", ErrStart, cfg.DataDir, perr)
		}
	}
	if o.Tune != nil {
		if err := o.Tune(&cfg); err != nil {
			return nil, fmt.Errorf("%w: %w", ErrStart, err)
		}
	}
	s.Config = cfg
	gw, err := newGateway(cfg, log, o.AdminToken)
	if err != nil {
		return nil, fmt.Errorf("%w: %w", ErrStart, err)
	}
	s.Gateway = gw
	rctx, cancel := context.WithCancel(context.Background())
	s.cancel, s.done = cancel, make(chan error, 1)
	go func() { s.done <- gw.Run(rctx) }()
	select {
	case <-gw.Ready():
	case err := <-s.done:
		s.done <- err
		return nil, fmt.Errorf("%w: gateway stopped before ready: %v", ErrStart, err)
	case <-ctx.Done():
		return nil, ctx.Err()
	}
	s.Brokers = gw.Brokers()
	if cfg.Control.Addr != "" {
		s.ControlURL = "http://" + controlAddr(gw, cfg)
	}
	return s, nil
}

func (s *Stack) config(o Options, log *slog.Logger) (gateway.Config, error) {
	cfg := gateway.DefaultConfig()
	cfg.NodeID = "bench-1"
	cfg.Log = gateway.LogConfig{Level: "warn", Format: "text"}
	cfg.DataDir = o.DataDir
	if cfg.DataDir == "" {
		d, err := os.MkdirTemp("", "sendcore-bench-")
		if err != nil {
			return cfg, fmt.Errorf("%w: %w", ErrStart, err)
		}
		s.tmpDir, cfg.DataDir = d, d
	}
	cfg.Kafka.Brokers = o.Kafka
	if o.Partitions > 0 {
		cfg.Kafka.Partitions = o.Partitions
	}

	smscAddr := o.SMSC
	if smscAddr == "" {
		so := o.SMSCOptions
		if so.IDFormat == "" {
			so.IDFormat = "hex"
		}
		s.SMSC = smsctest.NewServer(so)
		smscAddr = s.SMSC.Addr()
	}
	sc := smpp.DefaultConfig()
	sc.Name, sc.Addr, sc.SystemID, sc.Password = "smsc", smscAddr, "sendcore", "secret"
	sc.Binds, sc.Window = max(o.Binds, 1), 10
	if o.Window > 0 {
		sc.Window = o.Window
	}
	sc.IDFormat = "hex"
	sc.DefaultFrom = "Sendcore"
	cfg.SMPP = []smpp.Config{sc}

	sipAddr := o.SIP
	if sipAddr == "" {
		u, err := uastest.New(uastest.Options{Logger: log})
		if err != nil {
			return cfg, fmt.Errorf("%w: %w", ErrStart, err)
		}
		s.UAS = u
		u.SetDefault(o.DefaultCall)
		for user, b := range o.Calls {
			u.Handle(user, b)
		}
		sipAddr = u.UDPAddr()
	}
	pc := sip.DefaultConfig()
	pc.Name, pc.Addr, pc.Transport, pc.Listen = "sip", sipAddr, "udp", "127.0.0.1:0"
	pc.MaxCalls, pc.CPS = 1000, 1000
	cfg.SIP = []sip.Config{pc}
	cfg.Pools = o.Pools

	cfg.Control.Addr = ""
	if o.Control {
		cfg.Control.Addr = "127.0.0.1:0" // a free port; Stack.ControlURL has the one in use
	}
	return cfg, nil
}

// Done is sent the gateway's Run result if it stops before Close.
func (s *Stack) Done() <-chan error { return s.done }

// Close stops the gateway (waiting for Run to return), then the peers, and removes a
// temporary data directory. It returns the gateway's Run error. Safe on a partly
// started stack.
func (s *Stack) Close() error {
	var err error
	if s.cancel != nil {
		s.cancel()
		select {
		case err = <-s.done:
		case <-time.After(30 * time.Second):
			err = errors.New("harness: gateway did not stop within 30s")
		}
		s.cancel = nil
	}
	if s.UAS != nil {
		_ = s.UAS.Close()
		s.UAS = nil
	}
	if s.SMSC != nil {
		s.SMSC.Close()
		s.SMSC = nil
	}
	if s.tmpDir != "" {
		_ = os.RemoveAll(s.tmpDir)
		s.tmpDir = ""
	}
	return err
}
