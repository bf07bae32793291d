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
// before JSON; failures → DLQ, and `rejected` when the id could be read) → Ledger.Claim
// (same source: a redelivery, resumed without repeating events; other source:
// `duplicate`) → `accepted` → expiry (`expired`) → opt-out (`suppressed`) → schedule
// (not_before, quiet hours: Schedule.Hold + `scheduled` with reason not_before,
// quiet_hours, rate_limited, pool_exhausted or no_connection) → route (longest prefix,
// config order, "*" last; not-ready connections skipped; none → `no_route`) → sender
// (from, pool, connection default) → segment → limits (short waits on a timer, long ones
// held) → SMSSender.Send → `submitted` + Receipts.Track → receipts: `delivered` /
// `undelivered`. A record is acknowledged to the Source only once its hand-off event is
// durable in the ledger and the events topic (and, for submitted, the submission is
// tracked). A request with dlr=false ends at `submitted`.
//
// MO keyword events: a stop keyword produces Event{ID: "mo/<connection>/<address>/<unix
// nanos>", Tenant: Config.MOTenant, Channel: "sms", From: the handset (E.164), To: our
// number, Status: "opted_out", Reason: "keyword", Detail: the normalised keyword,
// Connection}; a start keyword the same with Status "opted_in". They are not request
// events and never terminal.
