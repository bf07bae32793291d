package rotation

import "slices"

// Sticky ring: consistent hashing with virtual nodes. Number i has weight×vnodes points
// on a 32-bit ring, each at a hash of the number and the point's ordinal; a recipient goes
// to the owner of the first point at or after its own hash. The placement depends only on
// the numbers and their weights (never on their order or on the instance), so every
// instance maps a recipient identically, and removing a number moves only its recipients.
//
// vnodes per weight unit is maxVnodes, halved until the ring holds at most maxRingPoints:
// a power of two that changes only when the pool's total weight crosses a threshold, so
// that adding or removing a number otherwise leaves every other point in place.
const (
	maxVnodes     = 1024
	maxRingPoints = 1 << 20
	ringProbe     = 32 // points walked past unusable numbers before a plain scan
)

type ring struct {
	// points holds hash<<32 | owner, sorted: by hash, ties by owner index, which is number
	// order (the pool sorts its numbers), so the ring does not depend on listing order.
	points []uint64
	// idx[b] is the first point whose hash has b as its top bits; idx[len-1] = len(points).
	idx   []uint32
	shift uint
}

func ringVnodes(totalWeight int) int {
	v := maxVnodes
	for v > 1 && totalWeight*v > maxRingPoints {
		v /= 2
	}
	return v
}

func newRing(nums []number) *ring {
	total := 0
	for i := range nums {
		total += int(nums[i].weight)
	}
	v := ringVnodes(total)
	n := total * v
	r := &ring{points: make([]uint64, 0, n)}
	for i := range nums {
		base := fnv64(nums[i].id)
		for j := 0; j < int(nums[i].weight)*v; j++ {
			h := mix64(base ^ uint64(j+1)*0x9E3779B97F4A7C15)
			r.points = append(r.points, h>>32<<32|uint64(i))
		}
	}
	slices.Sort(r.points)
	bitsN := uint(4)
	for bitsN < 20 && 1<<bitsN < n/2 {
		bitsN++
	}
	r.shift = 64 - bitsN
	r.idx = make([]uint32, 1<<bitsN+1)
	p := 0
	for b := 0; b < 1<<bitsN; b++ {
		for p < n && int(r.points[p]>>r.shift) < b {
			p++
		}
		r.idx[b] = uint32(p)
	}
	r.idx[1<<bitsN] = uint32(n)
	return r
}

// lookup returns the position of the first point at or after hash h, wrapping around.
func (r *ring) lookup(h uint32) int {
	key := uint64(h) << 32
	b := key >> r.shift
	lo, hi := int(r.idx[b]), int(r.idx[b+1])
	for lo < hi && r.points[lo] < key {
		lo++
	}
	if lo == len(r.points) {
		return 0
	}
	return lo
}

func (r *ring) owner(pos int) int32 { return int32(uint32(r.points[pos])) }

func recipientHash(to string) uint32 { return uint32(mix64(fnv64(to)) >> 32) }
