package dispatch

import (
	"hash/maphash"
	"sync"
	"time"
)

// orphans holds receipts that arrived before their submission was tracked: the SMSC
// can send a receipt as soon as it answered submit_sm, while the pipeline is still
// storing the submission (Receipts.Track). Apply and the orphan insert run under one
// shard lock, and the pipeline looks for orphans under the same lock after Track, so a
// receipt is either matched by Apply or found after Track, never lost in between.
// Orphans live in memory only (a crash in that window loses them) and expire after
// orphanTTL; at most orphanMax are kept.
type orphans struct {
	seed   maphash.Seed
	shards [64]orphanShard
}

type orphanShard struct {
	mu sync.Mutex
	m  map[string]Receipt
}

const (
	orphanTTL = 2 * time.Minute
	orphanMax = 200000 / 64
)

func newOrphans() *orphans {
	o := &orphans{seed: maphash.MakeSeed()}
	for i := range o.shards {
		o.shards[i].m = map[string]Receipt{}
	}
	return o
}

func orphanKey(conn, id string) string { return conn + "\x00" + id }

func (o *orphans) shard(conn, id string) *orphanShard {
	var h maphash.Hash
	h.SetSeed(o.seed)
	h.WriteString(conn)
	h.WriteString(id)
	return &o.shards[h.Sum64()%uint64(len(o.shards))]
}

// put stores r; the caller holds the shard's lock.
func (s *orphanShard) put(r Receipt, now time.Time) {
	if len(s.m) >= orphanMax {
		for k, v := range s.m {
			if now.Sub(v.At) > orphanTTL || len(s.m) >= orphanMax {
				delete(s.m, k)
			}
		}
	}
	if r.At.IsZero() {
		r.At = now
	}
	s.m[orphanKey(r.Connection, r.SMSCID)] = r
}
