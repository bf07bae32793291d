package smsctest

import (
	"bufio"
	"errors"
	"fmt"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"golang.org/x/time/rate"

	"github.com/sendcore/sendcore/gateway/smpp/internal/wire"
)

// ErrNoSession is returned by injections when no suitable session is bound.
var ErrNoSession = errors.New("smsctest: no bound session")

// Options configure a Server. The zero value is an SMSC that accepts any bind and answers
// every submit_sm at once with a hex message id and no receipt.
type Options struct {
	// SystemID and Password, when not empty, are required of every bind.
	SystemID, Password string
	// IDFormat is how message ids are written in submit_sm_resp: "hex" (default) or "decimal".
	IDFormat string
	// ReceiptIDFormat is how they are written in receipt text; default IDFormat.
	ReceiptIDFormat string
	// ResponseDelay delays every submit_sm_resp (slow responses); order is kept.
	ResponseDelay time.Duration
	// Receipts sends a delivery receipt for every accepted submit_sm that asked for one
	// (registered_delivery bit 0), ReceiptDelay after the submit.
	Receipts     bool
	ReceiptDelay time.Duration
	// ReceiptState is the stat: of receipts; default DELIVRD.
	ReceiptState string
	// ReceiptTLVs adds receipted_message_id and message_state TLVs to receipts.
	ReceiptTLVs bool
	// CollideSeq sends due receipts on a transceiver with the sequence number of the
	// submit_sm being answered, before its submit_sm_resp: the client sees a deliver_sm
	// whose sequence equals an in-flight submit's.
	CollideSeq bool
	// RedeliverDelay is the wait before a deliver_sm answered with a non-zero status is sent
	// again; default 20ms.
	RedeliverDelay time.Duration
	// ThrottleAbove answers ESME_RTHROTTLED (0x58) to submits beyond this rate (per second,
	// whole server, token bucket with 20 ms of burst); 0 = no throttling.
	ThrottleAbove float64
	// ErrorEvery answers ErrorStatus (default ESME_RSYSERR 0x08) to every Nth submit.
	ErrorEvery  int
	ErrorStatus uint32
	// DisconnectAfter closes a connection, unanswered, on its Nth submit_sm (per connection).
	DisconnectAfter int
	// DropEvery never answers every Nth submit (silent drop).
	DropEvery int
	// IgnoreEnquireLink leaves enquire_link unanswered (a dead peer).
	IgnoreEnquireLink bool
	// DisableRecording keeps no PDU or submit records (benchmarks); counters still work.
	DisableRecording bool
}

// PDU is one PDU the server received.
type PDU struct {
	SystemID string
	ID       uint32
	Status   uint32
	Seq      uint32
	Body     []byte
}

// Submit is one submit_sm the server received, decoded.
type Submit struct {
	SystemID           string
	Seq                uint32
	SrcTON, SrcNPI     byte
	Src                string
	DstTON, DstNPI     byte
	Dst                string
	ESMClass           byte
	DataCoding         byte
	RegisteredDelivery byte
	Validity           string
	ShortMessage       []byte // with the UDH when esm_class has UDHI
	UDH                []byte // the UDH (length octet included), when UDHI
	TLVs               map[uint16][]byte
	MessageID          string // "" when not accepted
	Status             uint32 // the status answered (0 also for dropped ones)
}

type receipt struct {
	due    time.Time
	origin *conn
	sysID  string
	sm     wire.Submit
	msgID  string
}

// Server is a running SMSC. Its methods are safe for concurrent use.
type Server struct {
	opts Options
	ln   net.Listener
	wg   sync.WaitGroup

	nextID  atomic.Uint64
	nextSeq atomic.Uint32
	nSubmit atomic.Int64
	limiter *rate.Limiter

	mu       sync.Mutex
	conns    map[*conn]struct{}
	closed   bool
	pdus     []PDU
	submits  []Submit
	bySrc    map[string]*int
	byDst    map[string]*int
	receipts []receipt // in due order
	wake     chan struct{}
	stop     chan struct{}
}

