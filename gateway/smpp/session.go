package smpp

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/fiorix/go-smpp/smpp/pdu"
	"github.com/fiorix/go-smpp/smpp/pdu/pdufield"

	"github.com/sendcore/sendcore/gateway/smpp/internal/wire"
)

// Session goroutines (per bound session): reader (decodes, matches responses by sequence
// number in the in-flight table, never blocks on handlers), writer (the only writer of the
// socket, flushes when its queue is momentarily empty), pump (transmitter/transceiver:
// takes a window slot, a message and a rate token, registers the submit in flight, then
// queues its bytes), handlers (receiver/transceiver: handlerShards goroutines hand
// deliver_sm/data_sm to Handlers, then queue the response; a receipt goes to the shard of
// its SMSC message id and an MO to the shard of its sender, so that the deliveries of one
// message or one handset are handled in order while different ones are handled
// concurrently: a handler that writes to storage would otherwise cap receipts at one
// write at a time), ticker (response timeouts, enquire_link, dead peer).
//
// Lock order: Connection.qmu, Connection.thrMu and session.mu are never held together
// with another lock; callbacks into Connection are made without session.mu held.

const (
	stateConnecting int32 = iota
	stateBound
	stateUnbinding
)

const maxSeq = 0x7FFFFFFF

// handlerShards is the number of handler goroutines per receiving session, and
// inboxPerShard the deliveries each holds before the session answers ESME_RX_T_APPN.
const (
	handlerShards = 16
	inboxPerShard = 256
)

type flight struct {
	msg      *message
	deadline int64 // unix nanoseconds
}

type session struct {
	c    *Connection
	name string
	kind uint32
	nc   net.Conn

	state       atomic.Int32
	seq         atomic.Uint32
	lastRead    atomic.Int64
	lastEL      atomic.Int64 // last enquire_link sent
	lastBusyLog int64        // unix ns of the last "handler queue full" warning (read loop only)

	window chan struct{}
	out    chan []byte // nil entry: flush, then close the session (after unbind_resp)
	free   chan []byte
	inbox  []chan inbound // one per handler shard

	dead     chan struct{}
	deadOnce sync.Once
	err      error
	quit     chan struct{} // closed on stopping or dead: the pump's stop
	quitOnce sync.Once
	unbound  chan struct{}
	ubOnce   sync.Once

	mu       sync.Mutex
	inflight map[uint32]flight
	closed   bool // no more registrations
}

func newSession(c *Connection, i int, kind uint32) *session {
	k := "trx"
	switch kind {
	case wire.BindTransmitter:
		k = "tx"
	case wire.BindReceiver:
		k = "rx"
	}
	s := &session{
		c: c, name: c.cfg.Name + "/" + strconv.Itoa(i) + "/" + k, kind: kind,
		window: make(chan struct{}, c.cfg.Window),
		out:    make(chan []byte, c.cfg.Window+64),
		free:   make(chan []byte, c.cfg.Window+64),
		inbox:  make([]chan inbound, handlerShards),
		dead:   make(chan struct{}), quit: make(chan struct{}), unbound: make(chan struct{}),
		inflight: make(map[uint32]flight, c.cfg.Window),
	}
	for i := range s.inbox {
		s.inbox[i] = make(chan inbound, inboxPerShard)
	}
	return s
}

func (s *session) canSubmit() bool  { return s.kind != wire.BindReceiver }
func (s *session) canReceive() bool { return s.kind != wire.BindTransmitter }

// nextSeq returns the next sequence number, wrapping within 1..0x7FFFFFFF.
func (s *session) nextSeq() uint32 {
	for {
		old := s.seq.Load()
		n := old + 1
		if n > maxSeq {
			n = 1
		}
		if s.seq.CompareAndSwap(old, n) {
			return n
		}
	}
}

func (s *session) fail(err error) {
	s.deadOnce.Do(func() {
		s.err = err
		close(s.dead)
		if s.nc != nil {
			s.nc.Close()
		}
		s.stopPump()
	})
}

func (s *session) stopPump() { s.quitOnce.Do(func() { close(s.quit) }) }

func (s *session) getBuf() []byte {
	select {
	case b := <-s.free:
		return b[:0]
	default:
		return make([]byte, 0, 256)
	}
}

