package smpp

import (
	"context"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
)

// TestHandlersConcurrentAcrossSendersOrderedPerSender guarantees that a slow handler call
// holds back only the deliveries of its own shard: an MO of another sender is handled
// while the first is still blocked, and the MOs of one sender arrive in order.
func TestHandlersConcurrentAcrossSendersOrderedPerSender(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{})
	defer srv.Close()
	cfg := testConfig(srv.Addr())
	cfg.SystemID, cfg.Password = "", ""
	slow := "+358401000000"
	other := ""
	for i := 1; other == ""; i++ {
		if n := "+35840100" + strconv.Itoa(1000+i); shardOf(n) != shardOf(slow) {
			other = n
		}
	}
	release := make(chan struct{})
	got := make(chan dispatch.MO, 16)
	start(t, cfg, Handlers{MO: func(m dispatch.MO) error {
		if m.From == slow && m.Text == "1" {
			<-release
		}
		got <- m
		return nil
	}})
	defer func() {
		select {
		case <-release:
		default:
			close(release)
		}
	}()
	for _, mo := range []struct{ from, text string }{{slow, "1"}, {slow, "2"}, {other, "x"}} {
		if err := srv.SendMO(mo.from, "12345", mo.text); err != nil {
			t.Fatal(err)
		}
	}
	select {
	case m := <-got:
		if m.From != other {
			t.Fatalf("first handled MO %+v, want the one of %s (the slow sender is blocked)", m, other)
		}
	case <-time.After(5 * time.Second):
		t.Fatal("the other sender's MO waited for the blocked handler")
	}
	close(release)
	for _, want := range []string{"1", "2"} {
		select {
		case m := <-got:
			if m.From != slow || m.Text != want {
				t.Fatalf("MO %+v, want %s from %s (order per sender)", m, want, slow)
			}
		case <-time.After(5 * time.Second):
			t.Fatalf("MO %s of the slow sender not handled", want)
		}
	}
}

// TestFullHandlerQueueRefusesCountedAndRedelivered guarantees what happens when a
// handler falls behind: deliveries beyond its shard's queue are answered ESME_RX_T_APPN
// at once (the session's reader never blocks), each refusal is counted in
// sendcore_smpp_deliveries_refused_total{reason="busy"}, and none is lost: the SMSC
// redelivers and every MO is handled once the handler catches up.
func TestFullHandlerQueueRefusesCountedAndRedelivered(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{RedeliverDelay: 50 * time.Millisecond})
	defer srv.Close()
	cfg := testConfig(srv.Addr())
	cfg.SystemID, cfg.Password = "", ""
	reg := prometheus.NewRegistry()
	release := make(chan struct{})
	var mu sync.Mutex
	handled := map[string]int{}
	c, err := NewConnection(cfg, Handlers{MO: func(m dispatch.MO) error {
		<-release
		mu.Lock()
		handled[m.Text]++
		mu.Unlock()
		return nil
	}}, nil, reg)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	ran := make(chan error, 1)
	go func() { ran <- c.Run(ctx) }()
	defer func() { cancel(); <-ran }()
	var once sync.Once
	unblock := func() { once.Do(func() { close(release) }) }
	defer unblock() // before Run is cancelled: Run waits for its handlers
	waitFor(t, 5*time.Second, "bound", func() bool { return c.bound.Load() == 1 })

	const n = inboxPerShard + 100 // one sender: one shard, whose handler is blocked
	for i := range n {
		if err := srv.SendMO("+358401000000", "12345", strconv.Itoa(i)); err != nil {
			t.Fatal(err)
		}
	}
	refused := func() float64 {
		var m dto.Metric
		if err := c.m.refused[refusedBusy].Write(&m); err != nil {
			t.Fatal(err)
		}
		return m.GetCounter().GetValue()
	}
	// The blocked handler holds one MO and its queue inboxPerShard: the rest are refused
	// (and refused again when redelivered while it is still blocked).
	waitFor(t, 10*time.Second, "busy refusals", func() bool { return refused() >= n-inboxPerShard-1 })
	unblock()
	waitFor(t, 30*time.Second, "every MO handled", func() bool {
		mu.Lock()
		defer mu.Unlock()
		return len(handled) == n
	})
	// The counter is the one exported on the registry.
	mfs, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	found := false
	for _, mf := range mfs {
		if mf.GetName() == "sendcore_smpp_deliveries_refused_total" {
			for _, m := range mf.GetMetric() {
				for _, l := range m.GetLabel() {
					if l.GetName() == "reason" && l.GetValue() == "busy" && m.GetCounter().GetValue() == refused() {
						found = true
					}
				}
			}
		}
	}
	if !found {
		t.Fatal("sendcore_smpp_deliveries_refused_total{reason=\"busy\"} not exported")
	}
}
