package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"strconv"
	"sync/atomic"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/sendcore/sendcore/dispatch"
)

// DLQ headers (contract §1).
const (
	HeaderError     = "sendcore-error"
	HeaderDetail    = "sendcore-detail"
	HeaderSource    = "sendcore-source"
	HeaderTruncated = "sendcore-truncated" // original size, when the value was too large to copy
	HeaderNode      = "sendcore-node"      // on opt-out records: the publishing instance
)

var (
	_ dispatch.EncodedEventSink = (*Client)(nil)
	_ dispatch.DeadLetters      = (*Client)(nil)
	_ dispatch.OptOutPublisher  = (*Client)(nil)
)

// WriteEvents implements dispatch.EventSink: one record per event on the events topic,
// key = request id, value = the event's JSON, acknowledged by all in-sync replicas. It
// returns once every event is acknowledged. Failed writes are retried (see
// WriteEventsAsync); when ctx ends first it returns an error wrapping ctx.Err() and the
// events stay queued: they are still written, or given up on by Close.
func (c *Client) WriteEvents(ctx context.Context, events []dispatch.Event) error {
	ch := make(chan error, 1)
	if err := c.WriteEventsAsync(events, func(err error) { ch <- err }); err != nil {
		return err
	}
	select {
	case err := <-ch:
		return err
	case <-ctx.Done():
		return fmt.Errorf("kafka: write %s: %w", c.cfg.EventsTopic, ctx.Err())
	}
}

// WriteEventsAsync queues events for the events topic (key = request id, value = the
// event's JSON, RequireAll) and returns at once; done runs exactly once, when every event
// is acknowledged (nil) or was given up on (an error), from a writer goroutine: it must
// not block for long, as it holds back that partition's next writes. Events of one call
// are written in order, and events of later calls after them per key: a batch whose
// write fails is retried, with backoff, before its partition writes anything else, and
// retries end only when Close's flush deadline passes (then the events are counted in
// sendcore_kafka_write_failures_total, logged, and done gets the error).
//
// An error return (an event that cannot be encoded, a closed client) means nothing was
// queued and done is never called. events is not retained after the call.
func (c *Client) WriteEventsAsync(events []dispatch.Event, done func(error)) error {
	return c.WriteEncodedAsync(events, nil, done)
}

// WriteEncodedAsync is WriteEventsAsync with each event's JSON already encoded (the
// outbox's bytes): values[i] is the value of events[i], or nil to encode it here; values
// may be nil. It implements dispatch.EncodedEventSink. values is retained until done.
func (c *Client) WriteEncodedAsync(events []dispatch.Event, values [][]byte, done func(error)) error {
	if values != nil && len(values) != len(events) {
		return fmt.Errorf("kafka: write %s: %d values for %d events", c.cfg.EventsTopic, len(values), len(events))
	}
	if len(events) == 0 {
		done(nil)
		return nil
	}
	msgs := make([]kgo.Message, len(events))
	call := &eventCall{done: done}
	call.left.Store(int32(len(events)))
	// One buffer holds every key and value of the call: kafka-go keeps the slices until
	// the batch is written, and an append that grows buf leaves earlier ones intact.
	size := 0
	for i := range events {
		size += len(events[i].ID)
		if values == nil || values[i] == nil {
			size += 320
		}
	}
	buf := make([]byte, 0, size)
	for i := range events {
		e := &events[i]
		start := len(buf)
		buf = append(buf, e.ID...)
		key := buf[start:len(buf):len(buf)]
		if values != nil && values[i] != nil {
			msgs[i] = kgo.Message{Key: key, Value: values[i], WriterData: call}
			continue
		}
		start = len(buf)
		var err error
		buf, err = dispatch.AppendEventJSON(buf, e)
		if err != nil {
			return fmt.Errorf("kafka: encode event %s: %w", e.ID, err)
		}
		msgs[i] = kgo.Message{Key: key, Value: buf[start:len(buf):len(buf)], WriterData: call}
	}
	if err := c.events.WriteMessages(context.Background(), msgs...); err != nil {
		if errors.Is(err, io.ErrClosedPipe) {
			return fmt.Errorf("%w: write %s: %w", ErrClosed, c.cfg.EventsTopic, err)
		}
		return fmt.Errorf("kafka: write %s: %w", c.cfg.EventsTopic, err)
	}
	return nil
}

// eventCall is one WriteEventsAsync call: the callback runs when its last record is done.
type eventCall struct {
	left atomic.Int32
	err  atomic.Pointer[error] // first failure
	done func(error)
}

func (e *eventCall) finish(err error) {
	if err != nil {
		first := err // only a failure's error escapes to the heap
		e.err.CompareAndSwap(nil, &first)
	}
	if e.left.Add(-1) == 0 {
		var err error
		if p := e.err.Load(); p != nil {
			err = *p
		}
		e.done(err)
	}
}

// eventsDone is the events writer's Completion, called on the partition's writer
// goroutine after kafka-go's own attempts. A failed batch is written again with the
// synchronous writer until it succeeds or Close's deadline passes; the partition writes
// nothing else meanwhile, which keeps the order per key.
func (c *Client) eventsDone(msgs []kgo.Message, err error) {
	if err != nil {
		c.m.writeRetries.WithLabelValues(c.cfg.EventsTopic).Add(float64(len(msgs)))
		c.log.Warn("kafka events batch failed; retrying it before the partition goes on", "messages", len(msgs), "err", err)
		again := make([]kgo.Message, len(msgs))
		for i := range msgs {
			again[i] = kgo.Message{Key: msgs[i].Key, Value: msgs[i].Value}
		}
		err = c.write(c.retryCtx, c.eventsRetry, again)
	} else {
		c.m.written.WithLabelValues(c.cfg.EventsTopic).Add(float64(len(msgs)))
	}
	for i := range msgs {
		if call, ok := msgs[i].WriterData.(*eventCall); ok {
			call.finish(err)
		}
	}
}