type conn struct {
	srv   *Server
	nc    net.Conn
	kind  uint32 // bind command id; 0 before bind
	sysID string
	nsub  int

	wmu     sync.Mutex
	bw      *bufio.Writer
	scratch []byte
	dead    bool
	pending map[uint32]receipt // deliver_sm sent, awaiting deliver_sm_resp
	delayed chan delayedResp
}

type delayedResp struct {
	due    time.Time
	status uint32
	seq    uint32
	id     [24]byte
	n      uint8
}

// NewServer starts an SMSC on 127.0.0.1:0. It panics if it cannot listen, like httptest.
func NewServer(opts Options) *Server {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		panic(fmt.Sprintf("smsctest: listen: %v", err))
	}
	if opts.ErrorStatus == 0 {
		opts.ErrorStatus = wire.StatusSysErr
	}
	if opts.ReceiptState == "" {
		opts.ReceiptState = "DELIVRD"
	}
	if opts.IDFormat == "" {
		opts.IDFormat = "hex"
	}
	if opts.ReceiptIDFormat == "" {
		opts.ReceiptIDFormat = opts.IDFormat
	}
	if opts.RedeliverDelay <= 0 {
		opts.RedeliverDelay = 20 * time.Millisecond
	}
	s := &Server{
		opts: opts, ln: ln, conns: map[*conn]struct{}{},
		bySrc: map[string]*int{}, byDst: map[string]*int{},
		wake: make(chan struct{}, 1), stop: make(chan struct{}),
	}
	s.nextSeq.Store(1 << 30) // server-originated sequence numbers stay apart from a client's
	if opts.ThrottleAbove > 0 {
		s.limiter = rate.NewLimiter(rate.Limit(opts.ThrottleAbove), max(1, int(opts.ThrottleAbove/50)))
	}
	s.wg.Add(2)
	go s.accept()
	go s.deliverLoop()
	return s
}

// Addr is the host:port the server listens on.
func (s *Server) Addr() string { return s.ln.Addr().String() }

// Close stops listening, closes every connection and waits for the server's goroutines.
func (s *Server) Close() {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return
	}
	s.closed = true
	close(s.stop)
	for c := range s.conns {
		c.nc.Close()
	}
	s.mu.Unlock()
	s.ln.Close()
	s.wg.Wait()
}

// DropConnections closes every client connection (a network failure); the server keeps
// listening.
func (s *Server) DropConnections() {
	s.mu.Lock()
	defer s.mu.Unlock()
	for c := range s.conns {
		c.nc.Close()
	}
}

func (s *Server) accept() {
	defer s.wg.Done()
	for {
		nc, err := s.ln.Accept()
		if err != nil {
			return
		}
		c := &conn{srv: s, nc: nc, bw: bufio.NewWriterSize(nc, 64<<10), pending: map[uint32]receipt{}}
		s.mu.Lock()
		if s.closed {
			s.mu.Unlock()
			nc.Close()
			return
		}
		s.conns[c] = struct{}{}
		s.mu.Unlock()
		s.wg.Add(1)
		go c.serve()
	}
}

// PDUs returns a copy of every PDU received so far, in arrival order per connection.
func (s *Server) PDUs() []PDU {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]PDU(nil), s.pdus...)
}

// Count returns how many PDUs with command id id were received.
func (s *Server) Count(id uint32) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for _, p := range s.pdus {
		if p.ID == id {
			n++
		}
	}
	return n
}

// Submits returns a copy of the decoded submit_sm received so far.
func (s *Server) Submits() []Submit {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Submit(nil), s.submits...)
}

// SubmitCount is the number of submit_sm received (answered or not).
func (s *Server) SubmitCount() int { return int(s.nSubmit.Load()) }

