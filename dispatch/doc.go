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
