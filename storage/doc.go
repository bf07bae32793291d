// Package storage implements the stores that dispatch declares (opt-outs, ledger, receipt
// correlation, schedule, usage counters, settings) on one Badger database per data dir.
//
// Place in the pipeline: dispatch uses these stores only through its interfaces; gateway
// opens the database once and closes it on shutdown.
package storage
