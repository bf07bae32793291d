package dispatch

import "time"

// The stores dispatch needs. package storage implements every one of them on Badger,
// behind one contract test suite (storage/storetest) that any implementation must pass.
// All methods are safe for concurrent use. "Durable when it returns" means: a process
// killed with SIGKILL after the call returned still has the write on reopen.

// OptOut is one opt-out record (contract §1 `sendcore.optouts`, §8).
type OptOut struct {
	Tenant   string    `json:"tenant"`
	Channel  Channel   `json:"channel"` // sms, voice or all
	Address  string    `json:"address"` // normalised E.164
	OptedOut bool      `json:"opted_out"`
	Source   string    `json:"source"` // api, import, keyword, kafka
	TS       time.Time `json:"ts"`
}

// OptOuts is the suppression list.
type OptOuts interface {
	// OptedOut reports whether address (already normalised E.164) may not receive on
	// channel for tenant: true when an opt-out exists for that channel or for "all".
	// On the hot path of every request.
	OptedOut(tenant string, channel Channel, address string) (bool, error)
	// SetOptOut adds (o.OptedOut) or removes (!o.OptedOut) an opt-out. Durable when it returns.
	SetOptOut(o OptOut) error
}

// Claim is the idempotency record of one request id.
type Claim struct {
	Source   string    // where the request was first read, e.g. "sendcore.requests/3/1207"
	At       time.Time // when it was claimed
	Terminal Status    // the terminal status once reached, "" before
}

// Ledger is the idempotency record and status history of every request id.
type Ledger interface {
	// Claim records that id was read from source at at, unless id is already claimed. It
	// returns the earlier claim and true when one exists (the caller tells a redelivery,
	// same source, from a duplicate, another source). Durable when it returns.
	Claim(id, source string, at time.Time) (prev Claim, existed bool, err error)
	// Append adds events to the status histories of their ids, in order, and marks an id
	// terminal on a terminal event. One call per batch; durable when it returns.
	Append(events []Event) error
	// History returns the status history of id, oldest first; nil and no error if unknown.
	History(id string) ([]Event, error)
}

// Submission is what the receipt correlation needs to know of one submitted SMS.
type Submission struct {
	RequestID  string
	Connection string
	SMSCIDs    []string // index i holds the SMSC message id of part i+1
	Template   Event    // the submitted event: tenant, campaign, to, from, meta, segments...
}

// Receipt is one delivery receipt as an SMSC reported it.
type Receipt struct {
	Connection string
	SMSCID     string // normalised by the connection (its configured id format)
	State      string // DELIVRD, UNDELIV, EXPIRED, DELETED, REJECTD, UNKNOWN, ACCEPTD, ENROUTE
	Err        string
	At         time.Time
}

// ReceiptResult is what applying one receipt tells the pipeline.
type ReceiptResult struct {
	Matched   bool          // the SMSC id belonged to a tracked submission
	Done      bool          // this receipt completed the request: true exactly once per request
	RequestID string        // when Matched
	Part      int           // 1-based, when Matched
	Template  Event         // when Done: the Submission's template
	Parts     []PartReceipt // when Done: every part's final state, in part order
}

// Receipts correlates delivery receipts to requests, across restarts.
type Receipts interface {
	// Track stores s so that receipts for its SMSC ids match for ttl. Durable when it returns.
	Track(s Submission, ttl time.Duration) error
	// Apply records r against its part. A final state (anything but ACCEPTD/ENROUTE) of a
	// part already final is ignored. Durable when it returns.
	Apply(r Receipt) (ReceiptResult, error)
}

// Scheduled is one request held until an instant.
type Scheduled struct {
	ID       string
	Tenant   string
	Campaign string
	Due      time.Time
	Source   string // the source of its claim
	Request  []byte // the request, JSON as received
}

// Schedule holds requests until they are due, in due order.
type Schedule interface {
	// Hold stores s until s.Due; holding an id again replaces it. Durable when it returns.
	Hold(s Scheduled) error
	// Take returns up to max items due at now, earliest first, and leases them for lease:
	// an item not Done within its lease is offered again, also after a restart.
	Take(now time.Time, max int, lease time.Duration) ([]Scheduled, error)
	// Done removes a taken item for good.
	Done(id string) error
	// Cancel removes every held item of tenant's campaign that is not leased, and returns them.
	Cancel(tenant, campaign string) ([]Scheduled, error)
	// Len is the number of items held, leased ones included.
	Len() (int, error)
}

// UsageCounters counts the uses of pool numbers per hour and per day (UTC), for the caps
// of package rotation, so that caps hold across restarts.
type UsageCounters interface {
	// AddUse adds n uses of number in pool at t and returns that hour's and day's totals.
	AddUse(pool, number string, t time.Time, n int) (hour, day int, err error)
	// Uses returns the hour's and day's totals of number in pool at t.
	Uses(pool, number string, t time.Time) (hour, day int, err error)
}

// Settings keeps small documents that are changed live: pools, limits, API tokens.
type Settings interface {
	PutSetting(namespace, key string, value []byte) error
	// GetSetting returns the value and whether it exists.
	GetSetting(namespace, key string) ([]byte, bool, error)
	DeleteSetting(namespace, key string) error
	// ListSettings calls fn for every key of namespace in key order; an error from fn stops it.
	ListSettings(namespace string, fn func(key string, value []byte) error) error
}
