package kafka

import (
	"math/rand/v2"
	"testing"
)

// TestTrackerCommitsOnlyContiguous guarantees that the commit point never passes an
// offset that is not finished, whatever order offsets finish in.
func TestTrackerCommitsOnlyContiguous(t *testing.T) {
	tests := []struct {
		name   string
		fetch  []int64
		finish []int64
		want   int64 // expected commit (-1: nothing)
	}{
		{"none finished", []int64{0, 1, 2}, nil, -1},
		{"first finished", []int64{0, 1, 2}, []int64{0}, 1},
		{"gap holds back", []int64{0, 1, 2}, []int64{0, 2}, 1},
		{"gap filled", []int64{0, 1, 2}, []int64{2, 0, 1}, 3},
		{"offsets with holes (compaction)", []int64{5, 9, 12}, []int64{9, 5}, 10},
		{"reverse order", []int64{10, 11, 12, 13}, []int64{13, 12, 11, 10}, 14},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			tr := newTracker()
			for _, o := range tc.fetch {
				if r := tr.add(3, o); r != addTracked {
					t.Fatalf("add(%d) = %v", o, r)
				}
			}
			for _, o := range tc.finish {
				tr.done(3, o)
			}
			got, ok := tr.commits()[3]
			if !ok {
				got = -1
			}
			if got != tc.want {
				t.Fatalf("commit = %d, want %d", got, tc.want)
			}
		})
	}
}

// TestTrackerRandomOrder checks the invariant against a model over random finish orders.
func TestTrackerRandomOrder(t *testing.T) {
	r := rand.New(rand.NewPCG(1, 2))
	for round := 0; round < 200; round++ {
		tr := newTracker()
		n := 1 + r.IntN(300)
		for o := 0; o < n; o++ {
			tr.add(0, int64(o))
		}
		finished := make([]bool, n)
		for _, i := range r.Perm(n)[:r.IntN(n+1)] {
			finished[i] = true
			tr.done(0, int64(i))
		}
		want := int64(-1)
		for i := 0; i < n && finished[i]; i++ {
			want = int64(i) + 1
		}
		got, ok := tr.commits()[0]
		if !ok {
			got = -1
		}
		if got != want {
			t.Fatalf("round %d: commit %d, want %d", round, got, want)
		}
	}
}

// TestTrackerRedelivery guarantees that an offset fetched again while in flight is
// dropped, and one fetched again after it finished is processed untracked.
func TestTrackerRedelivery(t *testing.T) {
	tr := newTracker()
	tr.add(1, 0)
	tr.add(1, 1)
	if r := tr.add(1, 0); r != addDuplicate {
		t.Fatalf("in-flight refetch = %v, want duplicate", r)
	}
	tr.done(1, 0)
	if r := tr.add(1, 0); r != addRewound {
		t.Fatalf("finished refetch = %v, want rewound", r)
	}
	if tr.inflight() != 1 {
		t.Fatalf("inflight = %d, want 1", tr.inflight())
	}
	if c := tr.commits(); c[1] != 1 {
		t.Fatalf("commits = %v", c)
	}
	if c := tr.commits(); len(c) != 0 {
		t.Fatalf("second commits = %v, want none (not dirty)", c)
	}
}
