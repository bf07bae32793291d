package gateway

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"

	"golang.org/x/sync/errgroup"

	"github.com/sendcore/sendcore/gateway/kafka"
)

// Gateway is one sendcore instance: every part built from a Config.
type Gateway struct {
	cfg    Config
	log    *slog.Logger
	broker *kafka.Broker // embedded broker, when cfg.Kafka.Brokers is empty
	ready  chan struct{}
}

// New validates cfg and builds the parts. Nothing runs until Run.
func New(cfg Config, log *slog.Logger) (*Gateway, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	return &Gateway{cfg: cfg, log: log, ready: make(chan struct{})}, nil
}

// Ready is closed once Run has started every part.
func (g *Gateway) Ready() <-chan struct{} { return g.ready }

// Brokers returns the Kafka bootstrap addresses in use (the embedded broker's once Run
// has started it).
func (g *Gateway) Brokers() []string {
	if g.broker != nil {
		return g.broker.Addrs()
	}
	return g.cfg.Kafka.Brokers
}

// Run starts every part under one errgroup and blocks until ctx is cancelled or a part
// fails; it returns only when every goroutine it started has returned.
func (g *Gateway) Run(ctx context.Context) error {
	if err := os.MkdirAll(g.cfg.DataDir, 0o750); err != nil {
		return fmt.Errorf("gateway: data_dir %q: %w", g.cfg.DataDir, err)
	}
	if len(g.cfg.Kafka.Brokers) == 0 {
		b, err := kafka.StartBroker(kafka.BrokerOptions{Partitions: g.cfg.Kafka.Partitions, Topics: g.cfg.Kafka.Topics()}, g.log)
		if err != nil {
			return err
		}
		g.broker = b
		defer b.Close()
	}
	grp, gctx := errgroup.WithContext(ctx)
	g.log.Info("sendcore ready", "node", g.cfg.NodeID, "brokers", g.Brokers(), "smpp", len(g.cfg.SMPP), "sip", len(g.cfg.SIP))
	close(g.ready)
	grp.Go(func() error {
		<-gctx.Done()
		return nil
	})
	err := grp.Wait()
	g.log.Info("sendcore stopped")
	if errors.Is(err, context.Canceled) {
		return nil
	}
	return err
}

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
