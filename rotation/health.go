package rotation

// window counts outcomes over a sliding window of windowBuckets buckets.
const windowBuckets = 10

type window struct {
	epoch [windowBuckets]int64
	ok, n [windowBuckets]uint32
}

func (w *window) add(e int64, success bool) {
	b := int(uint64(e) % windowBuckets)
	if w.epoch[b] != e {
		w.epoch[b], w.ok[b], w.n[b] = e, 0, 0
	}
	w.n[b]++
	if success {
		w.ok[b]++
	}
}

func (w *window) sum(e int64) (ok, n int) {
	for b := range w.epoch {
		if w.epoch[b] <= e && w.epoch[b] > e-windowBuckets {
			ok += int(w.ok[b])
			n += int(w.n[b])
		}
	}
	return ok, n
}

func (w *window) reset() { *w = window{} }
