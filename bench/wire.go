package bench

import (
	"bytes"
	"encoding/json"
	"time"
)

// The bench speaks the external contract (contract §2, §3) as any upstream application
// would: it has its own copies of the JSON shapes rather than the pipeline's types, so
// that it measures and checks the contract, not an implementation detail.

// MetaT0 is the meta key that carries a request's produce time (Unix nanoseconds, decimal).
// The pipeline echoes meta in every event, so latency is event ts − t0.
const MetaT0 = "bench_t0"

// MetaKind is the meta key that carries the traffic kind of a request (KindGSM…).
const MetaKind = "bench_kind"

// Voice is the voice object of a request (contract §2).
type Voice struct {
	RingTimeoutS int    `json:"ring_timeout_s,omitempty"`
	MaxDurationS int    `json:"max_duration_s,omitempty"`
	Prompt       string `json:"prompt,omitempty"`
}

// Request is a send-request (contract §2), as the bench writes it to the requests topic.
type Request struct {
	ID        string            `json:"id"`
	Channel   string            `json:"channel"`
	Tenant    string            `json:"tenant,omitempty"`
	To        string            `json:"to"`
	From      string            `json:"from,omitempty"`
	Pool      string            `json:"pool,omitempty"`
	Text      string            `json:"text,omitempty"`
	Encoding  string            `json:"encoding,omitempty"`
	Campaign  string            `json:"campaign,omitempty"`
	Module    string            `json:"module,omitempty"`
	NotBefore *time.Time        `json:"not_before,omitempty"`
	ExpiresAt *time.Time        `json:"expires_at,omitempty"`
	DLR       *bool             `json:"dlr,omitempty"`
	Voice     *Voice            `json:"voice,omitempty"`
	Meta      map[string]string `json:"meta,omitempty"`
}

// Event is the part of a status event (contract §3) the bench reads.
type Event struct {
	ID         string            `json:"id"`
	Tenant     string            `json:"tenant"`
	Campaign   string            `json:"campaign"`
	Channel    string            `json:"channel"`
	To         string            `json:"to"`
	From       string            `json:"from"`
	Status     string            `json:"status"`
	TS         time.Time         `json:"ts"`
	Meta       map[string]string `json:"meta"`
	Reason     string            `json:"reason,omitempty"`
	Segments   int               `json:"segments,omitempty"`
	Encoding   string            `json:"encoding,omitempty"`
	Connection string            `json:"connection,omitempty"`
	DurationMS int64             `json:"duration_ms,omitempty"`
}

// Terminal reports whether status ends a request (contract §3).
func Terminal(status string) bool {
	switch status {
	case "suppressed", "rejected", "duplicate", "cancelled", "expired", "delivered",
		"undelivered", "failed", "completed", "busy", "no_answer", "declined":
		return true
	}
	return false
}

// uninteresting reports, without decoding the record, whether an event's status is one
// the tally ignores (accepted, scheduled, answered): most events at high rates, and
// decoding them would take CPU from the pipeline being measured.
func uninteresting(value []byte) bool {
	i := bytes.Index(value, []byte(`"status":"`))
	if i < 0 {
		return false
	}
	rest := value[i+len(`"status":"`):]
	for _, s := range [...]string{"accepted\"", "scheduled\"", "answered\""} {
		if bytes.HasPrefix(rest, []byte(s)) {
			return true
		}
	}
	return false
}

// DecodeEvent decodes one events-topic record value: the Event and error
// encoding/json.Unmarshal returns, through a hand-written decoder for the flat events the
// gateway writes (wire_fast.go says why) and encoding/json for anything else.
func DecodeEvent(value []byte) (Event, error) {
	if ev, ok := decodeEventFast(value); ok {
		return ev, nil
	}
	var ev Event
	err := json.Unmarshal(value, &ev)
	return ev, err
}
