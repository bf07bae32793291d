package dispatch

import (
	"context"
	"time"
)

// The ports of the pipeline: what it needs from the Kafka adapter (Source, EventSink,
// DeadLetters, OptOutPublisher) and from the rate limiter and number pools. Each is
// declared here, where it is used; gateway wires the implementations in.

// Record is one request record read from the requests topic.
type Record struct {
	Key   []byte // the record key as produced (the recipient)
	Value []byte // the record value, owned by the pipeline once delivered
	// Source is "topic/partition/offset": the record's identity for redelivery detection
	// and the DLQ's sendcore-source header.
	Source string
	Time   time.Time // the produce timestamp (start of the end-to-end latency)
	// Ack, when not nil, is called exactly once when the record has reached a terminal
	// state or a durable hand-off (submitted and tracked, scheduled, dead-lettered), and
	// after its events are durable. A record that is never acknowledged (shutdown,
	// crash) is redelivered; the ledger absorbs the redelivery.
	Ack func()
}

// Source delivers request records (gateway/kafka).
type Source interface {
	// Run fetches records and calls deliver for each, in partition order, from one
	// goroutine; deliver may block (back-pressure). When ctx is done Run stops fetching
	// and no longer calls deliver, keeps committing acknowledged records until drained is
	// closed (the pipeline will acknowledge nothing more), commits a last time and
	// returns. It returns only when all its goroutines have.
	Run(ctx context.Context, deliver func(Record), drained <-chan struct{}) error
}

// EventSink writes status events to the events topic (gateway/kafka).
type EventSink interface {
	// WriteEvents writes events in order, keyed by id, and returns when every one is
	// acknowledged by all in-sync replicas. It retries failed writes itself until ctx is
	// done; an error means some events were not written (they are still in the ledger).
	WriteEvents(ctx context.Context, events []Event) error
}

// AsyncEventSink is an EventSink that can also write without waiting; the pipeline uses
// it when the sink has it (gateway/kafka's Client), keeping several batches in flight.
type AsyncEventSink interface {
	EventSink
	// WriteEventsAsync queues events (written in order, and before the events of later
	// calls with the same key) and returns at once; done runs exactly once, with nil when
	// every event is acknowledged or with an error when they were given up on, and must
	// not block. An error return means nothing was queued and done is never called.
	WriteEventsAsync(events []Event, done func(error)) error
}

// EncodedEventSink is an AsyncEventSink that takes each event's JSON as already encoded
// (by the ledger, which stored those bytes in its outbox): values[i] is events[i]'s
// encoding, or nil to have the sink encode it. The pipeline uses it when the sink has it,
// so that an event is encoded once and the topic gets exactly the bytes the outbox holds.
type EncodedEventSink interface {
	AsyncEventSink
	WriteEncodedAsync(events []Event, values [][]byte, done func(error)) error
}

// DeadLetters writes rejected records to the DLQ topic (gateway/kafka).
type DeadLetters interface {
	// DeadLetter writes value unchanged with headers sendcore-error (reason),
	// sendcore-detail and sendcore-source, and returns when it is durable. It retries
	// itself until ctx is done.
	DeadLetter(ctx context.Context, key, value []byte, source, reason, detail string) error
}

// OptOutPublisher shares opt-out changes with other instances through the compacted
// opt-outs topic (gateway/kafka).
type OptOutPublisher interface {
	// PublishOptOut writes o keyed tenant/channel/address and returns when it is durable.
	PublishOptOut(ctx context.Context, o OptOut) error
}

// RateLimiter is the pipeline's view of *Limiter (limits.go).
type RateLimiter interface {
	// Reserve takes n units for (tenant, sender, recipient) at now and returns how long
	// the caller must wait before sending; it never blocks. An error (a recipient cap)
	// means the request may not be sent.
	Reserve(tenant, sender, recipient string, n int, now time.Time) (wait time.Duration, err error)
	// Cancel gives back a reservation the caller will not use now (the request is held).
	Cancel(tenant, sender, recipient string, n int, now time.Time)
}

// NumberPicker is the pipeline's view of *Pools (pools.go).
type NumberPicker interface {
	// Pick returns the number of pool to send from to `to`, or an error: an unknown pool,
	// or an exhausted pool with the instant it has capacity again (zero: never).
	Pick(tenant, channel, pool, to string, now time.Time) (number string, retryAt time.Time, err error)
	// Feedback reports the outcome of a use of number for the pool's health.
	Feedback(pool, number string, status Status, now time.Time)
}

// SMSRoute is one SMSC connection with the destination prefixes it serves.
type SMSRoute struct {
	Sender SMSSender
	// Prefixes are E.164 prefixes ("+358"); "*" is the default route.
	Prefixes []string
	// DefaultFrom is the sender used when a request has neither from nor pool.
	DefaultFrom string
}

// VoiceRoute is one SIP trunk with the destination prefixes it serves.
type VoiceRoute struct {
	Caller   Caller
	Prefixes []string
	// MaxCalls bounds the concurrent calls the pipeline places on this trunk (>= 1).
	MaxCalls    int
	DefaultFrom string
}
