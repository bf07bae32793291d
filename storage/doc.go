// Package storage implements the stores that dispatch declares (opt-outs, ledger, receipt
// correlation, schedule, usage counters, settings) on one Badger database per data dir.
//
// Place in the pipeline: dispatch uses these stores only through its interfaces; gateway
// opens the database once (Open), runs its housekeeping (Run) and closes it on shutdown
// (Close); the control plane and `sendcore optout` also use the opt-out extras
// (GetOptOut, CountOptOuts, ImportOptOutsCSV, ExportOptOutsCSV). package storetest holds
// the contract suite every implementation must pass.
//
// Layout: one key prefix byte per table (see keys.go). Ledger records, receipt
// correlations and usage counters carry a Badger TTL and disappear at compaction.
//
// Opt-out checks: an in-memory blocked Bloom filter over (tenant, address), updated before
// every commit, answers most misses without touching Badger (no false negatives). A clean
// Close saves it with the opt-out count (filter_persist.go); Open loads that state when
// Badger's commit sequence still matches, and otherwise (after a crash, or a damaged or
// stale file) rebuilds both by one key-only pass. Removed opt-outs stay in the filter
// (a cost, never a wrong answer) until a rebuild.
// CountOptOuts is a counter kept exact under one opt-out writer lock; checks never take it.
//
// Layout and LSM cost: opt-outs sit below every other prefix (migrate.go moves those of
// earlier data dirs once), so memtables of ledger writes flushed to level 0 never span
// them and compactions do not rewrite millions of static opt-out records.
//
// Ledger outbox (outbox.go, outbox_batch.go): AppendSeqs and ClaimAccepted write each
// event once, in the outbox entry of its transaction (x first -> the events with the
// consecutive seqs first, first+1, …; one event alone is its JSON), with a history index
// (h id seq, or the claim for accepted) beside it, in one transaction; seqs are reserved
// before the write. Published marks entries published in
// memory and moves a persisted watermark over the published prefix (no per-entry
// deletes); Outbox walks the entries above it (only at start). Normal operation never
// reads the outbox. Sequence numbers are seeded at Open above the clock and the last
// entry.
//
// Receipts (receipts.go): a final receipt whose SMSC id is not tracked is kept for ten
// minutes (e connection smscid) and applied by Track in its own transaction (early
// receipts). Tracked submissions not complete are indexed by their receipt deadline
// (w expiry id): Expiring reads it from where the previous call's first result was, so
// it does not walk the tombstones of completed ones; a submission's state outlives its
// ttl by a day for that sweep.
//
// Durability: every write is a committed Badger transaction when its method returns.
// With Options.SyncWrites false (the default) the write sits in the OS page cache: it
// survives the process being killed (tested with SIGKILL) but not an OS crash or power
// loss; set SyncWrites for that, at the price of an fsync per commit.
//
// Background work (Run): value-log GC every Options.GCInterval, the active value log
// written back every second (writeback.go), and, with Options.OnCompaction set, a report
// of when Badger has a memtable flush pending (a second NNNNN.mem file, checked every
// 25 ms) or a compaction due (every 100 ms), which the gateway uses to give Go more
// processors for the burst. Badger flushes and compacts on goroutines of its own.
//
// Concurrency: every method is safe for concurrent use. Read-modify-write operations
// (Claim, Apply, Take, Cancel, Hold) rely on Badger's conflict detection and retry, so
// Claim has one winner per id, Apply and Track report Done once per request (Complete
// on every later receipt) and Take hands an item to one caller per lease. Close waits
// for running calls; later calls fail with ErrClosed.
package storage
