package kafka

import (
	"sort"
	"sync"
)

// tracker follows, per partition, which fetched offsets are finished, so that only the
// highest contiguous finished offset is committed: committing a higher offset while a
// lower one is still in flight would lose the lower one on a crash. Safe for concurrent
// use.
type tracker struct {
	mu    sync.Mutex
	parts map[int]*partTracker
}

// partTracker holds the offsets of one partition in fetch (increasing) order.
type partTracker struct {
	pending []entry // pending[head:] are not yet committed-through, increasing offsets
	head    int
	last    int64 // the highest offset added; -1 before the first
	next    int64 // offset to commit: everything below it is finished; -1 none yet
	dirty   bool  // next moved since the last commit
}

type entry struct {
	off  int64
	done bool
}

// addResult says what to do with a fetched offset.
type addResult uint8

const (
	addTracked   addResult = iota // new: process it and call done
	addDuplicate                  // still in flight from an earlier fetch: drop it
	addRewound                    // already finished (redelivered after a rebalance or reset): process, untracked
)

func newTracker() *tracker { return &tracker{parts: map[int]*partTracker{}} }

// add registers a fetched offset of partition.
func (t *tracker) add(partition int, off int64) addResult {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil {
		p = &partTracker{last: -1, next: -1}
		t.parts[partition] = p
	}
	if off <= p.last {
		if i := p.find(off); i >= 0 && !p.pending[i].done {
			return addDuplicate
		}
		return addRewound
	}
	p.last = off
	p.pending = append(p.pending, entry{off: off})
	return addTracked
}

// find returns the index of off in pending[head:], or -1.
func (p *partTracker) find(off int64) int {
	s := p.pending[p.head:]
	i := sort.Search(len(s), func(i int) bool { return s[i].off >= off })
	if i < len(s) && s[i].off == off {
		return p.head + i
	}
	return -1
}

// done marks a tracked offset finished and advances the commit point over every
// finished offset at the front.
func (t *tracker) done(partition int, off int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	p := t.parts[partition]
	if p == nil {
		return
	}
	i := p.find(off)
	if i < 0 {
		return
	}
	p.pending[i].done = true
	for p.head < len(p.pending) && p.pending[p.head].done {
		p.next = p.pending[p.head].off + 1
		p.head++
		p.dirty = true
	}
	if p.head == len(p.pending) {
		p.pending, p.head = p.pending[:0], 0
	} else if p.head > 1024 && p.head > len(p.pending)/2 {
		n := copy(p.pending, p.pending[p.head:])
		p.pending, p.head = p.pending[:n], 0
	}
}

// commits returns, for every partition whose commit point moved since the last call,
// the offset to commit (the next offset to read), and clears the moved flags.
func (t *tracker) commits() map[int]int64 {
	t.mu.Lock()
	defer t.mu.Unlock()
	var out map[int]int64
	for part, p := range t.parts {
		if p.dirty {
			if out == nil {
				out = map[int]int64{}
			}
			out[part] = p.next
			p.dirty = false
		}
	}
	return out
}

// redirty marks partitions dirty again after a failed commit.
func (t *tracker) redirty(parts map[int]int64) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for part := range parts {
		if p := t.parts[part]; p != nil {
			p.dirty = true
		}
	}
}

// inflight returns the number of tracked offsets not yet finished.
func (t *tracker) inflight() int {
	t.mu.Lock()
	defer t.mu.Unlock()
	n := 0
	for _, p := range t.parts {
		for _, e := range p.pending[p.head:] {
			if !e.done {
				n++
			}
		}
	}
	return n
}
