// Package smpp connects sendcore to SMSCs over SMPP v3.4: a session engine of our own
// (asynchronous window, sequence matching, enquire_link, receipts that are acknowledged
// only once durable) on go-smpp's PDU codec, connections with reconnect, rate limiting
// and adaptive throttling, and receipt/MO parsing.
//
// Place in the pipeline: dispatch ──> gateway/smpp (a dispatch.SMSSender per connection);
// receipts and MO flow back through callbacks into dispatch. The test kit smsctest is a
// real SMSC on loopback.
package smpp