// DeadLetter implements dispatch.DeadLetters: value unchanged with the sendcore-error,
// sendcore-detail and sendcore-source headers. A value larger than MaxMessageBytes cannot
// be copied: it is written empty with the sendcore-truncated header holding its size.
func (c *Client) DeadLetter(ctx context.Context, key, value []byte, source, reason, detail string) error {
	msg := kgo.Message{Key: key, Value: value, Headers: []kgo.Header{
		{Key: HeaderError, Value: []byte(reason)},
		{Key: HeaderDetail, Value: []byte(detail)},
		{Key: HeaderSource, Value: []byte(source)},
	}}
	if len(value)+len(key)+512 > c.cfg.MaxMessageBytes {
		msg.Value = nil
		msg.Headers = append(msg.Headers, kgo.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(value)))})
	}
	err := c.write(ctx, c.dlq, []kgo.Message{msg})
	var tooLarge kgo.MessageTooLargeError
	if err != nil && (errors.As(err, &tooLarge) || errors.Is(err, kgo.MessageSizeTooLarge)) && msg.Value != nil {
		msg.Value = nil
		msg.Headers = append(msg.Headers, kgo.Header{Key: HeaderTruncated, Value: []byte(strconv.Itoa(len(value)))})
		err = c.write(ctx, c.dlq, []kgo.Message{msg})
	}
	return err
}

// OptOutRecord is the value of an opt-outs topic record (contract §1).
type OptOutRecord struct {
	Tenant   string    `json:"tenant"`
	Channel  string    `json:"channel"`
	Address  string    `json:"address"`
	OptedOut bool      `json:"opted_out"`
	Source   string    `json:"source"`
	TS       time.Time `json:"ts"`
}

// PublishOptOut implements dispatch.OptOutPublisher: key tenant/channel/address on the
// compacted opt-outs topic, tagged with this node so it skips its own records.
func (c *Client) PublishOptOut(ctx context.Context, o dispatch.OptOut) error {
	v, err := json.Marshal(OptOutRecord(o))
	if err != nil {
		return fmt.Errorf("kafka: encode opt-out: %w", err)
	}
	return c.write(ctx, c.optouts, []kgo.Message{{
		Key: []byte(o.Tenant + "/" + o.Channel + "/" + o.Address), Value: v,
		Headers: []kgo.Header{{Key: HeaderNode, Value: []byte(c.node)}},
	}})
}

// RunOptOutSync consumes the opt-outs topic from the beginning (a consumer group of its
// own per node, so every instance reads every partition) and applies other instances'
// changes to store. It returns when ctx is done.
func (c *Client) RunOptOutSync(ctx context.Context, store dispatch.OptOuts) error {
	r := kgo.NewReader(kgo.ReaderConfig{
		Brokers:        c.brokers,
		GroupID:        c.cfg.Group + ".optouts." + c.node,
		Topic:          c.cfg.OptoutsTopic,
		StartOffset:    kgo.FirstOffset,
		MaxWait:        500 * time.Millisecond,
		CommitInterval: time.Second,
	})
	defer r.Close()
	for {
		msg, err := r.FetchMessage(ctx)
		if err != nil {
			if ctx.Err() != nil {
				return nil
			}
			c.log.Warn("opt-outs fetch failed", "err", err)
			select {
			case <-ctx.Done():
				return nil
			case <-time.After(time.Second):
			}
			continue
		}
		if c.own(msg) {
			_ = r.CommitMessages(ctx, msg)
			continue
		}
		var o OptOutRecord
		if err := json.Unmarshal(msg.Value, &o); err != nil || o.Address == "" {
			c.log.Warn("opt-outs record ignored: not an opt-out", "partition", msg.Partition, "offset", msg.Offset)
			_ = r.CommitMessages(ctx, msg)
			continue
		}
		if err := store.SetOptOut(dispatch.OptOut(o)); err != nil {
			return fmt.Errorf("kafka: apply opt-out: %w", err)
		}
		c.m.optoutsIn.Inc()
		_ = r.CommitMessages(ctx, msg)
	}
}

func (c *Client) own(msg kgo.Message) bool {
	for _, h := range msg.Headers {
		if h.Key == HeaderNode {
			return string(h.Value) == c.node
		}
	}
	return false
}

// Enqueue produces send-requests (POST /v1/messages) to the requests topic, keyed by
// their `to` so one recipient's requests stay ordered, and returns once all are
// acknowledged. values are JSON requests, already validated by the caller.
func (c *Client) Enqueue(ctx context.Context, values [][]byte) error {
	msgs := make([]kgo.Message, len(values))
	var to struct {
		To string `json:"to"`
	}
	for i, v := range values {
		to.To = ""
		_ = json.Unmarshal(v, &to)
		msgs[i] = kgo.Message{Key: []byte(to.To), Value: v}
	}
	return c.write(ctx, c.requests, msgs)
}

func fmtLog(f string, a ...any) string { return fmt.Sprintf(f, a...) }
