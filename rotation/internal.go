package rotation

import "math/bits"

// bitset is a set of number indexes.
type bitset []uint64

func newBitset(n int) bitset { return make(bitset, (n+63)/64) }

func (b bitset) has(i int32) bool { return b[i>>6]&(1<<(uint(i)&63)) != 0 }
func (b bitset) set(i int32)      { b[i>>6] |= 1 << (uint(i) & 63) }
func (b bitset) clear(i int32)    { b[i>>6] &^= 1 << (uint(i) & 63) }

// next returns the first member in [lo, hi), or -1.
func (b bitset) next(lo, hi int) int {
	if lo >= hi {
		return -1
	}
	w := lo >> 6
	word := b[w] &^ (uint64(1)<<(uint(lo)&63) - 1)
	for {
		if word != 0 {
			if i := w<<6 + bits.TrailingZeros64(word); i < hi {
				return i
			}
			return -1
		}
		w++
		if w<<6 >= hi {
			return -1
		}
		word = b[w]
	}
}

// nextWrap returns the first member in [from, hi), else in [lo, from), or -1.
func (b bitset) nextWrap(lo, hi, from int) int {
	if from < lo || from >= hi {
		from = lo
	}
	if i := b.next(from, hi); i >= 0 {
		return i
	}
	return b.next(lo, from)
}

// iheap is a binary min-heap of number indexes ordered by a key kept in the item (ties by
// index), with each number's position in a dense slice, so that any member can be removed
// or re-keyed in O(log n) without allocating and without touching the numbers.
type iheap struct {
	items []hitem
	pos   []int32 // by number index; -1: not in the heap
}

type hitem struct {
	key uint64
	i   int32
}

func newHeap(n int) iheap {
	h := iheap{items: make([]hitem, 0, n), pos: make([]int32, n)}
	for i := range h.pos {
		h.pos[i] = -1
	}
	return h
}

func (a hitem) less(b hitem) bool { return a.key < b.key || a.key == b.key && a.i < b.i }

func (h *iheap) has(i int32) bool { return h.pos[i] >= 0 }

func (h *iheap) up(j int) {
	it := h.items[j]
	for j > 0 {
		parent := (j - 1) / 2
		if !it.less(h.items[parent]) {
			break
		}
		h.items[j] = h.items[parent]
		h.pos[h.items[j].i] = int32(j)
		j = parent
	}
	h.items[j] = it
	h.pos[it.i] = int32(j)
}

func (h *iheap) down(j int) {
	n := len(h.items)
	it := h.items[j]
	for {
		l := 2*j + 1
		if l >= n {
			break
		}
		m := l
		if r := l + 1; r < n && h.items[r].less(h.items[l]) {
			m = r
		}
		if !h.items[m].less(it) {
			break
		}
		h.items[j] = h.items[m]
		h.pos[h.items[j].i] = int32(j)
		j = m
	}
	h.items[j] = it
	h.pos[it.i] = int32(j)
}

func (h *iheap) push(i int32, key uint64) {
	h.items = append(h.items, hitem{key, i})
	h.up(len(h.items) - 1)
}

func (h *iheap) top() int32 { return h.items[0].i }

func (h *iheap) topKey() uint64 { return h.items[0].key }

func (h *iheap) remove(i int32) {
	j := int(h.pos[i])
	last := len(h.items) - 1
	h.pos[i] = -1
	if j == last {
		h.items = h.items[:last]
		return
	}
	h.items[j] = h.items[last]
	h.items = h.items[:last]
	h.pos[h.items[j].i] = int32(j)
	h.down(j)
	h.up(int(h.pos[h.items[j].i]))
}

// setKey re-keys member i.
func (h *iheap) setKey(i int32, key uint64) {
	j := int(h.pos[i])
	h.items[j].key = key
	h.down(j)
	h.up(int(h.pos[i]))
}

// rekey recomputes every key with f and restores the order.
func (h *iheap) rekey(f func(i int32) uint64) {
	for j := range h.items {
		h.items[j].key = f(h.items[j].i)
	}
	for j := len(h.items)/2 - 1; j >= 0; j-- {
		h.down(j)
	}
}

// Hashing for the sticky ring: FNV-1a then a splitmix64 finaliser. Fixed, unseeded and
// independent of the platform, so that every instance maps a recipient identically.
func fnv64(s string) uint64 {
	h := uint64(14695981039346656037)
	for i := 0; i < len(s); i++ {
		h ^= uint64(s[i])
		h *= 1099511628211
	}
	return h
}

func mix64(x uint64) uint64 {
	x ^= x >> 30
	x *= 0xbf58476d1ce4e5b9
	x ^= x >> 27
	x *= 0x94d049bb133111eb
	x ^= x >> 31
	return x
}
