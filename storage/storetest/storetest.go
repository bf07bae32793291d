package storetest

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/sendcore/sendcore/dispatch"
)

// Stores is every store dispatch declares, plus Close.
type Stores interface {
	dispatch.OptOuts
	dispatch.Ledger
	dispatch.Receipts
	dispatch.Schedule
	dispatch.UsageCounters
	dispatch.Settings
	io.Closer
}

// Opener opens the stores kept in dir (a fresh t.TempDir() for each test). The suite
// closes what it opens; it reopens the same dir to test that writes survive a restart.
type Opener func(t *testing.T, dir string) Stores

// Run runs the whole contract suite.
func Run(t *testing.T, open Opener) {
	t.Run("OptOuts", func(t *testing.T) { testOptOuts(t, open) })
	t.Run("Ledger", func(t *testing.T) { testLedger(t, open) })
	t.Run("Receipts", func(t *testing.T) { testReceipts(t, open) })
	t.Run("Schedule", func(t *testing.T) { testSchedule(t, open) })
	t.Run("UsageCounters", func(t *testing.T) { testUsage(t, open) })
	t.Run("Settings", func(t *testing.T) { testSettings(t, open) })
}

// env opens a fresh store and closes it at the end of the test; restart reopens it.
type env struct {
	t    *testing.T
	open Opener
	dir  string
	s    Stores
}

func newEnv(t *testing.T, open Opener) *env {
	t.Helper()
	e := &env{t: t, open: open, dir: t.TempDir()}
	e.s = open(t, e.dir)
	t.Cleanup(func() {
		if e.s != nil {
			if err := e.s.Close(); err != nil {
				t.Errorf("Close: %v", err)
			}
		}
	})
	return e
}

func (e *env) restart() {
	e.t.Helper()
	if err := e.s.Close(); err != nil {
		e.t.Fatalf("Close: %v", err)
	}
	e.s = nil
	e.s = e.open(e.t, e.dir)
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func optedOut(t *testing.T, s Stores, tenant, ch, addr string) bool {
	t.Helper()
	ok, err := s.OptedOut(tenant, ch, addr)
	must(t, err)
	return ok
}

func testOptOuts(t *testing.T, open Opener) {
	const a, b = "+358401234567", "+46701234567"
	ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	t.Run("ChannelMatching", func(t *testing.T) {
		e := newEnv(t, open)
		must(t, e.s.SetOptOut(dispatch.OptOut{Tenant: "t1", Channel: "sms", Address: a, OptedOut: true, Source: "api", TS: ts}))
		must(t, e.s.SetOptOut(dispatch.OptOut{Tenant: "t1", Channel: "all", Address: b, OptedOut: true, Source: "keyword", TS: ts}))
		for _, c := range []struct {
			tenant, ch, addr string
			want             bool
		}{
			{"t1", "sms", a, true},
			{"t1", "voice", a, false},
			{"t1", "all", a, false},
			{"t1", "sms", b, true},
			{"t1", "voice", b, true},
			{"t1", "all", b, true},
			{"t2", "sms", a, false}, // tenants are separate
			{"t2", "all", b, false},
			{"t1", "sms", "+358401234568", false},
		} {
			t.Run(fmt.Sprintf("%s/%s/%s", c.tenant, c.ch, c.addr), func(t *testing.T) {
				if got := optedOut(t, e.s, c.tenant, c.ch, c.addr); got != c.want {
					t.Errorf("OptedOut = %v, want %v", got, c.want)
				}
			})
		}
	})
	t.Run("RemoveAndRestart", func(t *testing.T) {
		e := newEnv(t, open)
		must(t, e.s.SetOptOut(dispatch.OptOut{Tenant: "t", Channel: "voice", Address: a, OptedOut: true, TS: ts}))
		must(t, e.s.SetOptOut(dispatch.OptOut{Tenant: "t", Channel: "voice", Address: b, OptedOut: true, TS: ts}))
		must(t, e.s.SetOptOut(dispatch.OptOut{Tenant: "t", Channel: "voice", Address: b, OptedOut: false}))
		// removing what does not exist is not an error
		must(t, e.s.SetOptOut(dispatch.OptOut{Tenant: "t", Channel: "sms", Address: b, OptedOut: false}))
		e.restart()
		if !optedOut(t, e.s, "t", "voice", a) {
			t.Error("opt-out lost on restart")
		}
		if optedOut(t, e.s, "t", "voice", b) {
			t.Error("removed opt-out is back after restart")
		}
	})
	t.Run("InvalidInput", func(t *testing.T) {
		e := newEnv(t, open)
		for name, o := range map[string]dispatch.OptOut{
			"channel": {Tenant: "t", Channel: "fax", Address: a, OptedOut: true},
			"address": {Tenant: "t", Channel: "sms", Address: "not a number", OptedOut: true},
		} {
			if err := e.s.SetOptOut(o); err == nil {
				t.Errorf("SetOptOut with bad %s: no error", name)
			}
		}
		if _, err := e.s.OptedOut("t", "fax", a); err == nil {
			t.Error("OptedOut with channel fax: no error")
		}
	})
	t.Run("Concurrent", func(t *testing.T) {
		e := newEnv(t, open)
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 50 {
					addr := fmt.Sprintf("+3584012%02d%03d", g, i)
					if err := e.s.SetOptOut(dispatch.OptOut{Tenant: "t", Channel: "sms", Address: addr, OptedOut: true}); err != nil {
						t.Error(err)
						return
					}
					if ok, err := e.s.OptedOut("t", "sms", addr); err != nil || !ok {
						t.Errorf("OptedOut(%s) right after SetOptOut = %v, %v", addr, ok, err)
						return
					}
				}
			})
		}
		wg.Wait()
	})
}