func (s *session) putBuf(b []byte) {
	if cap(b) > 8<<10 {
		return
	}
	select {
	case s.free <- b:
	default:
	}
}

// send queues b for the writer; false when the session is dead.
func (s *session) send(b []byte) bool {
	select {
	case s.out <- b:
		return true
	case <-s.dead:
		return false
	}
}

// run dials, binds and serves the session until it fails or ctx is done (then it drains
// in-flight submits and unbinds). It reports whether the bind succeeded. Submits still in
// flight when it ends are handed back to the connection as unknown outcomes.
func (s *session) run(ctx context.Context) (bound bool, err error) {
	c := s.c
	c.smu.Lock()
	c.sessions[s] = struct{}{}
	c.smu.Unlock()
	defer func() {
		c.smu.Lock()
		delete(c.sessions, s)
		c.smu.Unlock()
	}()
	if err := s.dialAndBind(ctx); err != nil {
		if s.nc != nil {
			s.nc.Close()
		}
		return false, err
	}
	s.state.Store(stateBound)
	s.lastRead.Store(time.Now().UnixNano())
	c.bound.Add(1)
	c.m.bindsUp.Inc()
	if s.canSubmit() {
		c.txBound.Add(1)
	}
	c.log.Info("smpp session bound", "session", s.name, "addr", c.cfg.Addr)

	var wg, pumpWG sync.WaitGroup
	start := func(g *sync.WaitGroup, f func()) {
		g.Add(1)
		go func() {
			defer g.Done()
			f()
		}()
	}
	start(&wg, s.reader)
	start(&wg, s.writer)
	start(&wg, s.ticker)
	if s.canReceive() {
		for i := range s.inbox {
			start(&wg, func() { s.handler(s.inbox[i]) })
		}
	}
	if s.canSubmit() {
		start(&pumpWG, s.pump)
	}

	select {
	case <-s.dead:
	case <-ctx.Done():
		s.shutdown(&pumpWG)
	}
	s.fail(nil)
	pumpWG.Wait()
	wg.Wait()
	if s.canSubmit() {
		c.txBound.Add(-1)
	}
	c.bound.Add(-1)
	c.m.bindsUp.Dec()

	s.mu.Lock()
	s.closed = true
	lost := make([]*message, 0, len(s.inflight))
	for seq, f := range s.inflight {
		lost = append(lost, f.msg)
		delete(s.inflight, seq)
	}
	s.mu.Unlock()
	now := time.Now()
	for _, m := range lost {
		c.m.inflight.Dec()
		c.onResp(m, 0, "", ErrSessionLost, now)
	}
	return true, s.err
}

// shutdown stops taking messages, waits for in-flight submits (bounded by the grace
// period), then unbinds (bounded by the response timeout).
func (s *session) shutdown(pumpWG *sync.WaitGroup) {
	s.state.Store(stateUnbinding)
	s.stopPump()
	pumpWG.Wait()
	deadline := time.Now().Add(s.c.cfg.ShutdownGrace)
	t := time.NewTicker(5 * time.Millisecond)
	defer t.Stop()
	for time.Now().Before(deadline) {
		s.mu.Lock()
		n := len(s.inflight)
		s.mu.Unlock()
		if n == 0 {
			break
		}
		select {
		case <-s.dead:
			return
		case <-t.C:
		}
	}
	if !s.send(wire.AppendSimple(s.getBuf(), wire.Unbind, 0, s.nextSeq())) {
		return
	}
	ut := time.NewTimer(min(s.c.cfg.RespTimeout, 2*time.Second))
	defer ut.Stop()
	select {
	case <-s.unbound:
	case <-s.dead:
	case <-ut.C:
	}
}

