package dispatch

import (
	"context"
	"time"

	"github.com/sendcore/sendcore/segment"
)

// SMS is one segmented message, ready for one connection. All its parts go through the
// connection that received it.
type SMS struct {
	RequestID  string
	To         string // E.164
	From       string // E.164 number, short code or alphanumeric sender ID
	Parts      []segment.Part
	DLR        bool      // ask for delivery receipts (registered_delivery)
	ValidUntil time.Time // validity_period; zero: the SMSC's default
	Priority   string
}

// NationalSender is implemented by an SMSSender whose connection allows the national
// language single shift tables (3GPP TS 23.038); the segmenter uses them only when they
// save segments compared with UCS-2.
type NationalSender interface {
	National() segment.LanguageSet
}

// Outcome classifies the final result of submitting one part.
type Outcome uint8

// Outcomes.
const (
	OutcomeOK        Outcome = iota // submit_sm_resp OK; SMSCID set
	OutcomePermanent                // the SMSC refused it for good (e.g. invalid destination)
	OutcomeTransient                // retries exhausted on transient errors
	OutcomeUnknown                  // no response: the SMSC may have accepted it
	OutcomeNotSent                  // never written (an earlier part failed, or shutdown)
)

// String names the outcome for logs and metrics.
func (o Outcome) String() string {
	return [...]string{"ok", "permanent", "transient", "unknown", "not_sent"}[o]
}

// PartResult is the final result of one part, after the connection's own retries.
type PartResult struct {
	Outcome Outcome
	SMSCID  string // when OutcomeOK
	Status  uint32 // the SMPP command_status received, if any
	Err     error  // nil when OutcomeOK
}

// SMSSender is one SMSC connection (gateway/smpp). Safe for concurrent use.
type SMSSender interface {
	// Name is the connection's configured name.
	Name() string
	// Ready reports whether at least one session is bound.
	Ready() bool
	// Concat is the concatenation form this connection is configured for.
	Concat() segment.Concat
	// Send submits every part of m in order, paced by the connection's rate limit and
	// retried on transient errors by the connection, and calls done exactly once, from any
	// goroutine, with one result per part. It blocks only while the connection's queue is
	// full; when ctx is done first it returns ctx.Err() and done is never called.
	Send(ctx context.Context, m *SMS, done func([]PartResult)) error
}

// InFlightWindower is optionally implemented by an SMSSender: the most submits it keeps
// in flight at once (binds × window). The pipeline then lets at most that many of the
// connection's sends be without a durable outcome (Config.MaxUnconfirmed), so that a
// crash sends at most that many requests twice.
type InFlightWindower interface {
	InFlightWindow() int
}

// Call is one outbound voice call.
type Call struct {
	RequestID   string
	To          string // E.164
	From        string // caller ID (From and P-Asserted-Identity)
	RingTimeout time.Duration
	MaxDuration time.Duration
	Prompt      string // audio file name known to the gateway; "" plays nothing
}

// CallResult is how a call ended.
type CallResult struct {
	Status    Status        // completed, busy, no_answer, declined or failed
	Reason    string        // machine code for failed (e.g. "sip_404", "timeout")
	SIPCode   int           // final SIP response code, when one was received
	Answered  bool          // the far end answered
	Duration  time.Duration // from answer to hang-up
	Retryable bool          // another trunk may succeed (503, no response): dispatch fails over
	Trunk     string
}

// Caller is one SIP trunk (gateway/sip). Safe for concurrent use.
type Caller interface {
	// Name is the trunk's configured name.
	Name() string
	// Ready reports whether the trunk can place calls now.
	Ready() bool
	// Call places c and blocks until it ends. onAnswer, if not nil, is called once when the
	// far end answers. When ctx is done the call is cancelled or hung up, and a result is
	// still returned.
	Call(ctx context.Context, c *Call, onAnswer func()) CallResult
}

// MO is a mobile-originated message received on an SMSC connection.
type MO struct {
	Connection string
	From       string // the handset, E.164 when the SMSC gave an international number
	To         string // our number or short code
	Text       string
	At         time.Time
}
