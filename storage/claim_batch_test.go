package storage_test

import (
	"fmt"
	"sync"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/storage"
)

// TestClaimBatchFirstWins guarantees that group-committed Claims keep the contract when
// many callers claim the same ids at once (so that claims of one id land in one batch as
// well as in consecutive ones): exactly one caller per id wins, every other one gets the
// winner's claim (source and time), and after a reopen every claim is there.
func TestClaimBatchFirstWins(t *testing.T) {
	dir := t.TempDir()
	db := openDB(t, dir, storage.Options{})
	const ids, callers = 200, 16
	at := time.Unix(1764255845, 0).UTC()
	type result struct {
		prev    dispatch.Claim
		existed bool
		src     string
	}
	res := make([][]result, ids)
	for i := range res {
		res[i] = make([]result, callers)
	}
	var wg sync.WaitGroup
	for g := range callers {
		wg.Go(func() {
			for i := range ids {
				src := fmt.Sprintf("src-%d", g)
				prev, existed, err := db.Claim(fmt.Sprintf("id-%d", i), src, at.Add(time.Duration(g)*time.Second))
				if err != nil {
					t.Errorf("Claim id-%d by %d: %v", i, g, err)
					return
				}
				res[i][g] = result{prev, existed, src}
			}
		})
	}
	wg.Wait()
	winners := make([]string, ids)
	for i := range ids {
		var win []int
		for g, r := range res[i] {
			if !r.existed {
				win = append(win, g)
			}
		}
		if len(win) != 1 {
			t.Fatalf("id-%d: %d winners %v, want 1", i, len(win), win)
		}
		w := res[i][win[0]]
		winners[i] = w.src
		wantAt := at.Add(time.Duration(win[0]) * time.Second)
		for g, r := range res[i] {
			if g == win[0] {
				continue
			}
			if r.prev.Source != w.src || !r.prev.At.Equal(wantAt) {
				t.Fatalf("id-%d caller %d: prev %+v, want source %s at %v", i, g, r.prev, w.src, wantAt)
			}
		}
	}
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	db = openDB(t, dir, storage.Options{})
	defer db.Close()
	for i := range ids {
		prev, existed, err := db.Claim(fmt.Sprintf("id-%d", i), "later", at)
		if err != nil || !existed || prev.Source != winners[i] {
			t.Fatalf("after reopen id-%d: %+v %v %v, want the winner %s", i, prev, existed, err, winners[i])
		}
	}
}

// TestClaimAfterClose: a Claim after Close fails with ErrClosed, also through the batcher.
func TestClaimAfterClose(t *testing.T) {
	db := openDB(t, t.TempDir(), storage.Options{})
	if err := db.Close(); err != nil {
		t.Fatal(err)
	}
	if _, _, err := db.Claim("x", "s", time.Now()); err == nil {
		t.Fatal("Claim after Close succeeded")
	}
}

// BenchmarkClaimParallel measures group-committed Claims of distinct ids from many
// goroutines (as the pipeline's workers call it).
func BenchmarkClaimParallel(b *testing.B) {
	db, err := storage.Open(b.TempDir(), storage.Options{}, nil, nil)
	if err != nil {
		b.Fatal(err)
	}
	defer db.Close()
	at := time.Now()
	var n sync.Mutex
	next := 0
	b.SetParallelism(64)
	b.ReportAllocs()
	b.ResetTimer()
	b.RunParallel(func(pb *testing.PB) {
		for pb.Next() {
			n.Lock()
			next++
			id := fmt.Sprintf("bench-%d", next)
			n.Unlock()
			if _, _, err := db.Claim(id, "src", at); err != nil {
				b.Error(err)
				return
			}
		}
	})
	b.ReportMetric(float64(b.N)/b.Elapsed().Seconds(), "claims/s")
}