func testLedger(t *testing.T, open Opener) {
	at := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	ev := func(id string, st dispatch.Status, n int) dispatch.Event {
		return dispatch.Event{ID: id, Tenant: "default", Channel: "sms", To: "+358401234567", Status: st,
			TS: at.Add(time.Duration(n) * time.Second), Meta: map[string]string{"n": fmt.Sprint(n)}}
	}
	t.Run("ClaimOnce", func(t *testing.T) {
		e := newEnv(t, open)
		_, existed, err := e.s.Claim("r1", "sendcore.requests/0/1", at)
		must(t, err)
		if existed {
			t.Fatal("first Claim: existed")
		}
		prev, existed, err := e.s.Claim("r1", "sendcore.requests/1/9", at.Add(time.Minute))
		must(t, err)
		if !existed || prev.Source != "sendcore.requests/0/1" || !prev.At.Equal(at) || prev.Terminal != "" {
			t.Fatalf("second Claim = %+v, %v; want the first claim", prev, existed)
		}
	})
	t.Run("ClaimAcceptedWritesAcceptedOnlyWithANewClaim", func(t *testing.T) {
		e := newEnv(t, open)
		acc := ev("ca1", dispatch.StatusAccepted, 1)
		_, existed, seq, err := e.s.ClaimAccepted("ca1", "src-a", at, acc)
		must(t, err)
		if existed || seq == 0 {
			t.Fatalf("first ClaimAccepted: existed %v seq %d; want a new claim with a seq", existed, seq)
		}
		prev, existed, seq2, err := e.s.ClaimAccepted("ca1", "src-b", at.Add(time.Second), ev("ca1", dispatch.StatusAccepted, 2))
		must(t, err)
		if !existed || seq2 != 0 || prev.Source != "src-a" {
			t.Fatalf("second ClaimAccepted = %+v, existed %v, seq %d; want the first claim and nothing written", prev, existed, seq2)
		}
		later, err := e.s.AppendSeqs([]dispatch.Event{ev("ca1", dispatch.StatusSubmitted, 3)})
		must(t, err)
		if later[0] <= seq {
			t.Fatalf("seq after ClaimAccepted %d, want above %d", later[0], seq)
		}
		if _, _, _, err := e.s.ClaimAccepted("ca2", "src", at, ev("other", dispatch.StatusAccepted, 1)); err == nil {
			t.Fatal("ClaimAccepted with an event of another id: no error")
		}
		e.restart()
		h, err := e.s.History("ca1")
		must(t, err)
		if len(h) != 2 || h[0].Status != dispatch.StatusAccepted || h[0].Meta["n"] != "1" || h[1].Status != dispatch.StatusSubmitted {
			t.Fatalf("History = %+v; want the first accepted, then submitted", h)
		}
		var offered []uint64
		must(t, e.s.Outbox(0, func(q uint64, _ dispatch.Event) error { offered = append(offered, q); return nil }))
		if !slices.Equal(offered, []uint64{seq, later[0]}) {
			t.Fatalf("Outbox = %v, want %v", offered, []uint64{seq, later[0]})
		}
		must(t, e.s.Published(offered))
		if _, ok, err := e.s.Claim("ca2", "src", at); err != nil || ok {
			t.Fatalf("the refused ClaimAccepted claimed ca2 (existed %v, %v)", ok, err)
		}
	})
	t.Run("ConcurrentClaimAcceptedOneAcceptedPerID", func(t *testing.T) {
		e := newEnv(t, open)
		var wg sync.WaitGroup
		var mu sync.Mutex
		var seqs []uint64
		for g := range 8 {
			wg.Go(func() {
				for i := range 40 {
					id := fmt.Sprintf("cc-%d", i)
					_, existed, seq, err := e.s.ClaimAccepted(id, fmt.Sprintf("src-%d", g), at, ev(id, dispatch.StatusAccepted, g))
					if err != nil {
						t.Error(err)
						return
					}
					if existed != (seq == 0) {
						t.Errorf("%s: existed %v with seq %d", id, existed, seq)
					}
					if !existed {
						mu.Lock()
						seqs = append(seqs, seq)
						mu.Unlock()
					}
				}
			})
		}
		wg.Wait()
		if len(seqs) != 40 {
			t.Fatalf("%d accepted events written for 40 ids", len(seqs))
		}
		for i := range 40 {
			h, err := e.s.History(fmt.Sprintf("cc-%d", i))
			must(t, err)
			if len(h) != 1 {
				t.Fatalf("cc-%d has %d history events, want 1", i, len(h))
			}
		}
		must(t, e.s.Published(seqs))
		e.restart()
		var left []uint64
		must(t, e.s.Outbox(0, func(q uint64, _ dispatch.Event) error { left = append(left, q); return nil }))
		if len(left) != 0 {
			t.Fatalf("Outbox after publishing every accepted and restart = %v, want empty", left)
		}
	})
	t.Run("HistoryAndTerminalSurviveRestart", func(t *testing.T) {
		e := newEnv(t, open)
		_, _, err := e.s.Claim("r1", "src", at)
		must(t, err)
		must(t, e.s.Append([]dispatch.Event{ev("r1", dispatch.StatusAccepted, 1), ev("r2", dispatch.StatusAccepted, 1)}))
		must(t, e.s.Append([]dispatch.Event{ev("r1", dispatch.StatusSubmitted, 2)}))
		must(t, e.s.Append([]dispatch.Event{ev("r1", dispatch.StatusDelivered, 3), ev("r1", dispatch.StatusFailed, 4)}))
		e.restart()
		h, err := e.s.History("r1")
		must(t, err)
		var got []dispatch.Status
		for _, x := range h {
			got = append(got, x.Status)
		}
		// failed is a second terminal event of r1: not added.
		want := []dispatch.Status{"accepted", "submitted", "delivered"}
		if !slices.Equal(got, want) {
			t.Fatalf("History = %v, want %v", got, want)
		}
		if len(h) < 3 || h[0].Meta["n"] != "1" || !h[2].TS.Equal(at.Add(3*time.Second)) {
			t.Errorf("event fields not kept: %+v", h[0])
		}
		prev, existed, err := e.s.Claim("r1", "src", at)
		must(t, err)
		if !existed || prev.Terminal != dispatch.StatusDelivered {
			t.Errorf("Claim after terminal = %+v, %v; want terminal delivered (the first)", prev, existed)
		}
		if h, err := e.s.History("unknown"); err != nil || h != nil {
			t.Errorf("History(unknown) = %v, %v; want nil, nil", h, err)
		}
		if h, err := e.s.History("r"); err != nil || h != nil {
			t.Errorf("History(r) (prefix of r1) = %v, %v; want nil, nil", h, err)
		}
	})
	t.Run("ConcurrentClaimsOneWinner", func(t *testing.T) {
		e := newEnv(t, open)
		var winners atomic.Int32
		var wg sync.WaitGroup
		for g := range 8 {
			wg.Go(func() {
				for i := range 20 {
					_, existed, err := e.s.Claim(fmt.Sprintf("id-%d", i), fmt.Sprintf("src-%d", g), at)
					if err != nil {
						t.Error(err)
						return
					}
					if !existed {
						winners.Add(1)
					}
				}
			})
		}
		wg.Wait()
		if n := winners.Load(); n != 20 {
			t.Errorf("%d claims won for 20 ids, want exactly 20", n)
		}
	})
	t.Run("OutboxHoldsAppendedUntilPublishedAcrossRestart", func(t *testing.T) {
		e := newEnv(t, open)
		outbox := func(after uint64) (seqs []uint64, evs []dispatch.Event) {
			t.Helper()
			must(t, e.s.Outbox(after, func(seq uint64, ev dispatch.Event) error {
				seqs, evs = append(seqs, seq), append(evs, ev)
				return nil
			}))
			return seqs, evs
		}
		in := []dispatch.Event{ev("o1", dispatch.StatusAccepted, 1), ev("o2", dispatch.StatusAccepted, 2), ev("o1", dispatch.StatusSubmitted, 3)}
		seqs, err := e.s.AppendSeqs(in)
		must(t, err)
		if len(seqs) != 3 || seqs[0] == 0 || seqs[1] <= seqs[0] || seqs[2] <= seqs[1] {
			t.Fatalf("AppendSeqs = %v; want 3 increasing non-zero seqs", seqs)
		}
		got, evs := outbox(0)
		if !slices.Equal(got, seqs) {
			t.Fatalf("Outbox seqs = %v, want %v", got, seqs)
		}
		for i := range evs {
			if evs[i].ID != in[i].ID || evs[i].Status != in[i].Status || !evs[i].TS.Equal(in[i].TS) || evs[i].Meta["n"] != in[i].Meta["n"] {
				t.Errorf("Outbox event %d = %+v, want %+v", i, evs[i], in[i])
			}
		}
		if got, _ := outbox(seqs[0]); !slices.Equal(got, seqs[1:]) {
			t.Errorf("Outbox(after first) = %v, want %v", got, seqs[1:])
		}
		must(t, e.s.Published(seqs[:2]))
		e.restart()
		if got, _ := outbox(0); !slices.Equal(got, seqs[2:]) {
			t.Fatalf("Outbox after Published and restart = %v, want %v", got, seqs[2:])
		}
		more, err := e.s.AppendSeqs([]dispatch.Event{ev("o3", dispatch.StatusAccepted, 4)})
		must(t, err)
		if more[0] <= seqs[2] {
			t.Errorf("seq after restart %d, want above %d", more[0], seqs[2])
		}
		stop := errors.New("stop")
		n := 0
		if err := e.s.Outbox(0, func(uint64, dispatch.Event) error { n++; return stop }); !errors.Is(err, stop) || n != 1 {
			t.Errorf("Outbox with fn error = %v after %d calls; want the error after 1", err, n)
		}
		must(t, e.s.Published(append(more, seqs[2], 12345)))
		if got, _ := outbox(0); len(got) != 0 {
			t.Errorf("Outbox after publishing all = %v, want empty", got)
		}
	})
	t.Run("OutboxPublishedOutOfOrder", func(t *testing.T) {
		// What is published is not offered again by this process; after a restart every
		// entry not published is offered (one published out of order may come back).
		e := newEnv(t, open)
		offered := func() (seqs []uint64) {
			t.Helper()
			must(t, e.s.Outbox(0, func(seq uint64, _ dispatch.Event) error {
				seqs = append(seqs, seq)
				return nil
			}))
			return seqs
		}
		seqs, err := e.s.AppendSeqs([]dispatch.Event{ev("p1", dispatch.StatusAccepted, 1), ev("p2", dispatch.StatusAccepted, 2), ev("p3", dispatch.StatusAccepted, 3)})
		must(t, err)
		must(t, e.s.Published(seqs[1:2]))
		if got := offered(); !slices.Equal(got, []uint64{seqs[0], seqs[2]}) {
			t.Fatalf("Outbox after publishing the middle one = %v, want %v", got, []uint64{seqs[0], seqs[2]})
		}
		e.restart()
		got := offered()
		if !slices.Contains(got, seqs[0]) || !slices.Contains(got, seqs[2]) {
			t.Fatalf("Outbox after restart = %v, must hold %d and %d", got, seqs[0], seqs[2])
		}
		must(t, e.s.Published(got))
		if got := offered(); len(got) != 0 {
			t.Fatalf("Outbox after publishing what it offered = %v, want empty", got)
		}
		e.restart()
		if got := offered(); len(got) != 0 {
			t.Fatalf("Outbox after publishing all and restart = %v, want empty", got)
		}
		if h, err := e.s.History("p2"); err != nil || len(h) != 1 || h[0].Status != dispatch.StatusAccepted {
			t.Fatalf("History(p2) = %+v, %v; published events stay in the history", h, err)
		}
	})
	t.Run("OneTerminalEventPerID", func(t *testing.T) {
		e := newEnv(t, open)
		seqs, err := e.s.AppendSeqs([]dispatch.Event{ev("d1", dispatch.StatusDuplicate, 1), ev("d1", dispatch.StatusDelivered, 2),
			ev("d1", dispatch.StatusUndelivered, 3), ev("d2", dispatch.StatusFailed, 4)})
		must(t, err)
		if seqs[0] == 0 || seqs[1] == 0 || seqs[2] != 0 || seqs[3] == 0 {
			t.Fatalf("seqs = %v; want only the second terminal of d1 (index 2) not added", seqs)
		}
		seqs, err = e.s.AppendSeqs([]dispatch.Event{ev("d1", dispatch.StatusDelivered, 5), ev("d1", dispatch.StatusDuplicate, 6)})
		must(t, err)
		if seqs[0] != 0 || seqs[1] == 0 {
			t.Fatalf("later batch seqs = %v; want the repeated delivered dropped, duplicate added", seqs)
		}
		h, err := e.s.History("d1")
		must(t, err)
		var got []dispatch.Status
		for _, x := range h {
			got = append(got, x.Status)
		}
		if want := []dispatch.Status{"duplicate", "delivered", "duplicate"}; !slices.Equal(got, want) {
			t.Errorf("History = %v, want %v", got, want)
		}
		prev, _, err := e.s.Claim("d1", "src", at)
		must(t, err)
		if prev.Terminal != "" {
			t.Errorf("Terminal of an unclaimed id = %q", prev.Terminal)
		}
		_, _, err = e.s.Claim("d3", "src", at)
		must(t, err)
		must(t, e.s.Append([]dispatch.Event{ev("d3", dispatch.StatusDuplicate, 1)}))
		prev, _, err = e.s.Claim("d3", "src", at)
		must(t, err)
		if prev.Terminal != "" {
			t.Errorf("Terminal after duplicate = %q; duplicate must not mark the id terminal", prev.Terminal)
		}
	})
}