// CountBySource returns the number of submit_sm received from source_addr src.
func (s *Server) CountBySource(src string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.bySrc[src]; p != nil {
		return *p
	}
	return 0
}

// CountByDest returns the number of submit_sm received for destination_addr dst.
func (s *Server) CountByDest(dst string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.byDst[dst]; p != nil {
		return *p
	}
	return 0
}

// Bound returns the number of bound sessions.
func (s *Server) Bound() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := 0
	for c := range s.conns {
		if c.kind != 0 {
			n++
		}
	}
	return n
}

// PendingReceipts is the number of receipts not yet acknowledged with status 0.
func (s *Server) PendingReceipts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	n := len(s.receipts)
	for c := range s.conns {
		c.wmu.Lock()
		n += len(c.pending)
		c.wmu.Unlock()
	}
	return n
}

// receiving picks a bound session that may receive deliver_sm for sysID ("" any).
// Called with s.mu held.
func (s *Server) receivingLocked(sysID string) *conn {
	for c := range s.conns {
		if (c.kind == wire.BindReceiver || c.kind == wire.BindTransceiver) && (sysID == "" || c.sysID == sysID) {
			return c
		}
	}
	return nil
}

// SendMO delivers a mobile-originated message (deliver_sm, esm_class 0) from the handset
// from (E.164 with "+" gives TON 1) to to, on a receiver or transceiver session. Text is
// sent as GSM-7 unpacked when ASCII, else UCS-2.
func (s *Server) SendMO(from, to, text string) error {
	sm := wire.Submit{DataCoding: 0}
	sm.SrcTON, sm.SrcNPI, sm.Src = addrTON(from)
	sm.DstTON, sm.DstNPI, sm.Dst = addrTON(to)
	ascii := true
	for _, r := range text {
		if r > 0x7e || (r < 0x20 && r != '\n' && r != '\r') || r == '@' || r == '$' || r == '_' || r == '`' || r == '[' || r == ']' || r == '{' || r == '}' || r == '\\' || r == '^' || r == '~' || r == '|' {
			ascii = false
		}
	}
	if ascii {
		sm.ShortMessage = []byte(text)
	} else {
		sm.DataCoding = 0x08
		for _, u := range utf16.Encode([]rune(text)) {
			sm.ShortMessage = append(sm.ShortMessage, byte(u>>8), byte(u))
		}
	}
	s.mu.Lock()
	c := s.receivingLocked("")
	s.mu.Unlock()
	if c == nil {
		return ErrNoSession
	}
	return c.sendSM(receipt{sm: sm}, s.nextSeq.Add(1))
}

func addrTON(a string) (ton, npi byte, addr string) {
	if len(a) > 1 && a[0] == '+' {
		return 1, 1, a[1:]
	}
	return 0, 0, a
}

// Inject writes a raw PDU (command id, body) with a fresh sequence number to a bound
// session (a receiver or transceiver when one is bound, else any) and returns the
// sequence number used.
func (s *Server) Inject(id uint32, body []byte) (uint32, error) {
	s.mu.Lock()
	c := s.receivingLocked("")
	if c == nil {
		for cc := range s.conns {
			if cc.kind != 0 {
				c = cc
				break
			}
		}
	}
	s.mu.Unlock()
	if c == nil {
		return 0, ErrNoSession
	}
	seq := s.nextSeq.Add(1)
	b := wire.AppendHeader(nil, id, 0, seq)
	b = append(b, body...)
	wire.SetLen(b, 0)
	return seq, c.write(b)
}

// Unbind sends unbind to every bound session.
func (s *Server) Unbind() {
	s.mu.Lock()
	var cs []*conn
	for c := range s.conns {
		if c.kind != 0 {
			cs = append(cs, c)
		}
	}
	s.mu.Unlock()
	for _, c := range cs {
		_ = c.write(wire.AppendSimple(nil, wire.Unbind, 0, s.nextSeq.Add(1)))
	}
}

