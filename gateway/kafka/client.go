package kafka

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	kgo "github.com/segmentio/kafka-go"
)

// Errors of the adapter.
var (
	ErrConfig = errors.New("kafka: bad configuration")
	ErrClosed = errors.New("kafka: client closed")
)

// Client is sendcore's connection to one Kafka cluster: it makes the requests Source,
// and writes events, dead letters, opt-outs and enqueued requests. Safe for concurrent
// use. Close flushes and closes the writers.
type Client struct {
	cfg     Config
	brokers []string
	node    string
	log     *slog.Logger
	m       *metrics

	dlq, optouts, requests *kgo.Writer

	// events is asynchronous: WriteEventsAsync hands records to it and its Completion
	// (eventsDone, on the partition's writer goroutine) retries a failed batch with
	// eventsRetry before that partition writes anything else, so that order per key
	// holds, then runs the callers' callbacks.
	events, eventsRetry *kgo.Writer
	// retryCtx bounds the retries of eventsDone; Close cancels it after its flush deadline.
	retryCtx    context.Context
	retryCancel context.CancelFunc
	closeOnce   sync.Once
	closeErr    error
}

// NewClient builds a client for brokers (the embedded broker's Addrs, or cfg.Brokers).
// node is this instance's id: it tags the opt-outs it publishes so that it skips them
// when they come back. Nothing connects until used.
func NewClient(cfg Config, brokers []string, node string, log *slog.Logger, reg prometheus.Registerer) (*Client, error) {
	cfg = cfg.withDefaults()
	if len(brokers) == 0 {
		return nil, fmt.Errorf("%w: no brokers", ErrConfig)
	}
	if err := cfg.Validate(); err != nil {
		return nil, fmt.Errorf("%w: %w", ErrConfig, err)
	}
	c := &Client{cfg: cfg, brokers: brokers, node: node, log: log, m: newMetrics(reg)}
	c.retryCtx, c.retryCancel = context.WithCancel(context.Background())
	c.events = c.writer(cfg.EventsTopic)
	c.events.Async = true
	c.events.Completion = c.eventsDone
	// Attempts in place (same partition goroutine) before eventsDone takes over.
	c.events.MaxAttempts = 3
	c.eventsRetry = c.writer(cfg.EventsTopic)
	c.dlq = c.writer(cfg.DLQTopic)
	c.optouts = c.writer(cfg.OptoutsTopic)
	c.requests = c.writer(cfg.RequestsTopic)
	return c, nil
}

// writerBatchSize is the most records of one produce request per partition. kafka-go
// allocates a slice of this many Messages (about 150 bytes each) for every batch it
// opens, however few records the batch ends up with: at 8192 that was 1.2 MB per batch
// and 80 % of all the bytes the gateway allocated. A full batch is sent at once. 128 per
// partition per writerBatchTimeout is over 25k records/s per partition before a batch
// fills early, and halves the zeroing of 256 at partial load (where batches stay small).
const writerBatchSize = 128

// writerBatchTimeout is how long a batch that is not full waits for more records. kafka-go
// sends nothing before a batch is full or this has passed (there is no "send when idle"),
// so it is a floor of every write's latency. Events are off the acknowledgement path (the
// outbox holds them), so it trades 5 ms of event visibility for fewer produce requests:
// at 7k requests/s, 1 ms cost 15% more CPU for the whole gateway (produce round trips
// through the broker's and our network stack).
const writerBatchTimeout = 5 * time.Millisecond

// writer returns a synchronous, batching writer that waits for every in-sync replica:
// WriteMessages returns once the whole batch is acknowledged. Partitioning by key with
// murmur2, as the Java client does, so one key always lands on one partition.
func (c *Client) writer(topic string) *kgo.Writer {
	return &kgo.Writer{
		Addr:         kgo.TCP(c.brokers...),
		Topic:        topic,
		Balancer:     &kgo.Murmur2Balancer{},
		RequiredAcks: kgo.RequireAll,
		BatchSize:    writerBatchSize,
		BatchBytes:   int64(c.cfg.MaxMessageBytes),
		BatchTimeout: writerBatchTimeout,
		MaxAttempts:  3,
		WriteTimeout: 10 * time.Second,
		ReadTimeout:  10 * time.Second,
	}
}