func (s *session) dialAndBind(ctx context.Context) error {
	cfg := &s.c.cfg
	dctx, cancel := context.WithTimeout(ctx, cfg.BindTimeout)
	defer cancel()
	var d net.Dialer
	nc, err := d.DialContext(dctx, "tcp", cfg.Addr)
	if err != nil {
		return fmt.Errorf("smpp: dial %s: %w", cfg.Addr, err)
	}
	if cfg.TLS {
		host, _, _ := net.SplitHostPort(cfg.Addr)
		tc := tls.Client(nc, &tls.Config{ServerName: host, MinVersion: tls.VersionTLS12})
		if err := tc.HandshakeContext(dctx); err != nil {
			nc.Close()
			return fmt.Errorf("smpp: tls %s: %w", cfg.Addr, err)
		}
		nc = tc
	}
	s.nc = nc
	// The bind is the first and, until bind_resp OK, the only PDU we write.
	var p pdu.Body
	switch s.kind {
	case wire.BindTransmitter:
		p = pdu.NewBindTransmitter()
	case wire.BindReceiver:
		p = pdu.NewBindReceiver()
	default:
		p = pdu.NewBindTransceiver()
	}
	seq := s.nextSeq()
	p.Header().Seq = seq
	f := p.Fields()
	_ = f.Set(pdufield.SystemID, cfg.SystemID)
	_ = f.Set(pdufield.Password, cfg.Password)
	_ = f.Set(pdufield.SystemType, cfg.SystemType)
	_ = f.Set(pdufield.InterfaceVersion, uint8(0x34))
	var b bytes.Buffer
	if err := p.SerializeTo(&b); err != nil {
		return fmt.Errorf("smpp: encode bind: %w", err)
	}
	dl, _ := dctx.Deadline()
	_ = nc.SetDeadline(dl)
	if _, err := nc.Write(b.Bytes()); err != nil {
		return fmt.Errorf("smpp: write bind: %w", err)
	}
	br := bufio.NewReader(nc)
	var buf []byte
	for {
		h, body, nb, err := wire.ReadPDU(br, buf, wire.MaxPDU)
		buf = nb
		if err != nil {
			return fmt.Errorf("%w: reading bind_resp: %w", ErrBind, err)
		}
		// only one bind is outstanding: some SMSCs (go-smpp's smpptest) answer it with
		// their own sequence number, so the command id alone identifies the answer
		if h.ID == wire.GenericNack || h.ID == s.kind|0x80000000 {
			if h.Status != 0 || h.ID == wire.GenericNack {
				return fmt.Errorf("%w: %s status 0x%08X", ErrBind, cfg.Addr, h.Status)
			}
			_ = body
			break
		}
		// anything else before bind_resp is ignored: we may not answer before binding
	}
	_ = nc.SetDeadline(time.Time{})
	if br.Buffered() > 0 {
		// PDUs pipelined right after bind_resp: keep them for the reader.
		s.nc = &bufferedConn{Conn: nc, r: br}
	}
	return nil
}

type bufferedConn struct {
	net.Conn
	r *bufio.Reader
}

func (b *bufferedConn) Read(p []byte) (int, error) { return b.r.Read(p) }

func (s *session) writer() {
	bw := bufio.NewWriterSize(s.nc, 32<<10)
	for {
		var b []byte
		select {
		case b = <-s.out:
		case <-s.dead:
			return
		}
		yielded := false
		for {
			if b == nil { // after unbind_resp: flush and close
				_ = bw.Flush()
				s.fail(ErrUnbound)
				return
			}
			if _, err := bw.Write(b); err != nil {
				s.fail(err)
				return
			}
			s.putBuf(b)
			select {
			case b = <-s.out:
				continue
			default:
			}
			if !yielded && len(s.window) < cap(s.window) {
				// The window has room, so the pump may have more to queue: let it run
				// before paying a write syscall. Under load this turns one flush per
				// PDU into one per burst; with the window full (or window 1) nothing
				// more can come until a response, so flush at once.
				yielded = true
				runtime.Gosched()
				select {
				case b = <-s.out:
					continue
				default:
				}
			}
			break
		}
		if err := bw.Flush(); err != nil {
			s.fail(err)
			return
		}
	}
}

func (s *session) pump() {
	c := s.c
	qctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	go func() { // cancels a rate wait when the pump must stop
		select {
		case <-s.quit:
			cancel()
		case <-qctx.Done():
		}
	}()
	rt := c.cfg.RespTimeout.Nanoseconds()
	for {
		select {
		case s.window <- struct{}{}:
		case <-s.quit:
			return
		}
		msg := c.take(s.quit)
		if msg == nil {
			<-s.window
			return
		}
		if err := c.limiter.Wait(qctx); err != nil {
			c.requeue(msg, 0)
			<-s.window
			return
		}
		seq := s.nextSeq()
		b := wire.AppendSubmitSM(s.getBuf(), seq, msg.part())
		now := time.Now()
		msg.start = now
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			c.requeue(msg, 0)
			<-s.window
			return
		}
		s.inflight[seq] = flight{msg: msg, deadline: now.UnixNano() + rt}
		s.mu.Unlock()
		c.m.inflight.Inc()
		if !s.send(b) {
			return // the in-flight entry is handed back when the session ends
		}
	}
}

