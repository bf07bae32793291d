package smpp

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/smpp/internal/wire"
	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
	"github.com/sendcore/sendcore/segment"
)

func testConfig(addr string) Config {
	c := DefaultConfig()
	c.Name, c.Addr, c.SystemID, c.Password = "test", addr, "esme", "pw"
	c.Window = 50
	c.RespTimeout = 2 * time.Second
	c.ReconnectMin, c.ReconnectMax = 10*time.Millisecond, 50*time.Millisecond
	c.ShutdownGrace = 2 * time.Second
	return c
}

type runner struct {
	once   sync.Once
	c      *Connection
	cancel context.CancelFunc
	done   chan error
}

// start runs a connection until the test ends and waits until it is ready.
func start(t *testing.T, cfg Config, h Handlers) *runner {
	t.Helper()
	c, err := NewConnection(cfg, h, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	r := &runner{c: c, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- c.Run(ctx) }()
	t.Cleanup(func() { r.stop(t) })
	waitFor(t, 5*time.Second, "bound", func() bool { return int(c.bound.Load()) == sessionsWanted(cfg) })
	return r
}

func sessionsWanted(cfg Config) int {
	if cfg.Bind == "receiver-pair" {
		return 2 * cfg.Binds
	}
	return cfg.Binds
}

func (r *runner) stop(t *testing.T) {
	t.Helper()
	r.once.Do(func() {
		r.cancel()
		select {
		case <-r.done:
		case <-time.After(10 * time.Second):
			t.Fatal("Run did not return")
		}
	})
}

func waitFor(t *testing.T, d time.Duration, what string, f func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !f() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func sms(i, parts int) *dispatch.SMS {
	m := &dispatch.SMS{RequestID: fmt.Sprint("r", i), To: fmt.Sprintf("+35840%07d", i), From: "Sendcore", DLR: true}
	for p := 1; p <= parts; p++ {
		sm := []byte(fmt.Sprintf("msg %d part %d", i, p))
		if parts > 1 {
			sm = append([]byte{5, 0, 3, byte(i), byte(parts), byte(p)}, sm...)
		}
		m.Parts = append(m.Parts, segment.Part{ShortMessage: sm, UDHI: parts > 1, Seq: p, Total: parts, Ref: uint16(i)})
	}
	return m
}

// collector records done calls and fails the test on a second call for one message.
type collector struct {
	t       *testing.T
	mu      sync.Mutex
	results map[string][]dispatch.PartResult
	n       atomic.Int64
}

func newCollector(t *testing.T) *collector {
	return &collector{t: t, results: map[string][]dispatch.PartResult{}}
}

func (c *collector) done(id string) func([]dispatch.PartResult) {
	return func(r []dispatch.PartResult) {
		c.mu.Lock()
		defer c.mu.Unlock()
		if _, dup := c.results[id]; dup {
			c.t.Errorf("done called twice for %s", id)
		}
		c.results[id] = r
		c.n.Add(1)
	}
}

func (c *collector) get(id string) []dispatch.PartResult {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.results[id]
}

func sendN(t *testing.T, c *Connection, col *collector, n, parts int) {
	t.Helper()
	for i := 0; i < n; i++ {
		m := sms(i, parts)
		if err := c.Send(context.Background(), m, col.done(m.RequestID)); err != nil {
			t.Fatal(err)
		}
	}
}

func TestSendFields(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{SystemID: "esme", Password: "pw"})
	defer srv.Close()
	r := start(t, testConfig(srv.Addr()), Handlers{})
	col := newCollector(t)
	valid := time.Date(2026, 3, 4, 5, 6, 7, 0, time.UTC)
	for _, tc := range []struct {
		from             string
		ton, npi         byte
		src              string
		dlr              bool
		validity         string
		payload, sar     bool
		wantTLV          uint16
		wantESM, wantReg byte
	}{
		{from: "Sendcore", ton: 5, npi: 0, src: "Sendcore"},
		{from: "12345", ton: 3, npi: 0, src: "12345", dlr: true, wantReg: 1},
		{from: "+358401110001", ton: 1, npi: 1, src: "358401110001", validity: "260304050607000+"},
		{from: "+4670", ton: 1, npi: 1, src: "4670", payload: true, wantTLV: wire.TagMessagePayload},
		{from: "x", ton: 5, src: "x", sar: true, wantTLV: wire.TagSarMsgRefNum},
	} {
		t.Run(tc.from, func(t *testing.T) {
			m := &dispatch.SMS{RequestID: tc.from, To: "+358409999999", From: tc.from, DLR: tc.dlr,
				Parts: []segment.Part{{ShortMessage: []byte("hi " + tc.from), Payload: tc.payload, SAR: tc.sar, Ref: 7, Seq: 1, Total: 1}}}
			if tc.validity != "" {
				m.ValidUntil = valid
			}
			before := len(srv.Submits())
			if err := r.c.Send(context.Background(), m, col.done(m.RequestID)); err != nil {
				t.Fatal(err)
			}
			waitFor(t, 5*time.Second, "result", func() bool { return col.get(tc.from) != nil })
			res := col.get(tc.from)
			if res[0].Outcome != dispatch.OutcomeOK || res[0].SMSCID == "" {
				t.Fatalf("result %+v", res[0])
			}
			subs := srv.Submits()[before:]
			if len(subs) != 1 {
				t.Fatalf("%d submits", len(subs))
			}
			s := subs[0]
			if s.SrcTON != tc.ton || s.SrcNPI != tc.npi || s.Src != tc.src || s.Dst != "358409999999" || s.DstTON != 1 || s.DstNPI != 1 {
				t.Fatalf("addresses %+v", s)
			}
			if s.RegisteredDelivery != tc.wantReg || s.Validity != tc.validity || s.MessageID != res[0].SMSCID {
				t.Fatalf("submit %+v result %+v", s, res[0])
			}
			if tc.wantTLV != 0 {
				if _, ok := s.TLVs[tc.wantTLV]; !ok {
					t.Fatalf("TLV %04x missing: %v", tc.wantTLV, s.TLVs)
				}
			}
			if tc.payload && (len(s.ShortMessage) != 0 || string(s.TLVs[wire.TagMessagePayload]) != "hi "+tc.from) {
				t.Fatalf("payload %+v", s)
			}
		})
	}
}

// TestMultipartOrderAndPermanentError: parts go in order; a permanent error ends the
// message with the remaining parts not sent.
func TestMultipartOrderAndPermanentError(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{ErrorEvery: 2, ErrorStatus: wire.StatusInvDst})
	defer srv.Close()
	cfg := testConfig(srv.Addr())
	cfg.SystemID, cfg.Password = "", ""
	r := start(t, cfg, Handlers{})
	col := newCollector(t)
	m := sms(1, 3)
	if err := r.c.Send(context.Background(), m, col.done(m.RequestID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "done", func() bool { return col.n.Load() == 1 })
	res := col.get(m.RequestID)
	want := []dispatch.Outcome{dispatch.OutcomeOK, dispatch.OutcomePermanent, dispatch.OutcomeNotSent}
	for i, w := range want {
		if res[i].Outcome != w {
			t.Fatalf("part %d: %v, want %v (%+v)", i+1, res[i].Outcome, w, res)
		}
	}
	if res[1].Status != wire.StatusInvDst || !errors.Is(res[1].Err, ErrStatus) {
		t.Fatalf("part 2 %+v", res[1])
	}
	subs := srv.Submits()
	if len(subs) != 2 || subs[0].UDH[5] != 1 || subs[1].UDH[5] != 2 || subs[0].ESMClass != 0x40 {
		t.Fatalf("submits %+v", subs)
	}
}

// TestTransientRetried: a transient status (ESME_RSYSERR on every 2nd submit) is retried
// and every message ends OK; one message at a time so that the retry always succeeds.
func TestTransientRetried(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{ErrorEvery: 2})
	defer srv.Close()
	r := start(t, testConfig(srv.Addr()), Handlers{})
	col := newCollector(t)
	for i := 0; i < 6; i++ {
		m := sms(i, 1)
		if err := r.c.Send(context.Background(), m, col.done(m.RequestID)); err != nil {
			t.Fatal(err)
		}
		waitFor(t, 5*time.Second, "done", func() bool { return col.n.Load() == int64(i+1) })
	}
	for id, res := range col.results {
		if res[0].Outcome != dispatch.OutcomeOK {
			t.Fatalf("%s: %+v", id, res)
		}
	}
	if st := r.c.Stats(); st.Retries == 0 || st.Errors == 0 {
		t.Fatalf("stats %+v", st)
	}
}

