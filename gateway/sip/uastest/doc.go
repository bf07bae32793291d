// Package uastest is a SIP endpoint (UAS) on loopback for tests and demos, like
// net/http/httptest for HTTP: it listens on 127.0.0.1 over UDP and TCP, answers INVITEs
// with a behaviour programmed per called user (answer, busy, decline, ring forever, digest
// challenge, repeated 183s, hang up, silence, any status), records what it received (From,
// P-Asserted-Identity, the order of requests, RTP packets) and lets a test wait for a
// condition with a deadline.
package uastest