// resolve completes the in-flight submit seq; a response for a sequence not in flight
// (timed out already) is ignored.
func (s *session) resolve(seq, status uint32, id string) {
	s.mu.Lock()
	f, ok := s.inflight[seq]
	if ok {
		delete(s.inflight, seq)
	}
	s.mu.Unlock()
	if !ok {
		s.c.log.Debug("smpp response for no submit in flight", "session", s.name, "seq", seq, "status", status)
		return
	}
	s.c.m.inflight.Dec()
	<-s.window
	s.c.onResp(f.msg, status, id, nil, time.Now())
}

func (s *session) reader() {
	c := s.c
	br := bufio.NewReaderSize(s.nc, 64<<10)
	var buf []byte
	for {
		h, body, nb, err := wire.ReadPDU(br, buf, wire.MaxPDU)
		buf = nb
		if err != nil {
			s.fail(err)
			return
		}
		s.lastRead.Store(time.Now().UnixNano())
		switch h.ID {
		case wire.SubmitSMResp:
			var id string
			if h.Status == 0 {
				idb, _ := wire.CString(body)
				id = string(idb)
			}
			s.resolve(h.Seq, h.Status, id)
		case wire.GenericNack:
			st := h.Status
			if st == 0 {
				st = wire.StatusSysErr
			}
			s.resolve(h.Seq, st, "")
		case wire.DeliverSM, wire.DataSM:
			s.inbound(h, body)
		case wire.EnquireLink:
			s.send(wire.AppendSimple(s.getBuf(), wire.EnquireLinkResp, 0, h.Seq))
		case wire.Unbind:
			s.state.Store(stateUnbinding)
			s.stopPump()
			s.send(wire.AppendSimple(s.getBuf(), wire.UnbindResp, 0, h.Seq))
			s.send(nil)
		case wire.UnbindResp:
			s.ubOnce.Do(func() { close(s.unbound) })
		case wire.AlertNotification, wire.EnquireLinkResp, wire.Outbind:
			// nothing to answer; the read itself proved the peer alive
		default:
			if !wire.IsResponse(h.ID) {
				s.send(wire.AppendSimple(s.getBuf(), wire.GenericNack, wire.StatusInvCmdID, h.Seq))
			} else {
				c.log.Debug("smpp unexpected response", "session", s.name, "command", fmt.Sprintf("0x%08X", h.ID))
			}
		}
	}
}

// inbound decodes a deliver_sm/data_sm and queues it for the handler goroutine; when that
// queue is full it is answered at once with ESME_RX_T_APPN so that the SMSC retries later.
func (s *session) inbound(h wire.Header, body []byte) {
	c := s.c
	resp := h.ID | 0x80000000
	if !s.canReceive() {
		s.send(wire.AppendIDResp(s.getBuf(), resp, wire.StatusInvBnd, h.Seq, nil))
		return
	}
	in, err := safeDecodeInbound(h.ID, body, c.cfg.IDFormat, c.respFormat)
	if err != nil {
		c.m.refused[refusedUndecodable].Inc()
		c.log.Error("smpp undecodable deliver_sm", "session", s.name, "err", err)
		s.send(wire.AppendIDResp(s.getBuf(), resp, wire.StatusSysErr, h.Seq, nil))
		return
	}
	in.seq = h.Seq
	key := in.r.SMSCID
	if !in.receipt {
		key = in.mo.From
	}
	select {
	case s.inbox[shardOf(key)] <- in:
	default:
		// The handlers are behind (the store is slow, or the SMSC sends faster than
		// receipts can be made durable): refused for now, redelivered by the SMSC.
		c.m.refused[refusedBusy].Inc()
		if now := time.Now().UnixNano(); now-s.lastBusyLog >= int64(time.Second) {
			s.lastBusyLog = now
			c.log.Warn("smpp delivery refused: handler queue full; SMSC will redeliver", "session", s.name)
		}
		s.send(wire.AppendIDResp(s.getBuf(), resp, wire.StatusRxTAppN, h.Seq, nil))
	}
}

