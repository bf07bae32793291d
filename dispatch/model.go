package dispatch

import "time"

// Channel is the medium of a request: "sms" or "voice". Opt-outs also know "all".
type Channel = string

// Channels.
const (
	ChannelSMS   Channel = "sms"
	ChannelVoice Channel = "voice"
	ChannelAll   Channel = "all" // opt-outs only: every channel
)

// Priorities (contract §2).
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
	PriorityBulk   = "bulk"
)

// VoiceOptions are the voice-only settings of a request (contract §2 `voice`).
type VoiceOptions struct {
	RingTimeoutS int    `json:"ring_timeout_s,omitempty"`
	MaxDurationS int    `json:"max_duration_s,omitempty"`
	Prompt       string `json:"prompt,omitempty"`
}

// Request is one send-request as upstream applications write it (contract §2).
// Optional booleans are pointers so that "absent" (use the default) differs from false.
type Request struct {
	ID            string            `json:"id"`
	Channel       Channel           `json:"channel"`
	Tenant        string            `json:"tenant,omitempty"`
	To            string            `json:"to"`
	From          string            `json:"from,omitempty"`
	Pool          string            `json:"pool,omitempty"`
	Text          string            `json:"text,omitempty"`
	Encoding      string            `json:"encoding,omitempty"`
	SmartEncoding *bool             `json:"smart_encoding,omitempty"`
	Campaign      string            `json:"campaign,omitempty"`
	Module        string            `json:"module,omitempty"`
	NotBefore     *time.Time        `json:"not_before,omitempty"`
	ExpiresAt     *time.Time        `json:"expires_at,omitempty"`
	DLR           *bool             `json:"dlr,omitempty"`
	Priority      string            `json:"priority,omitempty"`
	Voice         *VoiceOptions     `json:"voice,omitempty"`
	Meta          map[string]string `json:"meta,omitempty"`
}

// Status is the status of a request in an Event (contract §3).
type Status string

// Statuses (contract §3).
const (
	StatusAccepted    Status = "accepted"
	StatusScheduled   Status = "scheduled"
	StatusSuppressed  Status = "suppressed"
	StatusRejected    Status = "rejected"
	StatusDuplicate   Status = "duplicate"
	StatusCancelled   Status = "cancelled"
	StatusExpired     Status = "expired"
	StatusSubmitted   Status = "submitted"
	StatusDelivered   Status = "delivered"
	StatusUndelivered Status = "undelivered"
	StatusFailed      Status = "failed"
	StatusAnswered    Status = "answered"
	StatusCompleted   Status = "completed"
	StatusBusy        Status = "busy"
	StatusNoAnswer    Status = "no_answer"
	StatusDeclined    Status = "declined"
)

// Opt-out statuses: events of MO keywords (not of requests; never terminal). Their shape
// is documented in doc.go.
const (
	StatusOptedOut Status = "opted_out"
	StatusOptedIn  Status = "opted_in"
)

// Terminal reports whether s ends a request: after it no other status follows.
func (s Status) Terminal() bool {
	switch s {
	case StatusSuppressed, StatusRejected, StatusDuplicate, StatusCancelled, StatusExpired,
		StatusDelivered, StatusUndelivered, StatusFailed, StatusCompleted,
		StatusBusy, StatusNoAnswer, StatusDeclined:
		return true
	}
	return false
}

// PartReceipt is the delivery state of one SMS part, carried in delivered/undelivered events.
type PartReceipt struct {
	Part   int    `json:"part"`
	SMSCID string `json:"smsc_id"`
	State  string `json:"state"`         // e.g. DELIVRD, UNDELIV, EXPIRED, REJECTD
	Err    string `json:"err,omitempty"` // the SMSC's error code, as sent
}

// Event is one status event (contract §3). Optional fields are omitted when zero.
type Event struct {
	ID         string            `json:"id"`
	Tenant     string            `json:"tenant"`
	Campaign   string            `json:"campaign"`
	Channel    Channel           `json:"channel"`
	To         string            `json:"to"`
	From       string            `json:"from"`
	Status     Status            `json:"status"`
	TS         time.Time         `json:"ts"`
	Node       string            `json:"node"`
	Meta       map[string]string `json:"meta"`
	Reason     string            `json:"reason,omitempty"`
	Detail     string            `json:"detail,omitempty"`
	Segments   int               `json:"segments,omitempty"`
	Encoding   string            `json:"encoding,omitempty"`
	Connection string            `json:"connection,omitempty"`
	SMSCIDs    []string          `json:"smsc_ids,omitempty"`
	Part       int               `json:"part,omitempty"`
	DurationMS int64             `json:"duration_ms,omitempty"`
	Parts      []PartReceipt     `json:"parts,omitempty"`
	// Pool is the rotation pool From was taken from, when it was (an addition to the
	// contract's fields: receipts and call outcomes feed the pool's health through it).
	Pool string `json:"pool,omitempty"`
}