func (c *conn) write(b []byte) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return net.ErrClosed
	}
	if _, err := c.bw.Write(b); err != nil {
		return err
	}
	return c.bw.Flush()
}

func (c *conn) sendSM(r receipt, seq uint32) error {
	c.wmu.Lock()
	defer c.wmu.Unlock()
	if c.dead {
		return net.ErrClosed
	}
	c.pending[seq] = r
	c.scratch = wire.AppendSM(c.scratch[:0], wire.DeliverSM, seq, &r.sm)
	_, err := c.bw.Write(c.scratch)
	if err == nil {
		err = c.bw.Flush()
	}
	if err != nil {
		delete(c.pending, seq) // the caller sends it again
	}
	return err
}

func (c *conn) serve() {
	s := c.srv
	defer s.wg.Done()
	var delayWG sync.WaitGroup
	defer func() {
		c.nc.Close()
		c.wmu.Lock()
		c.dead = true
		requeue := make([]receipt, 0, len(c.pending))
		for _, r := range c.pending {
			requeue = append(requeue, r)
		}
		c.pending = nil
		c.wmu.Unlock()
		if c.delayed != nil {
			close(c.delayed)
		}
		delayWG.Wait()
		s.mu.Lock()
		delete(s.conns, c)
		for _, r := range requeue { // unacknowledged receipts are sent again elsewhere
			r.origin = nil
			r.due = time.Now()
			s.insertReceiptLocked(r)
		}
		s.mu.Unlock()
		if len(requeue) > 0 {
			select {
			case s.wake <- struct{}{}:
			default:
			}
		}
	}()
	if s.opts.ResponseDelay > 0 {
		c.delayed = make(chan delayedResp, 1<<16)
		delayWG.Add(1)
		go func() {
			defer delayWG.Done()
			c.delayLoop()
		}()
	}
	br := bufio.NewReaderSize(c.nc, 64<<10)
	var buf []byte
	var out []byte
	var ps wire.ParsedSubmit
	for {
		h, body, nb, err := wire.ReadPDU(br, buf, wire.MaxPDU)
		buf = nb
		if err != nil {
			return
		}
		if !s.opts.DisableRecording {
			s.mu.Lock()
			s.pdus = append(s.pdus, PDU{SystemID: c.sysID, ID: h.ID, Status: h.Status, Seq: h.Seq, Body: append([]byte(nil), body...)})
			s.mu.Unlock()
		}
		out = out[:0]
		switch h.ID {
		case wire.BindTransmitter, wire.BindReceiver, wire.BindTransceiver:
			if c.kind != 0 {
				out = wire.AppendIDResp(out, h.ID|0x80000000, 0x05, h.Seq, nil) // already bound
				break
			}
			sys, rest := wire.CString(body)
			pw, _ := wire.CString(rest)
			status := uint32(0)
			if s.opts.SystemID != "" && string(sys) != s.opts.SystemID {
				status = wire.StatusInvSysID
			} else if s.opts.Password != "" && string(pw) != s.opts.Password {
				status = wire.StatusInvPaswd
			}
			out = wire.AppendIDResp(out, h.ID|0x80000000, status, h.Seq, []byte("smsctest"))
			if status != 0 {
				_ = c.write(out)
				return
			}
			s.mu.Lock()
			c.kind, c.sysID = h.ID, string(sys)
			s.mu.Unlock()
		case wire.SubmitSM:
			if c.kind == 0 || c.kind == wire.BindReceiver {
				out = wire.AppendIDResp(out, wire.SubmitSMResp, wire.StatusInvBnd, h.Seq, nil)
				break
			}
			if err := wire.ParseSubmitSM(body, &ps); err != nil {
				out = wire.AppendSimple(out, wire.GenericNack, wire.StatusInvCmdLen, h.Seq)
				break
			}
			var drop, disconnect bool
			out, drop, disconnect = c.submit(out, h.Seq, &ps)
			if disconnect {
				return
			}
			if drop {
				out = out[:0]
			}
		case wire.EnquireLink:
			if !s.opts.IgnoreEnquireLink {
				out = wire.AppendSimple(out, wire.EnquireLinkResp, 0, h.Seq)
			}
		case wire.Unbind:
			_ = c.write(wire.AppendSimple(out, wire.UnbindResp, 0, h.Seq))
			return
		case wire.DeliverSMResp, wire.DataSMResp:
			c.wmu.Lock()
			r, ok := c.pending[h.Seq]
			delete(c.pending, h.Seq)
			c.wmu.Unlock()
			if ok && h.Status != 0 { // negative ack: the SMSC redelivers
				r.due = time.Now().Add(s.opts.RedeliverDelay)
				s.addReceipt(r)
			}
		case wire.UnbindResp, wire.EnquireLinkResp, wire.GenericNack:
		default:
			if !wire.IsResponse(h.ID) {
				out = wire.AppendSimple(out, wire.GenericNack, wire.StatusInvCmdID, h.Seq)
			}
		}
		if len(out) > 0 || br.Buffered() == 0 {
			c.wmu.Lock()
			if len(out) > 0 {
				_, err = c.bw.Write(out)
			}
			if err == nil && br.Buffered() == 0 {
				err = c.bw.Flush()
			}
			c.wmu.Unlock()
			if err != nil {
				return
			}
		}
	}
}