// TestBindAuthFailure: a refused bind leaves the connection not ready; nothing but binds
// were written.
func TestBindAuthFailure(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{SystemID: "esme", Password: "right"})
	defer srv.Close()
	c, err := NewConnection(testConfig(srv.Addr()), Handlers{}, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error)
	go func() { done <- c.Run(ctx) }()
	col := newCollector(t)
	m := sms(1, 1)
	if err := c.Send(ctx, m, col.done(m.RequestID)); err != nil {
		t.Fatal(err)
	}
	waitFor(t, 5*time.Second, "several binds", func() bool { return srv.Count(wire.BindTransceiver) >= 2 })
	if c.Ready() {
		t.Fatal("ready without bind")
	}
	cancel()
	<-done
	for _, p := range srv.PDUs() {
		if p.ID != wire.BindTransceiver {
			t.Fatalf("wrote %08x before a bind succeeded", p.ID)
		}
	}
	if res := col.get(m.RequestID); len(res) != 1 || res[0].Outcome != dispatch.OutcomeNotSent {
		t.Fatalf("queued message after shutdown: %+v", res)
	}
	if err := c.Send(context.Background(), m, col.done("x")); !errors.Is(err, ErrClosed) {
		t.Fatalf("Send after Run: %v", err)
	}
}

// TestReceiptsCollidingSequences: receipts arrive on the same transceiver with sequence
// numbers equal to in-flight submits' (go-smpp issue #87); every receipt reaches the
// handler, matches a submitted id, and every submit gets its response.
func TestReceiptsCollidingSequences(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{Receipts: true, CollideSeq: true, ReceiptIDFormat: "decimal", ReceiptTLVs: false})
	defer srv.Close()
	cfg := testConfig(srv.Addr())
	cfg.SystemID, cfg.Password = "", ""
	cfg.Window = 100
	cfg.IDFormat, cfg.RespIDFormat = "decimal", "hex"
	var mu sync.Mutex
	got := map[string]int{}
	r := start(t, cfg, Handlers{Receipt: func(rc dispatch.Receipt) error {
		mu.Lock()
		got[rc.SMSCID]++
		mu.Unlock()
		if rc.State != "DELIVRD" || rc.Connection != "test" {
			t.Errorf("receipt %+v", rc)
		}
		return nil
	}})
	col := newCollector(t)
	const n = 3000
	sendN(t, r.c, col, n, 1)
	waitFor(t, 20*time.Second, "results", func() bool { return col.n.Load() == n })
	waitFor(t, 20*time.Second, "receipts", func() bool { mu.Lock(); defer mu.Unlock(); return len(got) == n })
	collided := 0
	subSeq := map[uint32]bool{}
	for _, p := range srv.PDUs() {
		if p.ID == wire.SubmitSM {
			subSeq[p.Seq] = true
		}
		if p.ID == wire.DeliverSMResp && subSeq[p.Seq] {
			collided++
		}
	}
	if collided < n/2 {
		t.Fatalf("only %d receipts collided with submit sequence numbers", collided)
	}
	mu.Lock()
	defer mu.Unlock()
	for id, res := range col.results {
		if res[0].Outcome != dispatch.OutcomeOK || got[res[0].SMSCID] != 1 {
			t.Fatalf("%s: %+v, receipts for its id: %d", id, res[0], got[res[0].SMSCID])
		}
	}
	if srv.PendingReceipts() != 0 {
		t.Fatalf("%d receipts unacknowledged", srv.PendingReceipts())
	}
}