func track(t *testing.T, s Stores, sub dispatch.Submission, ttl time.Duration) dispatch.ReceiptResult {
	t.Helper()
	res, err := s.Track(sub, ttl)
	must(t, err)
	return res
}

func testReceipts(t *testing.T, open Opener) {
	tmpl := dispatch.Event{ID: "m1", Tenant: "default", Channel: "sms", Status: dispatch.StatusSubmitted, Segments: 3, Campaign: "c"}
	sub := dispatch.Submission{RequestID: "m1", Connection: "carrier-a", SMSCIDs: []string{"A1", "A2", "A3"}, Template: tmpl}
	rc := func(id, state string) dispatch.Receipt {
		return dispatch.Receipt{Connection: "carrier-a", SMSCID: id, State: state, At: time.Now()}
	}
	apply := func(t *testing.T, s Stores, r dispatch.Receipt) dispatch.ReceiptResult {
		t.Helper()
		res, err := s.Apply(r)
		must(t, err)
		return res
	}
	t.Run("DoneOnLastFinalPartAfterRestart", func(t *testing.T) {
		e := newEnv(t, open)
		track(t, e.s, sub, time.Hour)
		if r := apply(t, e.s, rc("A2", "DELIVRD")); !r.Matched || r.Done || r.RequestID != "m1" || r.Part != 2 {
			t.Fatalf("A2 = %+v", r)
		}
		e.restart()
		if r := apply(t, e.s, rc("A1", "ENROUTE")); !r.Matched || r.Done || r.Part != 1 {
			t.Fatalf("A1 ENROUTE = %+v; intermediate state must not complete", r)
		}
		if r := apply(t, e.s, rc("A3", "UNDELIV")); r.Done {
			t.Fatalf("A3 = %+v; part 1 still open", r)
		}
		if r := apply(t, e.s, rc("A2", "UNDELIV")); !r.Matched || r.Done {
			t.Fatalf("A2 again = %+v; a final part is final", r)
		}
		r := apply(t, e.s, rc("A1", "DELIVRD"))
		if !r.Done || r.Template.ID != "m1" || r.Template.Segments != 3 || len(r.Parts) != 3 {
			t.Fatalf("A1 final = %+v; want Done with template and 3 parts", r)
		}
		for i, want := range []string{"DELIVRD", "DELIVRD", "UNDELIV"} {
			if p := r.Parts[i]; p.Part != i+1 || p.State != want || p.SMSCID != sub.SMSCIDs[i] {
				t.Errorf("part %d = %+v, want state %s", i+1, p, want)
			}
		}
		if r := apply(t, e.s, rc("A1", "DELIVRD")); r.Done || !r.Complete || len(r.Parts) != 3 {
			t.Errorf("receipt after Done = %+v; want Complete again (with parts), not Done", r)
		}
		e.restart()
		if r := apply(t, e.s, rc("A3", "DELIVRD")); r.Done || !r.Complete || r.Parts[2].State != "UNDELIV" {
			t.Errorf("repeated receipt after restart = %+v; want Complete with the first final states", r)
		}
	})
	t.Run("UnknownOrOtherConnection", func(t *testing.T) {
		e := newEnv(t, open)
		track(t, e.s, sub, time.Hour)
		if r := apply(t, e.s, rc("ZZ", "DELIVRD")); r.Matched {
			t.Errorf("unknown id matched: %+v", r)
		}
		if r := apply(t, e.s, dispatch.Receipt{Connection: "carrier-b", SMSCID: "A1", State: "DELIVRD"}); r.Matched {
			t.Errorf("id of another connection matched: %+v", r)
		}
	})
	t.Run("ConcurrentPartsDoneExactlyOnce", func(t *testing.T) {
		e := newEnv(t, open)
		const reqs, parts = 20, 4
		for i := range reqs {
			ids := make([]string, parts)
			for p := range ids {
				ids[p] = fmt.Sprintf("%d-%d", i, p)
			}
			track(t, e.s, dispatch.Submission{RequestID: fmt.Sprint(i), Connection: "c", SMSCIDs: ids}, time.Hour)
		}
		var done [reqs]atomic.Int32
		var wg sync.WaitGroup
		for p := range parts {
			wg.Go(func() {
				for i := range reqs {
					r, err := e.s.Apply(dispatch.Receipt{Connection: "c", SMSCID: fmt.Sprintf("%d-%d", i, p), State: "DELIVRD"})
					if err != nil {
						t.Error(err)
						return
					}
					if r.Done {
						done[i].Add(1)
					}
				}
			})
		}
		wg.Wait()
		for i := range done {
			if n := done[i].Load(); n != 1 {
				t.Errorf("request %d: Done %d times, want 1", i, n)
			}
		}
	})
	t.Run("ExpiresAfterTTL", func(t *testing.T) {
		e := newEnv(t, open)
		track(t, e.s, dispatch.Submission{RequestID: "x", Connection: "c", SMSCIDs: []string{"X1", "X2"}}, time.Second)
		if r := apply(t, e.s, dispatch.Receipt{Connection: "c", SMSCID: "X1", State: "DELIVRD"}); !r.Matched {
			t.Fatal("not matched within its ttl")
		}
		deadline := time.Now().Add(5 * time.Second)
		for apply(t, e.s, dispatch.Receipt{Connection: "c", SMSCID: "X2", State: "ENROUTE"}).Matched {
			if time.Now().After(deadline) {
				t.Fatal("still matched 5s after a 1s ttl")
			}
			time.Sleep(50 * time.Millisecond) // polling an expiry, not waiting for a peer
		}
	})
	t.Run("EarlyReceiptAppliedByTrackAcrossRestart", func(t *testing.T) {
		e := newEnv(t, open)
		if r := apply(t, e.s, rc("A1", "DELIVRD")); r.Matched {
			t.Fatalf("receipt before Track matched: %+v", r)
		}
		_ = apply(t, e.s, rc("A3", "ENROUTE")) // intermediate: not kept
		e.restart()
		r := track(t, e.s, sub, time.Hour)
		if !r.Matched || r.Done || r.Complete || r.Parts[0].State != "DELIVRD" || r.Parts[2].State != "" {
			t.Fatalf("Track = %+v; want part 1 DELIVRD from the early receipt, not complete", r)
		}
		_ = apply(t, e.s, rc("A2", "DELIVRD"))
		if r := apply(t, e.s, rc("A3", "DELIVRD")); !r.Done || !r.Complete {
			t.Fatalf("last part = %+v; want Done", r)
		}
		// Early receipts of every part: Track itself completes the request.
		e2 := dispatch.Submission{RequestID: "m2", Connection: "carrier-a", SMSCIDs: []string{"B1"}, Template: tmpl}
		_ = apply(t, e.s, rc("B1", "UNDELIV"))
		if r := track(t, e.s, e2, time.Hour); !r.Done || !r.Complete || r.Parts[0].State != "UNDELIV" {
			t.Fatalf("Track with every receipt early = %+v; want Done", r)
		}
		if r := track(t, e.s, e2, time.Hour); r.Done || !r.Complete {
			t.Fatalf("Track again = %+v; want Complete, not Done", r)
		}
	})
	t.Run("TrackAgainKeepsStateOtherIDsReplace", func(t *testing.T) {
		e := newEnv(t, open)
		track(t, e.s, sub, time.Hour)
		_ = apply(t, e.s, rc("A1", "DELIVRD"))
		if r := track(t, e.s, sub, time.Hour); r.Done || r.Complete || r.Parts[0].State != "DELIVRD" {
			t.Fatalf("Track again = %+v; want the state kept", r)
		}
		resent := dispatch.Submission{RequestID: "m1", Connection: "carrier-a", SMSCIDs: []string{"N1"}, Template: tmpl}
		if r := track(t, e.s, resent, time.Hour); r.Complete || len(r.Parts) != 1 || r.Parts[0].State != "" {
			t.Fatalf("Track with other ids = %+v; want a fresh state", r)
		}
		if r := apply(t, e.s, rc("A2", "DELIVRD")); r.Matched {
			t.Errorf("id of the replaced submission matched: %+v", r)
		}
		if r := apply(t, e.s, rc("N1", "DELIVRD")); !r.Done {
			t.Errorf("new id = %+v; want Done", r)
		}
	})
	t.Run("ExpiringUntilExpired", func(t *testing.T) {
		e := newEnv(t, open)
		now := time.Now()
		track(t, e.s, sub, time.Second)
		track(t, e.s, dispatch.Submission{RequestID: "m2", Connection: "carrier-a", SMSCIDs: []string{"B1"}, Template: tmpl}, time.Second)
		track(t, e.s, dispatch.Submission{RequestID: "m3", Connection: "carrier-a", SMSCIDs: []string{"C1"}, Template: tmpl}, time.Hour)
		_ = apply(t, e.s, rc("A2", "DELIVRD"))
		_ = apply(t, e.s, rc("B1", "DELIVRD")) // m2 complete: never expiring
		if got, err := e.s.Expiring(now, 10); err != nil || len(got) != 0 {
			t.Fatalf("Expiring before the ttl = %+v, %v; want none", got, err)
		}
		e.restart()
		got, err := e.s.Expiring(now.Add(2*time.Second), 10)
		must(t, err)
		if len(got) != 1 || got[0].RequestID != "m1" || !got[0].Matched || got[0].Complete || got[0].Template.Segments != 3 ||
			len(got[0].Parts) != 3 || got[0].Parts[1].State != "DELIVRD" || got[0].Parts[0].State != "" {
			t.Fatalf("Expiring after the ttl = %+v; want m1 with its parts", got)
		}
		if again, err := e.s.Expiring(now.Add(2*time.Second), 10); err != nil || len(again) != 1 {
			t.Fatalf("Expiring again before Expired = %+v, %v; want m1 again", again, err)
		}
		must(t, e.s.Expired([]string{"m1", "unknown"}))
		if got, err := e.s.Expiring(now.Add(2*time.Second), 10); err != nil || len(got) != 0 {
			t.Fatalf("Expiring after Expired = %+v, %v; want none", got, err)
		}
		if got, err := e.s.Expiring(now.Add(2*time.Hour), 10); err != nil || len(got) != 1 || got[0].RequestID != "m3" {
			t.Fatalf("Expiring after m3's ttl = %+v, %v; want m3", got, err)
		}
	})
}

