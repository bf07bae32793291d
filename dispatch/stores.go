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

// Ledger is the idempotency record and status history of every request id, and the
// transactional outbox of the events topic: every event appended is also kept in the
// outbox, in the same atomic write, until Published marks it published. An event is therefore
// never durable in the history without also being on its way to the events topic, also
// across a SIGKILL between the two writes.
type Ledger interface {
	// Claim records that id was read from source at at, unless id is already claimed. It
	// returns the earlier claim and true when one exists (the caller tells a redelivery,
	// same source, from a duplicate, another source). Durable when it returns.
	Claim(id, source string, at time.Time) (prev Claim, existed bool, err error)
	// ClaimAccepted is Claim that, when it makes a new claim, also adds accepted (an
	// event of id, status accepted) to the history and the outbox in the same atomic
	// write, as AppendSeqs would, and returns its outbox sequence number. When the claim
	// exists, nothing is written and seq is 0. Durable when it returns.
	ClaimAccepted(id, source string, at time.Time, accepted Event) (prev Claim, existed bool, seq uint64, err error)
	// Append is AppendSeqs without the sequence numbers.
	Append(events []Event) error
	// AppendSeqs adds events to the status histories of their ids, in order, marks an id
	// terminal on a terminal event, and puts every event it adds into the outbox, all in
	// one atomic write; durable when it returns. It returns each event's outbox sequence
	// number (seqs[i] for events[i]); sequence numbers increase with every call, also
	// across restarts. A request has one terminal status: a terminal event (other than
	// duplicate, which is the outcome of another record with the same id and marks
	// nothing) for an id that already has one is not added at all, and its seq is 0.
	AppendSeqs(events []Event) (seqs []uint64, err error)
	// History returns the status history of id, oldest first; nil and no error if unknown.
	History(id string) ([]Event, error)
	// Outbox calls fn for every event in the outbox with a sequence number above after,
	// in sequence order, as of one snapshot taken when it starts: events appended while it
	// runs are not seen. An error from fn stops the walk and is returned.
	Outbox(after uint64, fn func(seq uint64, e Event) error) error
	// Published marks the outbox entries seqs published (once the events topic
	// acknowledged them): Outbox no longer offers them. Unknown ones are ignored. Not
	// durable at once: after a crash or a restart an entry may be offered again (one
	// published out of order, or just before the crash), so an event can be published
	// twice, with identical bytes; one not published is always offered.
	Published(seqs []uint64) error
}

// EncodingLedger is a Ledger that also returns the JSON it stored for the events it
// adds (the outbox's bytes). The pipeline uses it when the ledger has it, and hands those
// bytes to an EncodedEventSink: one encoding per event instead of two.
type EncodingLedger interface {
	Ledger
	// ClaimAcceptedJSON is ClaimAccepted that also returns accepted's JSON (the caller's
	// copy) when it was written, nil otherwise.
	ClaimAcceptedJSON(id, source string, at time.Time, accepted Event) (prev Claim, existed bool, seq uint64, value []byte, err error)
	// AppendSeqsJSON is AppendSeqs that also returns each added event's JSON (the
	// caller's; nil for an event not added).
	AppendSeqsJSON(events []Event) (seqs []uint64, values [][]byte, err error)
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

// ReceiptResult is what applying one receipt (or tracking a submission) tells the pipeline.
type ReceiptResult struct {
	Matched   bool   // the SMSC id belonged to a tracked submission
	Done      bool   // this call made the last part final: true exactly once per request
	Complete  bool   // every part is final after this call (also on a repeated receipt)
	RequestID string // when Matched
	Part      int    // 1-based, when Matched by a receipt
	Template  Event  // when Matched: the Submission's template
	// Parts holds every part's state, in part order, when Matched (State "" for a part
	// that has no receipt yet).
	Parts []PartReceipt
}

// Receipts correlates delivery receipts to requests, across restarts. A completion is
// reported again on every receipt that finds the request complete, so that a caller that
// crashed before making its completion event durable gets another chance when the SMSC
// redelivers the receipt; the Ledger keeps only the first terminal event.
type Receipts interface {
	// Track stores s so that receipts for its SMSC ids match for ttl, and, in the same
	// write, applies the receipts of those ids that arrived before it (kept by Apply for a
	// while): the result tells whether they completed the request (Done, Complete,
	// Parts). Tracking the same ids again keeps the state and reports it; other ids
	// replace it. A submission not complete by ttl is reported by Expiring. Durable when
	// it returns.
	Track(s Submission, ttl time.Duration) (ReceiptResult, error)
	// Apply records r against its part. A final state (anything but ACCEPTD/ENROUTE) of a
	// part already final is ignored. A receipt whose SMSC id is not tracked (yet) is kept
	// for a few minutes, for Track to apply: an early receipt, which the SMSC can send
	// before the submission is tracked. Durable when it returns.
	Apply(r Receipt) (ReceiptResult, error)
	// Expiring returns up to max tracked submissions that are not complete and whose ttl
	// passed by now, earliest first (Matched, RequestID, Template, Parts). They stay
	// until Expired.
	Expiring(now time.Time, max int) ([]ReceiptResult, error)
	// Expired marks the submissions of ids finished (their timeout event is durable):
	// Expiring no longer returns them. Unknown ids are ignored.
	Expired(ids []string) error
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