// submit handles one submit_sm and appends what is to be written now to out.
func (c *conn) submit(out []byte, seq uint32, ps *wire.ParsedSubmit) ([]byte, bool, bool) {
	s := c.srv
	n := s.nSubmit.Add(1)
	c.nsub++
	if s.opts.DisconnectAfter > 0 && c.nsub >= s.opts.DisconnectAfter {
		c.nsub = 0
		s.record(c, seq, ps, "", 0)
		return out, false, true
	}
	drop := s.opts.DropEvery > 0 && n%int64(s.opts.DropEvery) == 0
	status := uint32(0)
	switch {
	case drop:
	case s.limiter != nil && !s.limiter.Allow():
		status = wire.StatusThrottled
	case s.opts.ErrorEvery > 0 && n%int64(s.opts.ErrorEvery) == 0:
		status = s.opts.ErrorStatus
	}
	var idb [24]byte
	var id []byte
	if status == 0 && !drop {
		v := s.nextID.Add(1) + 0x10000
		if s.opts.IDFormat == "decimal" {
			id = strconv.AppendUint(idb[:0], v, 10)
		} else {
			id = strconv.AppendUint(idb[:0], v, 16)
		}
		if s.opts.Receipts && ps.RegisteredDelivery&1 != 0 {
			s.addReceipt(c.receiptFor(v, ps))
		}
	}
	s.record(c, seq, ps, string(id), status)
	if s.opts.CollideSeq && s.opts.Receipts && c.kind == wire.BindTransceiver {
		out = c.collide(out, seq)
	}
	if drop {
		return out, true, false
	}
	if s.opts.ResponseDelay > 0 {
		d := delayedResp{due: time.Now().Add(s.opts.ResponseDelay), status: status, seq: seq, n: uint8(copy(idb[:], id))}
		copy(d.id[:], idb[:d.n])
		c.delayed <- d
		return out, false, false
	}
	return wire.AppendIDResp(out, wire.SubmitSMResp, status, seq, id), false, false
}

// collide moves due receipts of c into out with the sequence number seq of the submit_sm
// being answered.
func (c *conn) collide(out []byte, seq uint32) []byte {
	s := c.srv
	now := time.Now()
	s.mu.Lock()
	for i := 0; i < len(s.receipts); i++ {
		r := s.receipts[i]
		if r.due.After(now) {
			break
		}
		if r.origin != c {
			continue
		}
		s.receipts = append(s.receipts[:i], s.receipts[i+1:]...)
		c.wmu.Lock()
		if _, busy := c.pending[seq]; busy {
			c.wmu.Unlock()
			s.receipts = append(s.receipts[:i], append([]receipt{r}, s.receipts[i:]...)...)
			break
		}
		c.pending[seq] = r
		c.wmu.Unlock()
		out = wire.AppendSM(out, wire.DeliverSM, seq, &r.sm)
		break // one deliver_sm per sequence number
	}
	s.mu.Unlock()
	return out
}

