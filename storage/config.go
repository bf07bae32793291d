package storage

import (
	"fmt"
	"time"

	"github.com/dgraph-io/badger/v4/options"
)

// Options configure one database. The zero value is usable: every zero field takes the
// default named in its comment.
type Options struct {
	// Retention is how long ledger records (claims and status histories) are kept;
	// after it an id may be sent again. Default 7 days.
	Retention time.Duration `yaml:"retention" json:"retention"`
	// SyncWrites fsyncs every commit. Without it a committed write survives a process
	// crash (kill -9: the write is in the OS page cache) but not an OS crash or power loss.
	SyncWrites bool `yaml:"sync_writes" json:"sync_writes"`
	// GCInterval is how often Run runs value-log garbage collection. Default 5 minutes.
	GCInterval time.Duration `yaml:"gc_interval" json:"gc_interval"`
	// DefaultRegion is the ISO 3166 region CSV imports read national numbers in
	// ("" accepts international forms only).
	DefaultRegion string `yaml:"default_region" json:"default_region"`
	// BlockCacheBytes is Badger's block cache. Default 64 MiB.
	BlockCacheBytes int64 `yaml:"block_cache_bytes" json:"block_cache_bytes"`
	// MemTableBytes is Badger's memtable size. Default 64 MiB.
	MemTableBytes int64 `yaml:"memtable_bytes" json:"memtable_bytes"`
	// ValueThresholdBytes: values this long or longer (event JSON, submissions) are kept
	// in Badger's value log, the LSM tree holding a pointer; shorter ones (claims,
	// opt-outs, indexes) stay in the tree. Default 128. Kept in the tree, event values
	// filled a memtable every few seconds at 10k requests/s, and each flush and
	// compaction rewrote them: latency spikes of 200+ ms at every memtable switch.
	ValueThresholdBytes int64 `yaml:"value_threshold_bytes" json:"value_threshold_bytes"`
	// Compression of the LSM tree's blocks: "none" (default), "snappy" or "zstd". The
	// tree holds keys and small values (ids, claims, indexes), which compress little;
	// compressing took a quarter of each memtable flush's CPU (a 0.4 CPU-s burst every
	// ~210k requests at the default memtable, the main source of p99 at 15k requests/s)
	// and a decompression on every block read that missed the cache. Tables keep the
	// compression they were written with, so a data dir may switch either way.
	Compression string `yaml:"compression" json:"compression"`
	// NoOptOutFilter disables the in-memory filter in front of the opt-out table (every
	// check then reads Badger). For benchmarks, and for short-lived tools on huge lists
	// after a crash (then Open would rebuild the filter by a scan of every opt-out).
	NoOptOutFilter bool `yaml:"no_optout_filter" json:"no_optout_filter"`
	// CompactL0OnClose makes Close compact level 0 into the tree's base level after the
	// last flush: for a bulk import into a fresh data dir (the bench's opt-out preload),
	// whose records would otherwise sit in level 0 until the first compactions of the
	// next run move them all, a CPU burst no long-running store has. Not a config key.
	CompactL0OnClose bool `yaml:"-" json:"-"`
	// OnCompaction, when set, is called by Run when Badger starts having background work
	// due or running (true): a memtable to flush (checked every 25 ms) or a compaction
	// (every 100 ms), and when it no longer has (false). The gateway uses it to give Go
	// more processors while Badger works (gateway/procs.go).
	OnCompaction func(busy bool) `yaml:"-" json:"-"`
	// Clock returns the current time; nil is time.Now. Used for schedule leases in Cancel.
	Clock func() time.Time `yaml:"-" json:"-"`
}

// Defaults.
const (
	DefaultRetention           = 7 * 24 * time.Hour
	DefaultGCInterval          = 5 * time.Minute
	DefaultValueThresholdBytes = 128
	MaxValueThresholdBytes     = 1 << 20 // Badger's limit
)

// compressions are the values of Options.Compression ("" is the default, none) and
// Badger's types for them.
var compressions = map[string]options.CompressionType{
	"": options.None, "none": options.None, "snappy": options.Snappy, "zstd": options.ZSTD,
}

// CheckCompression reports whether name is a value of Options.Compression; the gateway's
// config check uses it too, so the two cannot drift.
func CheckCompression(name string) error {
	if _, ok := compressions[name]; ok {
		return nil
	}
	return fmt.Errorf("must be none, snappy or zstd, got %q", name)
}

// Validate reports the first bad key, named relative to the section.
func (o Options) Validate() error {
	switch {
	case o.Retention < 0:
		return fmt.Errorf("%w: retention: must be >= 0, got %v", ErrInvalid, o.Retention)
	case o.GCInterval < 0:
		return fmt.Errorf("%w: gc_interval: must be >= 0, got %v", ErrInvalid, o.GCInterval)
	case o.BlockCacheBytes < 0:
		return fmt.Errorf("%w: block_cache_bytes: must be >= 0, got %d", ErrInvalid, o.BlockCacheBytes)
	case o.MemTableBytes < 0:
		return fmt.Errorf("%w: memtable_bytes: must be >= 0, got %d", ErrInvalid, o.MemTableBytes)
	case CheckCompression(o.Compression) != nil:
		return fmt.Errorf("%w: compression: %v", ErrInvalid, CheckCompression(o.Compression))
	case o.ValueThresholdBytes < 0 || o.ValueThresholdBytes > MaxValueThresholdBytes:
		return fmt.Errorf("%w: value_threshold_bytes: must be 0..%d, got %d", ErrInvalid, MaxValueThresholdBytes, o.ValueThresholdBytes)
	}
	return nil
}

func (o Options) withDefaults() Options {
	if o.Retention == 0 {
		o.Retention = DefaultRetention
	}
	if o.GCInterval == 0 {
		o.GCInterval = DefaultGCInterval
	}
	if o.BlockCacheBytes == 0 {
		o.BlockCacheBytes = 64 << 20
	}
	if o.MemTableBytes == 0 {
		o.MemTableBytes = 64 << 20
	}
	if o.ValueThresholdBytes == 0 {
		o.ValueThresholdBytes = DefaultValueThresholdBytes
	}
	if o.Compression == "" {
		o.Compression = "none"
	}
	if o.Clock == nil {
		o.Clock = time.Now
	}
	return o
}