func testSchedule(t *testing.T, open Opener) {
	now := time.Now().UTC().Truncate(time.Millisecond)
	item := func(id, campaign string, due time.Duration) dispatch.Scheduled {
		return dispatch.Scheduled{ID: id, Tenant: "t", Campaign: campaign, Due: now.Add(due), Source: "src-" + id, Request: []byte(`{"id":"` + id + `"}`)}
	}
	ids := func(s []dispatch.Scheduled) []string {
		var out []string
		for _, x := range s {
			out = append(out, x.ID)
		}
		return out
	}
	length := func(t *testing.T, s Stores) int {
		t.Helper()
		n, err := s.Len()
		must(t, err)
		return n
	}
	t.Run("TakeInDueOrderWithLeases", func(t *testing.T) {
		e := newEnv(t, open)
		must(t, e.s.Hold(item("c", "camp", -1*time.Second)))
		must(t, e.s.Hold(item("a", "camp", -3*time.Second)))
		must(t, e.s.Hold(item("b", "camp", -2*time.Second)))
		must(t, e.s.Hold(item("later", "camp", time.Hour)))
		if n := length(t, e.s); n != 4 {
			t.Fatalf("Len = %d, want 4", n)
		}
		got, err := e.s.Take(now, 2, time.Minute)
		must(t, err)
		if !slices.Equal(ids(got), []string{"a", "b"}) {
			t.Fatalf("Take = %v, want [a b]", ids(got))
		}
		if string(got[0].Request) != `{"id":"a"}` || got[0].Source != "src-a" || !got[0].Due.Equal(now.Add(-3*time.Second)) {
			t.Errorf("taken item fields: %+v", got[0])
		}
		got, err = e.s.Take(now, 10, time.Minute)
		must(t, err)
		if !slices.Equal(ids(got), []string{"c"}) {
			t.Fatalf("second Take = %v, want [c] (a, b are leased)", ids(got))
		}
		must(t, e.s.Done("a"))
		must(t, e.s.Done("a")) // twice is fine
		if n := length(t, e.s); n != 3 {
			t.Fatalf("Len after Done = %d, want 3 (leased ones count)", n)
		}
		e.restart()
		if n := length(t, e.s); n != 3 {
			t.Fatalf("Len after restart = %d, want 3", n)
		}
		got, err = e.s.Take(now.Add(30*time.Second), 10, time.Minute)
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("Take within the lease after restart = %v, want none", ids(got))
		}
		got, err = e.s.Take(now.Add(61*time.Second), 10, time.Minute)
		must(t, err)
		if !slices.Equal(ids(got), []string{"b", "c"}) {
			t.Fatalf("Take after the lease = %v, want [b c] offered again", ids(got))
		}
	})
	t.Run("HoldReplaces", func(t *testing.T) {
		e := newEnv(t, open)
		must(t, e.s.Hold(item("x", "c1", -time.Second)))
		must(t, e.s.Hold(item("x", "c2", time.Hour)))
		if n := length(t, e.s); n != 1 {
			t.Fatalf("Len = %d, want 1", n)
		}
		if got, _ := e.s.Take(now, 10, time.Minute); len(got) != 0 {
			t.Fatalf("Take = %v; the replaced due time must be gone", ids(got))
		}
		got, err := e.s.Cancel("t", "c1")
		must(t, err)
		if len(got) != 0 {
			t.Fatalf("Cancel(old campaign) = %v", ids(got))
		}
	})
	t.Run("CancelSkipsLeased", func(t *testing.T) {
		e := newEnv(t, open)
		for _, id := range []string{"1", "2", "3"} {
			must(t, e.s.Hold(item(id, "camp", time.Duration(-10+len(id))*time.Second)))
		}
		must(t, e.s.Hold(item("other", "camp2", -time.Second)))
		must(t, e.s.Hold(dispatch.Scheduled{ID: "t2", Tenant: "t2", Campaign: "camp", Due: now}))
		got, err := e.s.Take(now, 1, time.Hour)
		must(t, err)
		leased := got[0].ID
		got, err = e.s.Cancel("t", "camp")
		must(t, err)
		if len(got) != 2 || slices.Contains(ids(got), leased) {
			t.Fatalf("Cancel = %v; want the 2 unleased items of t/camp, not %s", ids(got), leased)
		}
		if n := length(t, e.s); n != 3 {
			t.Fatalf("Len after Cancel = %d, want 3", n)
		}
		got, err = e.s.Take(now.Add(time.Minute), 10, time.Minute)
		must(t, err)
		if !slices.Equal(ids(got), []string{"other", "t2"}) {
			t.Fatalf("Take after Cancel = %v, want [other t2]", ids(got))
		}
	})
	t.Run("ConcurrentTakeExactlyOnce", func(t *testing.T) {
		e := newEnv(t, open)
		const n = 200
		for i := range n {
			must(t, e.s.Hold(item(fmt.Sprintf("i%03d", i), "c", -time.Duration(i)*time.Millisecond)))
		}
		var mu sync.Mutex
		seen := map[string]int{}
		var wg sync.WaitGroup
		for range 4 {
			wg.Go(func() {
				for {
					got, err := e.s.Take(now, 7, time.Hour)
					if err != nil {
						t.Error(err)
						return
					}
					if len(got) == 0 {
						return
					}
					mu.Lock()
					for _, g := range got {
						seen[g.ID]++
					}
					mu.Unlock()
				}
			})
		}
		wg.Wait()
		if len(seen) != n {
			t.Errorf("%d distinct items taken, want %d", len(seen), n)
		}
		for id, c := range seen {
			if c != 1 {
				t.Errorf("%s taken %d times", id, c)
			}
		}
	})
}