func (c *conn) receiptFor(v uint64, ps *wire.ParsedSubmit) receipt {
	s := c.srv
	var rid string
	if s.opts.ReceiptIDFormat == "decimal" {
		rid = strconv.FormatUint(v, 10)
	} else {
		rid = strconv.FormatUint(v, 16)
	}
	now := time.Now().UTC()
	d := now.Format("0601021504")
	txt := ps.ShortMessage
	if ps.ESMClass&0x40 != 0 && len(txt) > 0 && int(txt[0])+1 <= len(txt) {
		txt = txt[int(txt[0])+1:]
	}
	if len(txt) > 20 {
		txt = txt[:20]
	}
	text := fmt.Sprintf("id:%s sub:001 dlvrd:%s submit date:%s done date:%s stat:%s err:000 text:%s",
		rid, map[bool]string{true: "001", false: "000"}[s.opts.ReceiptState == "DELIVRD"], d, d, s.opts.ReceiptState, txt)
	sm := wire.Submit{
		SrcTON: ps.DstTON, SrcNPI: ps.DstNPI, Src: string(ps.Dst),
		DstTON: ps.SrcTON, DstNPI: ps.SrcNPI, Dst: string(ps.Src),
		ESMClass: 0x04, ShortMessage: []byte(text),
	}
	if s.opts.ReceiptTLVs {
		msgID := strconv.FormatUint(v, 16)
		if s.opts.IDFormat == "decimal" {
			msgID = strconv.FormatUint(v, 10)
		}
		sm.Extra = wire.AppendTLV(sm.Extra, wire.TagReceiptedMessageID, append([]byte(msgID), 0))
		sm.Extra = wire.AppendTLV(sm.Extra, wire.TagMessageState, []byte{stateCode(s.opts.ReceiptState)})
	}
	return receipt{due: now.Add(s.opts.ReceiptDelay), origin: c, sysID: c.sysID, sm: sm, msgID: rid}
}

func stateCode(st string) byte {
	switch st {
	case "ENROUTE":
		return 1
	case "DELIVRD":
		return 2
	case "EXPIRED":
		return 3
	case "DELETED":
		return 4
	case "UNDELIV":
		return 5
	case "ACCEPTD":
		return 6
	case "REJECTD":
		return 8
	}
	return 7
}

func (s *Server) record(c *conn, seq uint32, ps *wire.ParsedSubmit, id string, status uint32) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if p := s.bySrc[string(ps.Src)]; p != nil {
		*p++
	} else {
		one := 1
		s.bySrc[string(ps.Src)] = &one
	}
	if p := s.byDst[string(ps.Dst)]; p != nil {
		*p++
	} else {
		one := 1
		s.byDst[string(ps.Dst)] = &one
	}
	if s.opts.DisableRecording {
		return
	}
	sub := Submit{
		SystemID: c.sysID, Seq: seq, SrcTON: ps.SrcTON, SrcNPI: ps.SrcNPI, Src: string(ps.Src),
		DstTON: ps.DstTON, DstNPI: ps.DstNPI, Dst: string(ps.Dst), ESMClass: ps.ESMClass,
		DataCoding: ps.DataCoding, RegisteredDelivery: ps.RegisteredDelivery,
		Validity: string(ps.Validity), ShortMessage: append([]byte(nil), ps.ShortMessage...),
		TLVs: map[uint16][]byte{}, MessageID: id, Status: status,
	}
	if ps.ESMClass&0x40 != 0 && len(sub.ShortMessage) > 0 && int(sub.ShortMessage[0])+1 <= len(sub.ShortMessage) {
		sub.UDH = sub.ShortMessage[:int(sub.ShortMessage[0])+1]
	}
	for t := ps.TLVs; len(t) >= 4; {
		tag, n := uint16(t[0])<<8|uint16(t[1]), int(t[2])<<8|int(t[3])
		if len(t) < 4+n {
			break
		}
		sub.TLVs[tag] = append([]byte(nil), t[4:4+n]...)
		t = t[4+n:]
	}
	s.submits = append(s.submits, sub)
}

