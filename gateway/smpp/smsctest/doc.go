// Package smsctest is a real SMPP v3.4 SMSC on loopback for tests, the demo and benchmarks,
// in the manner of net/http/httptest: NewServer listens on 127.0.0.1:0 and serves until
// Close. It authenticates binds, answers submit_sm at once or after a delay, sends delivery
// receipts after a delay (on the submitting transceiver, with sequence numbers that collide
// with in-flight submits when asked, or on a receiver session), injects MO messages and raw
// PDUs, and injects faults: throttling above a rate, an error every Nth submit, a disconnect
// after N submits, silent drops, slow responses. It records every PDU it receives.
//
// It is the peer of benchmarks: per connection one reader goroutine writes the responses
// itself through a buffered writer flushed when no more input is buffered, with no
// per-PDU goroutine and no per-submit allocation when recording is off.
package smsctest