func testUsage(t *testing.T, open Opener) {
	e := newEnv(t, open)
	t0 := time.Now().UTC().Truncate(time.Hour).Add(10 * time.Minute)
	for _, c := range []struct {
		number    string
		at        time.Time
		n         int
		hour, day int
	}{
		{"+1", t0, 1, 1, 1},
		{"+1", t0.Add(time.Minute), 2, 3, 3},
		{"+2", t0, 5, 5, 5},
		{"+1", t0.Add(time.Hour), 1, 1, 4},
	} {
		// the day boundary may fall inside the test's hours; compare against the day of c.at
		h, d, err := e.s.AddUse("pool", c.number, c.at, c.n)
		must(t, err)
		wantDay := c.day
		if c.at.Day() != t0.Day() {
			wantDay = c.n
		}
		if h != c.hour || d != wantDay {
			t.Errorf("AddUse(%s, %v, %d) = %d, %d; want %d, %d", c.number, c.at, c.n, h, d, c.hour, wantDay)
		}
	}
	e.restart()
	h, d, err := e.s.Uses("pool", "+1", t0)
	must(t, err)
	if h != 3 || (d != 4 && d != 3) {
		t.Errorf("Uses after restart = %d, %d; want 3, 4", h, d)
	}
	if h, d, _ := e.s.Uses("other", "+1", t0); h != 0 || d != 0 {
		t.Errorf("Uses of another pool = %d, %d; want 0, 0", h, d)
	}
	var wg sync.WaitGroup
	for range 8 {
		wg.Go(func() {
			for range 25 {
				if _, _, err := e.s.AddUse("p", "+3", t0, 1); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	if h, _, _ := e.s.Uses("p", "+3", t0); h != 200 {
		t.Errorf("concurrent AddUse: hour total %d, want 200", h)
	}
}

func testSettings(t *testing.T, open Opener) {
	e := newEnv(t, open)
	must(t, e.s.PutSetting("pools", "b", []byte("2")))
	must(t, e.s.PutSetting("pools", "a", []byte("1")))
	must(t, e.s.PutSetting("pools", "c", []byte("3")))
	must(t, e.s.PutSetting("pool", "z", []byte("other namespace")))
	must(t, e.s.PutSetting("limits", "x", []byte("old")))
	must(t, e.s.PutSetting("limits", "x", []byte("new")))
	must(t, e.s.DeleteSetting("pools", "c"))
	must(t, e.s.DeleteSetting("pools", "missing"))
	e.restart()
	if v, ok, err := e.s.GetSetting("limits", "x"); err != nil || !ok || string(v) != "new" {
		t.Errorf("GetSetting = %q, %v, %v", v, ok, err)
	}
	if _, ok, err := e.s.GetSetting("pools", "c"); err != nil || ok {
		t.Errorf("deleted key: exists=%v err=%v", ok, err)
	}
	var keys []string
	must(t, e.s.ListSettings("pools", func(k string, v []byte) error {
		keys = append(keys, k+"="+string(v))
		return nil
	}))
	if !slices.Equal(keys, []string{"a=1", "b=2"}) {
		t.Errorf("ListSettings = %v, want [a=1 b=2]", keys)
	}
	stop := errors.New("stop")
	n := 0
	err := e.s.ListSettings("pools", func(string, []byte) error { n++; return stop })
	if !errors.Is(err, stop) || n != 1 {
		t.Errorf("ListSettings with fn error: %v after %d calls; want stop after 1", err, n)
	}
}
