package kafka

import (
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/twmb/franz-go/pkg/kfake"
)

// Broker is the embedded Kafka-protocol broker (franz-go's kfake) on 127.0.0.1, for
// `sendcore demo`, benchmarks, tests, and `run` when no brokers are configured. It is a
// real broker on a real socket: clients speak the Kafka protocol to it.
type Broker struct {
	cluster *kfake.Cluster
	log     *slog.Logger
	stop    chan struct{} // closed by Close: ends the retention loop
	done    chan struct{} // closed when the retention loop has ended
}

// BrokerOptions tune the embedded broker.
type BrokerOptions struct {
	Port       int    // 0: a free port
	Partitions int    // per topic; 0: 8
	DataDir    string // persist the log here (survives a restart); "": in memory
	Topics     []string
	// MaxMessageBytes is the largest produce batch the broker accepts; 0: 16 MiB, so
	// that a DLQ copy of a large poison record fits (Kafka's own default is 1 MiB).
	MaxMessageBytes int
	// Retention: records older than this are deleted, a log segment at a time, checked
	// every Retention/4 (at least every second); 0 keeps everything.
	Retention time.Duration
	// SegmentBytes is the log segment size with a Retention; 0: 8 MiB (Kafka's default of
	// 1 GiB would keep nearly everything a run writes in its first segment).
	SegmentBytes int
}

// StartBroker starts the embedded broker with opts.Topics pre-created (a consumer that
// joins before its topic exists can stay unassigned forever). Close stops it.
func StartBroker(opts BrokerOptions, log *slog.Logger) (*Broker, error) {
	if opts.Partitions <= 0 {
		opts.Partitions = 8
	}
	if opts.MaxMessageBytes <= 0 {
		opts.MaxMessageBytes = 16 << 20
	}
	bcfg := map[string]string{"message.max.bytes": strconv.Itoa(opts.MaxMessageBytes)}
	if opts.Retention > 0 {
		if opts.SegmentBytes <= 0 {
			opts.SegmentBytes = 8 << 20
		}
		bcfg["log.retention.ms"] = strconv.FormatInt(opts.Retention.Milliseconds(), 10)
		bcfg["log.segment.bytes"] = strconv.Itoa(opts.SegmentBytes)
	}
	kopts := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.Ports(opts.Port),
		kfake.SeedTopics(int32(opts.Partitions), opts.Topics...),
		kfake.AllowAutoTopicCreation(),
		kfake.DefaultNumPartitions(opts.Partitions),
		kfake.BrokerConfigs(bcfg),
	}
	if opts.DataDir != "" {
		kopts = append(kopts, kfake.DataDir(opts.DataDir))
	}
	c, err := kfake.NewCluster(kopts...)
	if err != nil {
		return nil, fmt.Errorf("kafka: start embedded broker: %w", err)
	}
	b := &Broker{cluster: c, log: log, stop: make(chan struct{}), done: make(chan struct{})}
	if opts.Retention > 0 {
		// kfake applies retention.ms only for topics configured one by one; the broker-wide
		// default is applied here, the same way.
		go b.retain(max(opts.Retention/4, time.Second))
	} else {
		close(b.done)
	}
	log.Info("embedded kafka broker listening", "addrs", c.ListenAddrs(), "partitions", opts.Partitions, "topics", opts.Topics, "retention", opts.Retention)
	return b, nil
}

func (b *Broker) retain(every time.Duration) {
	defer close(b.done)
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		select {
		case <-b.stop:
			return
		case <-t.C:
			b.cluster.ApplyRetention()
		}
	}
}

// Addrs returns the broker's listen addresses (host:port on 127.0.0.1).
func (b *Broker) Addrs() []string { return b.cluster.ListenAddrs() }

// Close stops the broker and closes its connections. Safe to call more than once.
func (b *Broker) Close() {
	if b.cluster != nil {
		close(b.stop)
		<-b.done
		b.cluster.Close()
		b.cluster = nil
	}
}