// TestReceiptHandlerErrorRedelivered: a receipt whose handler fails is answered with a
// non-zero status and arrives again; it is acknowledged once the handler succeeds. The
// receiver-pair mode carries it on the receiver session.
func TestReceiptHandlerErrorRedelivered(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{Receipts: true, ReceiptTLVs: true, ReceiptState: "UNDELIV"})
	defer srv.Close()
	cfg := testConfig(srv.Addr())
	cfg.SystemID, cfg.Password = "", ""
	cfg.Bind = "receiver-pair"
	var calls atomic.Int32
	var last atomic.Value
	r := start(t, cfg, Handlers{Receipt: func(rc dispatch.Receipt) error {
		if calls.Add(1) < 3 {
			return errors.New("store down")
		}
		last.Store(rc)
		return nil
	}})
	col := newCollector(t)
	sendN(t, r.c, col, 1, 1)
	waitFor(t, 5*time.Second, "receipt stored", func() bool { return last.Load() != nil })
	waitFor(t, 5*time.Second, "acknowledged", func() bool { return srv.PendingReceipts() == 0 })
	rc := last.Load().(dispatch.Receipt)
	if rc.SMSCID != col.get("r0")[0].SMSCID || rc.State != "UNDELIV" {
		t.Fatalf("receipt %+v, submit %+v", rc, col.get("r0"))
	}
	nacks := 0
	for _, p := range srv.PDUs() {
		if p.ID == wire.DeliverSMResp && p.Status == wire.StatusRxTAppN {
			nacks++
		}
	}
	if nacks != 2 {
		t.Fatalf("%d negative acks, want 2", nacks)
	}
}

