package storage

import "testing"

// TestPendingSeqsWatermark guarantees that the watermark never passes an entry that is
// not published, moves inside a partly published range, and that ranges published
// behind a stuck one do not pile up in memory.
func TestPendingSeqsWatermark(t *testing.T) {
	var p pendingSeqs
	p.add(10, 19)
	p.add(20, 149)
	if w := p.advance(); w != 9 {
		t.Fatalf("nothing published: watermark %d, want 9", w)
	}
	for s := uint64(10); s < 15; s++ {
		p.publish(s)
	}
	p.publish(16)
	if w := p.advance(); w != 14 {
		t.Fatalf("10..14 and 16 published: watermark %d, want 14", w)
	}
	p.publish(16) // twice: ignored
	p.publish(999)
	p.publish(15)
	for s := uint64(17); s < 20; s++ {
		p.publish(s)
	}
	for s := uint64(20); s < 150; s++ {
		if s != 100 {
			p.publish(s)
		}
	}
	if w := p.advance(); w != 99 {
		t.Fatalf("all but 100 published: watermark %d, want 99", w)
	}
	if !p.isPublished(99) || p.isPublished(100) || !p.isPublished(101) || p.isPublished(5) {
		t.Fatal("isPublished wrong around the hole at 100")
	}
	p.publish(100)
	if w := p.advance(); w != 149 || len(p.ranges) != 0 {
		t.Fatalf("all published: watermark %d with %d ranges, want 149 and 0", w, len(p.ranges))
	}
	// A stuck range (its topic write failed) followed by 10,000 published batches.
	p.add(150, 159)
	next := uint64(160)
	for range 10000 {
		p.add(next, next+9)
		for s := next; s < next+10; s++ {
			p.publish(s)
		}
		next += 10
		if w := p.advance(); w != 149 {
			t.Fatalf("watermark %d passed the stuck range 150..159", w)
		}
	}
	if n := len(p.ranges) - p.head; n > 4097 {
		t.Fatalf("%d ranges kept behind one stuck range", n)
	}
	for s := uint64(150); s < 160; s++ {
		p.publish(s)
	}
	if w := p.advance(); w != next-1 {
		t.Fatalf("stuck range published: watermark %d, want %d", w, next-1)
	}
}
