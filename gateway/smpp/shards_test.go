package smpp

import (
	"strconv"
	"testing"
	"time"

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
