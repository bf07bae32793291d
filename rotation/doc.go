// Package rotation picks the sender ID or caller number of each request from a pool of
// numbers: round robin, smooth weighted, least used, sticky (consistent hashing) or local
// presence, within per-number caps, cooldowns and health states.
//
// Place in the pipeline: dispatch asks a pool for a number in its sender-selection stage
// and feeds voice outcomes and SMS receipts back for health. The package is pure: counters
// and the clock come in as arguments; no I/O, no goroutines.
package rotation