func TestMO(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{})
	defer srv.Close()
	cfg := testConfig(srv.Addr())
	cfg.SystemID, cfg.Password = "", ""
	mos := make(chan dispatch.MO, 2)
	start(t, cfg, Handlers{MO: func(m dispatch.MO) error { mos <- m; return nil }})
	for _, text := range []string{"STOP", "Hyvää päivää €"} {
		if err := srv.SendMO("+358401234567", "12345", text); err != nil {
			t.Fatal(err)
		}
		select {
		case m := <-mos:
			if m.From != "+358401234567" || m.To != "12345" || m.Text != text || m.Connection != "test" {
				t.Fatalf("MO %+v", m)
			}
		case <-time.After(5 * time.Second):
			t.Fatal("no MO")
		}
	}
}

// TestPeerPDUsKeepBind: data_sm, alert_notification and an unknown command are answered
// (or ignored) without dropping the bind; enquire_link is answered; an unbind from the SMSC
// is answered with unbind_resp and the session reconnects.
func TestPeerPDUsKeepBind(t *testing.T) {
	srv := smsctest.NewServer(smsctest.Options{})
	defer srv.Close()
	cfg := testConfig(srv.Addr())
	cfg.SystemID, cfg.Password = "", ""
	mos := make(chan dispatch.MO, 1)
	r := start(t, cfg, Handlers{MO: func(m dispatch.MO) error {
		select {
		case mos <- m: // the first MO: the data_sm case checks it
		default:
		}
		return nil
	}})
	dataSM := []byte{0, 1, 1}
	dataSM = append(dataSM, "358401234567\x00"...)
	dataSM = append(dataSM, 0, 0, '1', '2', 0, 0, 0, 0)
	dataSM = wire.AppendTLV(dataSM, wire.TagMessagePayload, []byte("via data-sm"))
	for _, tc := range []struct {
		name string
		id   uint32
		body []byte
		resp uint32
		st   uint32
	}{
		{"enquire_link", wire.EnquireLink, nil, wire.EnquireLinkResp, 0},
		{"data_sm", wire.DataSM, dataSM, wire.DataSMResp, 0},
		{"alert_notification", wire.AlertNotification, []byte{1, 1, '1', 0, 1, 1, '2', 0}, 0, 0},
		{"unknown command", 0x00000999, []byte{1, 2, 3}, wire.GenericNack, wire.StatusInvCmdID},
		{"query_sm (unsupported)", 0x00000003, []byte("1\x00\x00\x00\x00"), wire.GenericNack, wire.StatusInvCmdID},
		// Hostile deliver_sm bodies are answered, never crash the gateway or drop the bind.
		// (go-smpp's codec reads short bodies leniently: any status is fine, an answer is not optional).
		{"deliver_sm truncated", wire.DeliverSM, []byte{0, 1}, wire.DeliverSMResp, anyStatus},
		{"deliver_sm garbage", wire.DeliverSM, bytes.Repeat([]byte{0xff}, 300), wire.DeliverSMResp, anyStatus},
		{"deliver_sm receipt with hostile text", wire.DeliverSM, hostileReceipt(), wire.DeliverSMResp, 0},
	} {
		t.Run(tc.name, func(t *testing.T) {
			seq, err := srv.Inject(tc.id, tc.body)
			if err != nil {
				t.Fatal(err)
			}
			if tc.resp != 0 {
				waitFor(t, 5*time.Second, "response", func() bool {
					for _, p := range srv.PDUs() {
						if p.Seq == seq && p.ID == tc.resp && (p.Status == tc.st || tc.st == anyStatus) {
							return true
						}
					}
					return false
				})
			}
			// the bind still works
			col := newCollector(t)
			sendN(t, r.c, col, 1, 1)
			waitFor(t, 5*time.Second, "submit", func() bool { return col.n.Load() == 1 })
			if col.get("r0")[0].Outcome != dispatch.OutcomeOK || srv.Count(wire.BindTransceiver) != 1 {
				t.Fatalf("after %s: %+v, binds %d", tc.name, col.get("r0"), srv.Count(wire.BindTransceiver))
			}
		})
	}
	select {
	case m := <-mos:
		if m.Text != "via data-sm" || m.From != "+358401234567" {
			t.Fatalf("data_sm MO %+v", m)
		}
	default:
		t.Fatal("data_sm not handed to MO")
	}
	t.Run("unbind from SMSC", func(t *testing.T) {
		srv.Unbind()
		waitFor(t, 5*time.Second, "unbind_resp", func() bool { return srv.Count(wire.UnbindResp) == 1 })
		waitFor(t, 5*time.Second, "rebind", func() bool { return srv.Count(wire.BindTransceiver) == 2 && r.c.Ready() })
	})
}

// TestSequenceWrap: sequence numbers wrap from 0x7FFFFFFF to 1, never 0 or above.
func TestSequenceWrap(t *testing.T) {
	c, _ := NewConnection(testConfig("127.0.0.1:1"), Handlers{}, nil, nil)
	s := newSession(c, 0, wire.BindTransceiver)
	s.seq.Store(maxSeq - 1)
	for _, want := range []uint32{maxSeq, 1, 2} {
		if got := s.nextSeq(); got != want {
			t.Fatalf("got %d want %d", got, want)
		}
	}
}

const anyStatus = 0xFFFFFFFF

// hostileReceipt is a receipt deliver_sm (esm_class 0x04) whose text once made the
// receipt parser slice out of range (FuzzParseReceiptText's finding).
func hostileReceipt() []byte {
	b := []byte{0, 1, 1}
	b = append(b, "358401234567\x00"...)
	b = append(b, 1, 1)
	b = append(b, "12\x00"...)
	b = append(b, 0x04, 0, 0, 0, 0, 0, 0, 0, 0)
	text := []byte("\xff done dAte:")
	b = append(b, byte(len(text)))
	return append(b, text...)
}
