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
	"unicode/utf8"

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
	if len(events) == 0 {
		done(nil)
		return nil
	}
	msgs := make([]kgo.Message, len(events))
	call := &eventCall{done: done}
	call.left.Store(int32(len(events)))
	// One buffer holds every key and value of the call: kafka-go keeps the slices until
	// the batch is written, and an append that grows buf leaves earlier ones intact.
	buf := make([]byte, 0, 320*len(events))
	for i := range events {
		e := &events[i]
		start := len(buf)
		buf = append(buf, e.ID...)
		key := buf[start:len(buf):len(buf)]
		start = len(buf)
		var err error
		buf, err = appendEventJSON(buf, e)
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

// appendEventJSON appends e as JSON to b, byte for byte what encoding/json.Marshal(e)
// produces (TestEventJSONIdentity, FuzzEventJSON), without reflection and with no
// allocation but b's growth. A time encoding/json would refuse (a year outside 0..9999,
// an offset that is not whole minutes) takes encoding/json's path and its error.
func appendEventJSON(b []byte, e *dispatch.Event) ([]byte, error) {
	if y := e.TS.Year(); y < 0 || y > 9999 {
		return appendMarshal(b, e)
	}
	if _, off := e.TS.Zone(); off%60 != 0 {
		return appendMarshal(b, e)
	}
	b = append(b, `{"id":`...)
	b = appendJSONString(b, e.ID)
	b = append(b, `,"tenant":`...)
	b = appendJSONString(b, e.Tenant)
	b = append(b, `,"campaign":`...)
	b = appendJSONString(b, e.Campaign)
	b = append(b, `,"channel":`...)
	b = appendJSONString(b, e.Channel)
	b = append(b, `,"to":`...)
	b = appendJSONString(b, e.To)
	b = append(b, `,"from":`...)
	b = appendJSONString(b, e.From)
	b = append(b, `,"status":`...)
	b = appendJSONString(b, string(e.Status))
	b = append(b, `,"ts":"`...)
	b = e.TS.AppendFormat(b, time.RFC3339Nano)
	b = append(b, `","node":`...)
	b = appendJSONString(b, e.Node)
	b = append(b, `,"meta":`...)
	b = appendStringMap(b, e.Meta)
	if e.Reason != "" {
		b = append(b, `,"reason":`...)
		b = appendJSONString(b, e.Reason)
	}
	if e.Detail != "" {
		b = append(b, `,"detail":`...)
		b = appendJSONString(b, e.Detail)
	}
	if e.Segments != 0 {
		b = append(b, `,"segments":`...)
		b = strconv.AppendInt(b, int64(e.Segments), 10)
	}
	if e.Encoding != "" {
		b = append(b, `,"encoding":`...)
		b = appendJSONString(b, e.Encoding)
	}
	if e.Connection != "" {
		b = append(b, `,"connection":`...)
		b = appendJSONString(b, e.Connection)
	}
	if len(e.SMSCIDs) > 0 {
		b = append(b, `,"smsc_ids":[`...)
		for i, id := range e.SMSCIDs {
			if i > 0 {
				b = append(b, ',')
			}
			b = appendJSONString(b, id)
		}
		b = append(b, ']')
	}
	if e.Part != 0 {
		b = append(b, `,"part":`...)
		b = strconv.AppendInt(b, int64(e.Part), 10)
	}
	if e.DurationMS != 0 {
		b = append(b, `,"duration_ms":`...)
		b = strconv.AppendInt(b, e.DurationMS, 10)
	}
	if len(e.Parts) > 0 {
		b = append(b, `,"parts":[`...)
		for i := range e.Parts {
			p := &e.Parts[i]
			if i > 0 {
				b = append(b, ',')
			}
			b = append(b, `{"part":`...)
			b = strconv.AppendInt(b, int64(p.Part), 10)
			b = append(b, `,"smsc_id":`...)
			b = appendJSONString(b, p.SMSCID)
			b = append(b, `,"state":`...)
			b = appendJSONString(b, p.State)
			if p.Err != "" {
				b = append(b, `,"err":`...)
				b = appendJSONString(b, p.Err)
			}
			b = append(b, '}')
		}
		b = append(b, ']')
	}
	if e.Pool != "" {
		b = append(b, `,"pool":`...)
		b = appendJSONString(b, e.Pool)
	}
	return append(b, '}'), nil
}

func appendMarshal(b []byte, e *dispatch.Event) ([]byte, error) {
	v, err := json.Marshal(e)
	if err != nil {
		return b, err
	}
	return append(b, v...), nil
}

// appendStringMap writes m as encoding/json does: null for nil, keys sorted.
func appendStringMap(b []byte, m map[string]string) []byte {
	if m == nil {
		return append(b, "null"...)
	}
	var small [8]string
	keys := small[:0]
	for k := range m {
		keys = append(keys, k)
	}
	// insertion sort: meta maps are small
	for i := 1; i < len(keys); i++ {
		for j := i; j > 0 && keys[j] < keys[j-1]; j-- {
			keys[j], keys[j-1] = keys[j-1], keys[j]
		}
	}
	b = append(b, '{')
	for i, k := range keys {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendJSONString(b, k)
		b = append(b, ':')
		b = appendJSONString(b, m[k])
	}
	return append(b, '}')
}

const hexDigits = "0123456789abcdef"

// appendJSONString writes s as a JSON string the way encoding/json.Marshal does: HTML
// characters (<, >, &), U+2028 and U+2029 as \u escapes, invalid UTF-8 as \ufffd,
// control characters as \b \f \n \r \t or \u00XX.
func appendJSONString(b []byte, s string) []byte {
	b = append(b, '"')
	done := 0 // s[:done] is written
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' && c != '<' && c != '>' && c != '&' {
				i++
				continue
			}
			b = append(b, s[done:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\b':
				b = append(b, '\\', 'b')
			case '\f':
				b = append(b, '\\', 'f')
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xF])
			}
			i++
			done = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		switch {
		case r == utf8.RuneError && size == 1:
			b = append(b, s[done:i]...)
			b = append(b, `\ufffd`...)
		case r == '\u2028' || r == '\u2029':
			b = append(b, s[done:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xF])
		default:
			i += size
			continue
		}
		i += size
		done = i
	}
	b = append(b, s[done:]...)
	return append(b, '"')
}
