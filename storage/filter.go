package storage

import (
	"sync"
	"sync/atomic"

	"github.com/cespare/xxhash/v2"
)

// filter is an in-memory, add-only, growing blocked Bloom filter over (tenant, address)
// of every opt-out. It has no false negatives: a key is added before its opt-out is
// committed, so a check that could see the record sees the filter bit. It has false
// positives (about 0.1 % per layer at its capacity), which only cost a Badger read.
// Removed opt-outs stay in it, and so do they across clean restarts, since Close saves the
// filter (filter_persist.go): until an Open rebuilds it by a scan, which happens after a
// crash or when Close found too many stale keys or layers to save it. Lookups take no lock.
type filter struct {
	mu     sync.Mutex // adders
	layers atomic.Pointer[[]*bloomLayer]
}

// bloomLayer is one fixed-size blocked Bloom filter: each key sets 8 bits in one 64-byte
// block (one bit per word), so a lookup touches one cache line. 16 bits per key.
type bloomLayer struct {
	words   []uint64
	nblocks uint64
	cap     int64
	n       int64 // keys added; under filter.mu
}

const bitsPerKey = 16

func newFilter(capacity int64) *filter {
	f := &filter{}
	l := []*bloomLayer{newLayer(capacity)}
	f.layers.Store(&l)
	return f
}

func newLayer(capacity int64) *bloomLayer {
	if capacity < 1<<16 {
		capacity = 1 << 16
	}
	nb := uint64(capacity*bitsPerKey/512) + 1
	return &bloomLayer{words: make([]uint64, nb*8), nblocks: nb, cap: capacity}
}

func filterHash(tenant, address string) uint64 {
	return xxhash.Sum64String(address) ^ (xxhash.Sum64String(tenant) * 0x9E3779B97F4A7C15)
}

// mix is the splitmix64 finaliser: the in-block bit positions, independent of the block.
func mix(h uint64) uint64 {
	h ^= h >> 30
	h *= 0xbf58476d1ce4e5b9
	h ^= h >> 27
	h *= 0x94d049bb133111eb
	return h ^ h>>31
}

func (l *bloomLayer) has(h uint64) bool {
	b := ((h >> 32) * l.nblocks) >> 32
	w := l.words[b*8 : b*8+8 : b*8+8]
	p := mix(h)
	for i := 0; i < 8; i++ {
		if atomic.LoadUint64(&w[i])&(1<<(p&63)) == 0 {
			return false
		}
		p >>= 6
	}
	return true
}

func (l *bloomLayer) add(h uint64) {
	b := ((h >> 32) * l.nblocks) >> 32
	w := l.words[b*8 : b*8+8 : b*8+8]
	p := mix(h)
	for i := 0; i < 8; i++ {
		atomic.OrUint64(&w[i], 1<<(p&63))
		p >>= 6
	}
}

// mayContain reports whether (tenant, address) may have an opt-out.
func (f *filter) mayContain(h uint64) bool {
	for _, l := range *f.layers.Load() {
		if l.has(h) {
			return true
		}
	}
	return false
}

// add records h; when the newest layer is at capacity it adds one twice as large.
func (f *filter) add(h uint64) {
	f.mu.Lock()
	f.addLocked(h)
	f.mu.Unlock()
}

// addMany records every hash of hs under one lock (an import's chunk).
func (f *filter) addMany(hs []uint64) {
	f.mu.Lock()
	for _, h := range hs {
		f.addLocked(h)
	}
	f.mu.Unlock()
}

func (f *filter) addLocked(h uint64) {
	ls := *f.layers.Load()
	last := ls[len(ls)-1]
	if last.n >= last.cap {
		nl := make([]*bloomLayer, len(ls), len(ls)+1)
		copy(nl, ls)
		last = newLayer(last.cap * 2)
		nl = append(nl, last)
		f.layers.Store(&nl)
	}
	last.add(h)
	last.n++
}

// bytes is the memory the filter holds.
func (f *filter) bytes() int64 {
	var n int64
	for _, l := range *f.layers.Load() {
		n += int64(len(l.words)) * 8
	}
	return n
}