// safeDecodeInbound decodes an SMSC's deliver_sm/data_sm on the read loop. The SMSC is a
// peer we do not control and the decoding runs through go-smpp's codec as well as our
// own parsers: a panic on a hostile PDU becomes an error (answered ESME_RSYSERR, logged)
// instead of taking the whole gateway down.
func safeDecodeInbound(id uint32, body []byte, idFormat, respFormat string) (in inbound, err error) {
	defer func() {
		if r := recover(); r != nil {
			err = fmt.Errorf("smpp: decoding panicked on a %d-byte body: %v", len(body), r)
		}
	}()
	return decodeInbound(id, body, idFormat, respFormat, time.Now())
}

// shardOf maps a key onto a handler shard (FNV-1a).
func shardOf(key string) int {
	h := uint32(2166136261)
	for i := 0; i < len(key); i++ {
		h ^= uint32(key[i])
		h *= 16777619
	}
	return int(h % handlerShards)
}

func (s *session) handler(inbox <-chan inbound) {
	c := s.c
	for {
		var in inbound
		select {
		case in = <-inbox:
		case <-s.dead:
			return // unanswered deliveries are redelivered by the SMSC
		}
		var err error
		if in.receipt {
			in.r.Connection = c.cfg.Name
			if c.h.Receipt != nil {
				err = c.h.Receipt(in.r)
			}
			if err == nil {
				c.m.receipts.WithLabelValues(stateLabel(in.r.State)).Inc()
			}
		} else {
			in.mo.Connection = c.cfg.Name
			if c.h.MO != nil {
				err = c.h.MO(in.mo)
			}
			if err == nil {
				c.m.mo.Inc()
			}
		}
		status := uint32(0)
		if err != nil {
			status = wire.StatusRxTAppN
			c.m.refused[refusedHandler].Inc()
			c.log.Warn("smpp delivery not accepted by handler; SMSC will redeliver", "session", s.name, "err", err)
		}
		if !s.send(wire.AppendIDResp(s.getBuf(), in.cmd|0x80000000, status, in.seq, nil)) {
			return
		}
	}
}

func stateLabel(st string) string {
	switch st {
	case "DELIVRD", "UNDELIV", "EXPIRED", "DELETED", "REJECTD", "UNKNOWN", "ACCEPTD", "ENROUTE":
		return st
	}
	return "other"
}

func (s *session) ticker() {
	c := s.c
	iv := min(c.cfg.RespTimeout/4, c.cfg.EnquireLink/4, 250*time.Millisecond)
	iv = max(iv, 5*time.Millisecond)
	t := time.NewTicker(iv)
	defer t.Stop()
	var expired []*message
	el, rt := c.cfg.EnquireLink.Nanoseconds(), c.cfg.RespTimeout.Nanoseconds()
	for {
		var now time.Time
		select {
		case <-s.dead:
			return
		case now = <-t.C:
		}
		n := now.UnixNano()
		expired = expired[:0]
		s.mu.Lock()
		for seq, f := range s.inflight {
			if f.deadline < n {
				expired = append(expired, f.msg)
				delete(s.inflight, seq)
			}
		}
		s.mu.Unlock()
		for _, m := range expired {
			c.m.inflight.Dec()
			<-s.window
			c.onResp(m, 0, "", ErrTimeout, now)
		}
		idle := n - s.lastRead.Load()
		if idle > el+rt {
			c.log.Warn("smpp peer silent, dropping session", "session", s.name, "idle", time.Duration(idle))
			s.fail(ErrDeadPeer)
			return
		}
		if idle > el && n-s.lastEL.Load() > el {
			s.lastEL.Store(n)
			select {
			case s.out <- wire.AppendSimple(s.getBuf(), wire.EnquireLink, 0, s.nextSeq()):
			default:
			}
		}
	}
}

func (s *session) stats() SessionStats {
	st := SessionStats{Name: s.name, Kind: map[uint32]string{wire.BindTransmitter: "transmitter", wire.BindReceiver: "receiver", wire.BindTransceiver: "transceiver"}[s.kind]}
	switch s.state.Load() {
	case stateConnecting:
		st.State = "connecting"
	case stateBound:
		st.State = "bound"
	default:
		st.State = "unbinding"
	}
	s.mu.Lock()
	st.InFlight = len(s.inflight)
	s.mu.Unlock()
	return st
}
