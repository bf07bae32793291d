// Package smpp connects sendcore to SMSCs over SMPP v3.4: a session engine of our own on
// go-smpp's PDU codec (pdufield/pdutlv for binds, deliver_sm and data_sm; a hand-written
// submit_sm encoder proved byte-identical to it in internal/wire).
//
// Place in the pipeline: dispatch ──> gateway/smpp (a *Connection per configured SMSC,
// implementing dispatch.SMSSender); receipts and MO flow back through Handlers into
// dispatch. The test kit smsctest is a real SMSC on loopback.
//
// A Connection keeps cfg.Binds sessions bound (transmitter, transceiver, or transmitter +
// receiver) and reconnects with jittered exponential backoff. Each session has an
// asynchronous window of cfg.Window submits matched by sequence number (responses only:
// a deliver_sm whose sequence equals an in-flight submit's is a request and never taken
// for its response), one reader, one writer, a pump and a ticker goroutine, never one per
// submit. Parts of one message go in order; a shared golang.org/x/time/rate limiter paces
// segments at cfg.TPS and is lowered on ESME_RTHROTTLED/ESME_RMSGQFUL, then raised
// gradually. Transient errors are retried with bounded backoff, permanent ones end the
// message, submits without a response (timeout, lost session) are retried (at-least-once,
// default) or reported OutcomeUnknown per cfg.OnUnknown. deliver_sm/data_sm are handed to
// Handlers on a separate goroutine and acknowledged only after the handler returned nil.
package smpp