// closeFlushTimeout bounds how long Close keeps retrying event batches that fail.
const closeFlushTimeout = 10 * time.Second

// Close flushes and closes every writer: events handed to WriteEventsAsync before are
// written (their callbacks run) or, when they still fail after closeFlushTimeout, given
// up on (counted, logged, callbacks run with an error). Later calls return the first
// result.
func (c *Client) Close() error {
	c.closeOnce.Do(func() {
		t := time.AfterFunc(closeFlushTimeout, c.retryCancel)
		var errs []error
		for _, w := range []*kgo.Writer{c.events, c.eventsRetry, c.dlq, c.optouts, c.requests} {
			if err := w.Close(); err != nil {
				errs = append(errs, err)
			}
		}
		t.Stop()
		c.retryCancel()
		c.closeErr = errors.Join(errs...)
	})
	return c.closeErr
}

// write writes msgs with w, retrying the failed ones with backoff until ctx is done. It
// never drops silently: every retry is counted and logged, and an error is returned
// only when ctx ended first.
func (c *Client) write(ctx context.Context, w *kgo.Writer, msgs []kgo.Message) error {
	backoff := 10 * time.Millisecond
	for {
		err := w.WriteMessages(ctx, msgs...)
		if err == nil {
			c.m.written.WithLabelValues(w.Topic).Add(float64(len(msgs)))
			return nil
		}
		var werrs kgo.WriteErrors
		if errors.As(err, &werrs) && len(werrs) == len(msgs) {
			failed := msgs[:0:0]
			for i, e := range werrs {
				if e != nil {
					failed = append(failed, msgs[i])
				}
			}
			c.m.written.WithLabelValues(w.Topic).Add(float64(len(msgs) - len(failed)))
			msgs = failed
		}
		if ctx.Err() != nil {
			c.m.writeFailures.WithLabelValues(w.Topic).Add(float64(len(msgs)))
			c.log.Error("kafka write abandoned", "topic", w.Topic, "messages", len(msgs), "err", err)
			return fmt.Errorf("kafka: write %s: %w", w.Topic, err)
		}
		c.m.writeRetries.WithLabelValues(w.Topic).Add(float64(len(msgs)))
		c.log.Warn("kafka write failed; retrying", "topic", w.Topic, "messages", len(msgs), "err", err, "backoff", backoff)
		t := time.NewTimer(backoff)
		select {
		case <-ctx.Done():
			t.Stop()
		case <-t.C:
		}
		backoff = min(2*backoff, 2*time.Second)
	}
}

// EnsureTopics creates the four topics on the cluster's controller with cfg.Partitions
// partitions (the opt-outs topic compacted), ignoring topics that already exist. A
// consumer that joins before its topic exists can stay unassigned, so call it first.
func (c *Client) EnsureTopics(ctx context.Context) error {
	var d kgo.Dialer
	conn, err := d.DialContext(ctx, "tcp", c.brokers[0])
	if err != nil {
		return fmt.Errorf("kafka: dial %s: %w", c.brokers[0], err)
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("kafka: find controller: %w", err)
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("kafka: dial controller: %w", err)
	}
	defer cc.Close()
	for _, t := range c.cfg.Topics() {
		tc := kgo.TopicConfig{Topic: t, NumPartitions: c.cfg.Partitions, ReplicationFactor: c.cfg.ReplicationFactor}
		if t == c.cfg.OptoutsTopic {
			tc.ConfigEntries = []kgo.ConfigEntry{{ConfigName: "cleanup.policy", ConfigValue: "compact"}}
		}
		if err := cc.CreateTopics(tc); err != nil && !errors.Is(err, kgo.TopicAlreadyExists) {
			return fmt.Errorf("kafka: create topic %s: %w", t, err)
		}
	}
	return nil
}
