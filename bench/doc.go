// Package bench generates load for the real pipeline (the same code as `sendcore run`)
// against embedded or external peers, measures throughput and end-to-end latency, and
// produces the demo's sample campaign.
//
// Place: bench imports anything; nothing imports bench but cmd/sendcore.
package bench
