// Package harness starts the real gateway (the same code as `sendcore run`: gateway.New
// then Run) on loopback together with the peers it talks to — the embedded Kafka-protocol
// broker, an SMSC from smsctest, a SIP endpoint from uastest — or points it at external
// ones. `sendcore bench` and `sendcore demo` run on it.
//
// It is apart from package bench so that bench's load generation and reports build and
// test without the gateway.
package harness
