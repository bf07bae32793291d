package kafka

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"strconv"
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
	_ dispatch.EventSink       = (*Client)(nil)
	_ dispatch.DeadLetters     = (*Client)(nil)
	_ dispatch.OptOutPublisher = (*Client)(nil)
)

// WriteEvents implements dispatch.EventSink: one record per event on the events topic,
// key = request id, value = the event's JSON, acknowledged by all in-sync replicas.
// Failed writes are retried until ctx is done.
func (c *Client) WriteEvents(ctx context.Context, events []dispatch.Event) error {
	msgs := make([]kgo.Message, len(events))
	for i := range events {
		v, err := json.Marshal(&events[i])
		if err != nil {
			return fmt.Errorf("kafka: encode event %s: %w", events[i].ID, err)
		}
		msgs[i] = kgo.Message{Key: []byte(events[i].ID), Value: v}
	}
	return c.write(ctx, c.events, msgs)
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
