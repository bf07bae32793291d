// Package dispatch is the core of sendcore: it turns send-requests into exactly one
// terminal outcome each.
//
// Place in the pipeline:
//
//	gateway/kafka (Source) ──> dispatch ──> segment, rotation (pure)
//	                              │──────> storage (through the interfaces declared here)
//	                              └──────> gateway/smpp (SMSSender), gateway/sip (Caller)
//	                              └──────> gateway/kafka (EventSink)
//
// dispatch owns the domain words (Request, Event, Status, SMS, Call) and declares the
// interfaces it needs from the adapters and the stores, next to where it uses them. It
// never imports an adapter or a store; gateway wires concrete implementations in.
package dispatch

// Stages of a request record (Pipeline): parse and validate (size and nesting bounded
// before JSON; failures → DLQ, and `rejected` when the id could be read) →
// Ledger.ClaimAccepted (a new claim and its `accepted` event in one durable write; same
// source: a redelivery, resumed without repeating events; other source: `duplicate`) →
// expiry (`expired`) → opt-out (`suppressed`) → schedule
// (not_before, quiet hours: Schedule.Hold + `scheduled` with reason not_before,
// quiet_hours, rate_limited, pool_exhausted or no_connection) → route (longest prefix,
// config order, "*" last; not-ready connections skipped; none → `no_route`) → sender
// (from, pool, connection default) → segment → limits (short waits on a timer, long ones
// held) → SMSSender.Send → `submitted` + Receipts.Track → receipts: `delivered` /
// `undelivered` (or `undelivered` with reason receipt_timeout when receipt_ttl passes
// first). A request with dlr=false ends at `submitted`.
//
// Crash safety (SIGKILL at any point: every request ends in exactly one terminal event):
//   - Transactional outbox: the emitter appends each batch of events to the ledger with
//     Ledger.AppendSeqs, which writes the history and an outbox entry per event in one
//     Badger transaction (`accepted` is written by ClaimAccepted with the claim, and
//     only queued for the topic); the events topic is written afterwards
//     (asynchronously, several batches in flight) and the outbox entries are marked
//     published once acknowledged. On start the emitter re-publishes what the outbox
//     still holds, byte for byte as first emitted (same ts): consumers drop exact
//     repeats. Workers start after that walk, so it sees only earlier runs' events.
//   - A record is acknowledged to the Source once its hand-off event is durable in the
//     ledger (the outbox then guarantees publication), and, for submitted, the
//     submission is tracked; the topic write is not on the acknowledgement path.
//   - The ledger adds only the first terminal event of a request (duplicate excepted,
//     which is another record's outcome), so completions may be emitted more than once:
//     receipt completion is idempotent (see receipts.go), and HandleReceipt returns, so
//     that the SMSC gets deliver_sm_resp, only once the completion is durable.
//   - `accepted` is durable before the send, and at most Config.MaxUnconfirmed sends per
//     connection are without a durable outcome: what a crash can send twice.
//
// MO keyword events: a stop keyword produces Event{ID: "mo/<connection>/<address>/<unix
// nanos>", Tenant: Config.MOTenant, Channel: "sms", From: the handset (E.164), To: our
// number, Status: "opted_out", Reason: "keyword", Detail: the normalised keyword,
// Connection}; a start keyword the same with Status "opted_in". They are not request
// events and never terminal.