func (s *Server) addReceipt(r receipt) {
	s.mu.Lock()
	first := s.insertReceiptLocked(r) == 0
	s.mu.Unlock()
	if first { // the delivery loop sleeps until the earliest due time: this one is earlier
		select {
		case s.wake <- struct{}{}:
		default:
		}
	}
}

// insertReceiptLocked inserts r in due order (from the end: receipts mostly come in due
// order) and returns its index; s.mu is held.
func (s *Server) insertReceiptLocked(r receipt) int {
	i := len(s.receipts)
	for i > 0 && s.receipts[i-1].due.After(r.due) {
		i--
	}
	s.receipts = append(s.receipts, receipt{})
	copy(s.receipts[i+1:], s.receipts[i:])
	s.receipts[i] = r
	return i
}

// deliverLoop sends due receipts on the submitting transceiver, else on a receiver or
// transceiver session of the same system_id; receipts with no such session wait.
func (s *Server) deliverLoop() {
	defer s.wg.Done()
	t := time.NewTimer(time.Hour)
	defer t.Stop()
	for {
		now := time.Now()
		next := time.Hour
		type send struct {
			c *conn
			r receipt
		}
		var sends []send
		var waiting []receipt // due, but no session to send them on yet
		s.mu.Lock()
		// s.receipts is in due order: only its due prefix is looked at (a scan of every
		// pending receipt at each wake-up cost the process a quarter of its CPU with
		// receipts 1 s late).
		i := 0
		for ; i < len(s.receipts); i++ {
			r := s.receipts[i]
			if r.due.After(now) {
				if d := r.due.Sub(now); d < next {
					next = d
				}
				break
			}
			target := r.origin
			if target != nil {
				if _, alive := s.conns[target]; !alive || target.kind != wire.BindTransceiver {
					target = nil
				}
			}
			if target == nil {
				target = s.receivingLocked(r.sysID)
			}
			if target == nil {
				if next > 10*time.Millisecond {
					next = 10 * time.Millisecond
				}
				waiting = append(waiting, r)
				continue
			}
			sends = append(sends, send{target, r})
		}
		if i > 0 {
			clear(s.receipts[:i])
			if len(waiting) > 0 {
				s.receipts = append(waiting, s.receipts[i:]...)
			} else {
				s.receipts = s.receipts[i:]
			}
		}
		s.mu.Unlock()
		for _, sd := range sends {
			if err := sd.c.sendSM(sd.r, s.nextSeq.Add(1)); err != nil {
				sd.r.origin = nil
				sd.r.due = time.Now().Add(s.opts.RedeliverDelay)
				s.addReceipt(sd.r)
			}
		}
		t.Reset(next)
		select {
		case <-s.stop:
			return
		case <-s.wake:
			if !t.Stop() {
				<-t.C
			}
		case <-t.C:
		}
	}
}

func (c *conn) delayLoop() {
	var out []byte
	for d := range c.delayed {
		if w := time.Until(d.due); w > 0 {
			time.Sleep(w)
		}
		out = wire.AppendIDResp(out[:0], wire.SubmitSMResp, d.status, d.seq, d.id[:d.n])
		c.wmu.Lock()
		if !c.dead {
			_, _ = c.bw.Write(out)
			if len(c.delayed) == 0 {
				_ = c.bw.Flush()
			}
		}
		c.wmu.Unlock()
	}
}
