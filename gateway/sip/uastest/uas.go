package uastest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"
	"github.com/icholy/digest"
)

// ErrTimeout is returned by WaitFor when the condition did not hold in time.
var ErrTimeout = errors.New("uastest: timeout")

// Behavior is how the UAS treats an INVITE. The zero value answers at once with 200 and
// waits for the caller's BYE.
type Behavior struct {
	// Provisional is the number of 183 Session Progress responses sent before the final one.
	Provisional int
	// AnswerAfter delays the final response.
	AnswerAfter time.Duration
	// Status is the final response code; 0 means 200 OK.
	Status int
	// RingForever sends 180 Ringing and nothing more, until CANCEL (answered with 487).
	RingForever bool
	// NoResponse ignores the INVITE and its retransmissions.
	NoResponse bool
	// Challenge answers the first INVITE with 401 and a digest challenge; the retry must
	// carry valid credentials for Options.Username/Password (else 403).
	Challenge bool
	// HangupAfter sends BYE this long after the ACK; 0 waits for the caller's BYE.
	HangupAfter time.Duration
	// AnswerOnCancel rings forever and, when the CANCEL arrives, answers 200 just before the
	// CANCEL is processed: the 200/CANCEL race, made deterministic (UDP only).
	AnswerOnCancel bool
	// NoMedia answers with an SDP that opens no RTP socket (port 9, discard).
	NoMedia bool
}

// Options configures a UAS.
type Options struct {
	Username, Password string       // digest credentials Challenge expects
	Logger             *slog.Logger // nil: discard
}

// Call is what the UAS saw of one call (one Call-ID).
type Call struct {
	User      string // request-URI user part
	CallID    string
	Transport string // UDP or TCP
	From      string // From header value of the first INVITE
	PAI       string // P-Asserted-Identity header value ("" if absent)
	Invites   int    // INVITEs received (an authenticated retry counts)
	// Events lists in order what happened: "INVITE", "401", "183", "180", "200", "486"…
	// (responses sent), "ACK", "CANCEL", "BYE<" (received), "BYE>" (sent).
	Events     []string
	Final      int  // final response sent, 0 if none
	Authorized bool // the INVITE carried valid digest credentials
	Acked      bool
	Cancelled  bool
	ByeRecv    bool // the caller hung up
	ByeSent    bool // we hung up
	RTPPackets int64
	RTPFirst   time.Time // arrival of the first RTP packet
	RTPLast    time.Time // arrival of the last RTP packet
}

// Has reports whether ev occurs in the call's events.
func (c Call) Has(ev string) bool { return c.Index(ev) >= 0 }

// Index is the position of the first ev in the call's events, or -1.
func (c Call) Index(ev string) int {
	for i, e := range c.Events {
		if e == ev {
			return i
		}
	}
	return -1
}

// call is the live state of one Call-ID.
type call struct {
	rec      Call
	b        Behavior
	toTag    string
	nonce    string
	invite   *sip.Request // the last INVITE
	tx       sip.ServerTransaction
	answer   sync.Once
	answered chan struct{}
	acked    chan struct{} // closed on the first ACK of a 2xx
	ackOnce  sync.Once
	ended    chan struct{} // closed on BYE either way
	endOnce  sync.Once
	rtp      net.PacketConn
	rtpN     atomic.Int64
	rtpFirst atomic.Int64
	rtpLast  atomic.Int64
}

// UAS is the endpoint. Create it with New; Close it.
type UAS struct {
	opts   Options
	log    *slog.Logger
	ua     *sipgo.UserAgent
	srv    *sipgo.Server
	cliUDP *sipgo.Client
	cliTCP *sipgo.Client
	udp    net.PacketConn
	tcp    net.Listener
	ctx    context.Context
	stop   context.CancelFunc
	wg     sync.WaitGroup

	mu      sync.Mutex
	calls   map[string]*call
	order   []*call
	byUser  map[string]Behavior
	def     Behavior
	changed chan struct{}
}

// New starts a UAS on 127.0.0.1 (UDP and TCP, free ports).
func New(opts Options) (*UAS, error) {
	log := opts.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	u := &UAS{opts: opts, log: log, calls: make(map[string]*call), byUser: make(map[string]Behavior),
		changed: make(chan struct{})}
	u.ctx, u.stop = context.WithCancel(context.Background())
	pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
	if err != nil {
		return nil, fmt.Errorf("uastest: listen udp: %w", err)
	}
	ln, err := net.Listen("tcp4", "127.0.0.1:0")
	if err != nil {
		pc.Close()
		return nil, fmt.Errorf("uastest: listen tcp: %w", err)
	}
	u.udp = &interceptConn{PacketConn: pc, u: u}
	u.tcp = ln
	u.ua, err = sipgo.NewUA(sipgo.WithUserAgent("uastest"), sipgo.WithUserAgentHostname("127.0.0.1"),
		sipgo.WithUserAgentTransportLayerOptions(sip.WithTransportLayerLogger(log)),
		sipgo.WithUserAgentTransactionLayerOptions(sip.WithTransactionLayerLogger(log)))
	if err == nil {
		u.srv, err = sipgo.NewServer(u.ua, sipgo.WithServerLogger(log))
	}
	if err == nil {
		u.cliUDP, err = sipgo.NewClient(u.ua, sipgo.WithClientLogger(log), sipgo.WithClientHostname("127.0.0.1"),
			sipgo.WithClientConnectionAddr(pc.LocalAddr().String()))
	}
	if err == nil {
		u.cliTCP, err = sipgo.NewClient(u.ua, sipgo.WithClientLogger(log), sipgo.WithClientHostname("127.0.0.1"))
	}
	if err != nil {
		pc.Close()
		ln.Close()
		return nil, fmt.Errorf("uastest: %w", err)
	}
	u.srv.OnInvite(u.onInvite)
	u.srv.OnAck(u.onAck)
	u.srv.OnBye(u.onBye)
	u.srv.OnCancel(func(req *sip.Request, tx sip.ServerTransaction) {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
	})
	u.wg.Go(func() { _ = u.srv.ServeUDP(u.udp) })
	u.wg.Go(func() { _ = u.srv.ServeTCP(u.tcp) })
	return u, nil
}

// UDPAddr is the UDP host:port.
func (u *UAS) UDPAddr() string { return u.udp.LocalAddr().String() }

// TCPAddr is the TCP host:port.
func (u *UAS) TCPAddr() string { return u.tcp.Addr().String() }

// Handle sets the behaviour for INVITEs to user (the request-URI user part).
func (u *UAS) Handle(user string, b Behavior) {
	u.mu.Lock()
	u.byUser[user] = b
	u.mu.Unlock()
}

// SetDefault sets the behaviour for users without their own.
func (u *UAS) SetDefault(b Behavior) {
	u.mu.Lock()
	u.def = b
	u.mu.Unlock()
}

// Calls returns a snapshot of every call seen, in order of first INVITE.
func (u *UAS) Calls() []Call {
	u.mu.Lock()
	defer u.mu.Unlock()
	out := make([]Call, len(u.order))
	for i, c := range u.order {
		out[i] = c.snapshot()
	}
	return out
}

// CallTo returns the first call to user.
func (u *UAS) CallTo(user string) (Call, bool) {
	for _, c := range u.Calls() {
		if c.User == user {
			return c, true
		}
	}
	return Call{}, false
}

// Reset forgets the calls seen so far (not the behaviours).
func (u *UAS) Reset() {
	u.mu.Lock()
	u.calls = make(map[string]*call)
	u.order = nil
	u.mu.Unlock()
}

func (c *call) snapshot() Call {
	r := c.rec
	r.Events = append([]string(nil), r.Events...)
	r.RTPPackets = c.rtpN.Load()
	if n := c.rtpFirst.Load(); n != 0 {
		r.RTPFirst = time.Unix(0, n)
	}
	if n := c.rtpLast.Load(); n != 0 {
		r.RTPLast = time.Unix(0, n)
	}
	return r
}

// WaitFor waits until cond holds for the calls seen, re-checking on every SIP event and at
// least every 5 ms (RTP counters change without events). It returns the last snapshot, and
// ErrTimeout (with the snapshot described) if timeout passes first.
func (u *UAS) WaitFor(timeout time.Duration, cond func(calls []Call) bool) ([]Call, error) {
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for {
		u.mu.Lock()
		ch := u.changed
		u.mu.Unlock()
		calls := u.Calls()
		if cond(calls) {
			return calls, nil
		}
		select {
		case <-ch:
		case <-tick.C:
		case <-deadline.C:
			var b strings.Builder
			for _, c := range calls {
				fmt.Fprintf(&b, "\n  %s %s %v rtp=%d", c.User, c.Transport, c.Events, c.RTPPackets)
			}
			return calls, fmt.Errorf("%w after %v; calls:%s", ErrTimeout, timeout, b.String())
		}
	}
}

// Close stops the UAS: listeners, RTP sockets and goroutines.
func (u *UAS) Close() error {
	u.stop()
	u.mu.Lock()
	for _, c := range u.order {
		c.end()
	}
	u.mu.Unlock()
	u.udp.Close()
	u.tcp.Close()
	u.ua.Close()
	u.wg.Wait()
	return nil
}

// event appends ev to c's events and wakes waiters. Caller must not hold u.mu.
func (u *UAS) event(c *call, f func(r *Call), ev string) {
	u.mu.Lock()
	if f != nil {
		f(&c.rec)
	}
	if ev != "" {
		c.rec.Events = append(c.rec.Events, ev)
	}
	close(u.changed)
	u.changed = make(chan struct{})
	u.mu.Unlock()
}

func (u *UAS) lookup(callID string) *call {
	u.mu.Lock()
	defer u.mu.Unlock()
	return u.calls[callID]
}

func (c *call) end() {
	c.endOnce.Do(func() {
		close(c.ended)
		if c.rtp != nil {
			c.rtp.Close()
		}
	})
}

func randHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func (u *UAS) respond(c *call, tx sip.ServerTransaction, req *sip.Request, code int, reason string, body []byte, hdrs ...sip.Header) {
	res := sip.NewResponseFromRequest(req, code, reason, body)
	if code > 100 {
		res.To().Params.Add("tag", c.toTag)
	}
	for _, h := range hdrs {
		res.AppendHeader(h)
	}
	// Recorded before sending: the answer to it must come after it in Events.
	u.event(c, func(r *Call) {
		if code >= 200 {
			r.Final = code
		}
	}, fmt.Sprint(code))
	if err := tx.Respond(res); err != nil {
		u.log.Debug("respond", "code", code, "err", err)
	}
}

func (u *UAS) onInvite(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID()
	if id == nil {
		return
	}
	u.mu.Lock()
	c, ok := u.calls[id.Value()]
	if !ok {
		b, has := u.byUser[req.Recipient.User]
		if !has {
			b = u.def
		}
		c = &call{b: b, toTag: randHex(8), answered: make(chan struct{}), acked: make(chan struct{}), ended: make(chan struct{})}
		c.rec.User, c.rec.CallID, c.rec.Transport = req.Recipient.User, id.Value(), req.Transport()
		if f := req.From(); f != nil {
			c.rec.From = f.Value()
		}
		if h := req.GetHeader("P-Asserted-Identity"); h != nil {
			c.rec.PAI = h.Value()
		}
		u.calls[id.Value()] = c
		u.order = append(u.order, c)
	}
	c.invite, c.tx = req, tx
	b, authorized := c.b, c.rec.Authorized
	u.mu.Unlock()
	u.event(c, func(r *Call) { r.Invites++ }, "INVITE")

	if b.NoResponse {
		return
	}
	if b.Challenge && !authorized {
		if !u.authorized(c, req) {
			if c.nonce != "" && req.GetHeader("Authorization") != nil {
				u.respond(c, tx, req, 403, "Forbidden", nil)
				return
			}
			c.nonce = randHex(12)
			chal := fmt.Sprintf(`Digest realm="uastest", nonce="%s", algorithm=MD5`, c.nonce)
			u.respond(c, tx, req, 401, "Unauthorized", nil, sip.NewHeader("WWW-Authenticate", chal))
			return
		}
		u.event(c, func(r *Call) { r.Authorized = true }, "")
	}
	cancelled := make(chan struct{})
	var once sync.Once
	tx.OnCancel(func(r *sip.Request) {
		once.Do(func() { close(cancelled) })
		u.event(c, func(r *Call) { r.Cancelled = true }, "CANCEL")
	})
	for range b.Provisional {
		u.respond(c, tx, req, 183, "Session Progress", nil)
	}
	if b.RingForever || b.AnswerOnCancel {
		u.respond(c, tx, req, 180, "Ringing", nil)
		select {
		case <-c.answered: // AnswerOnCancel answered from the transport hook
		case <-tx.Done():
		case <-u.ctx.Done():
		}
		return
	}
	if b.AnswerAfter > 0 {
		t := time.NewTimer(b.AnswerAfter)
		defer t.Stop()
		select {
		case <-t.C:
		case <-cancelled:
			return
		case <-tx.Done():
			return
		case <-u.ctx.Done():
			return
		}
	}
	if b.Status != 0 && b.Status != 200 {
		u.respond(c, tx, req, b.Status, "", nil)
		return
	}
	u.answerCall(c)
}

// answerCall sends 200 OK with an SDP answer, once per call.
func (u *UAS) answerCall(c *call) {
	c.answer.Do(func() {
		u.mu.Lock()
		inv, tx := c.invite, c.tx
		u.mu.Unlock()
		port := 9
		if !c.b.NoMedia {
			pc, err := net.ListenPacket("udp4", "127.0.0.1:0")
			if err == nil {
				c.rtp = pc
				port = pc.LocalAddr().(*net.UDPAddr).Port
				u.wg.Go(func() { u.readRTP(c, pc) })
			}
		}
		pt := "0"
		if body := inv.Body(); bytes.Contains(body, []byte("m=audio")) && !offers(body, "0") && offers(body, "8") {
			pt = "8"
		}
		sdp := fmt.Sprintf("v=0\r\no=uastest 1 1 IN IP4 127.0.0.1\r\ns=uastest\r\nc=IN IP4 127.0.0.1\r\nt=0 0\r\nm=audio %d RTP/AVP %s\r\na=sendrecv\r\n", port, pt)
		contact := &sip.ContactHeader{Address: sip.Uri{Scheme: "sip", User: "uastest", Host: "127.0.0.1"}}
		if c.rec.Transport == "TCP" {
			contact.Address.Port = u.tcp.Addr().(*net.TCPAddr).Port
			contact.Address.UriParams = sip.NewParams()
			contact.Address.UriParams.Add("transport", "tcp")
		} else {
			contact.Address.Port = u.udp.LocalAddr().(*net.UDPAddr).Port
		}
		u.respond(c, tx, inv, 200, "OK", []byte(sdp), contact, sip.NewHeader("Content-Type", "application/sdp"))
		close(c.answered)
	})
}

// offers reports whether the SDP's audio line lists payload type pt.
func offers(body []byte, pt string) bool {
	for _, line := range strings.Split(string(body), "\n") {
		if f := strings.Fields(line); len(f) > 3 && f[0] == "m=audio" {
			for _, p := range f[3:] {
				if p == pt {
					return true
				}
			}
		}
	}
	return false
}

func (u *UAS) authorized(c *call, req *sip.Request) bool {
	h := req.GetHeader("Authorization")
	if h == nil || c.nonce == "" {
		return false
	}
	cred, err := digest.ParseCredentials(h.Value())
	if err != nil || cred.Nonce != c.nonce || cred.Username != u.opts.Username {
		return false
	}
	want, err := digest.Digest(&digest.Challenge{Realm: "uastest", Nonce: c.nonce, Algorithm: "MD5"},
		digest.Options{Method: "INVITE", URI: cred.URI, Username: u.opts.Username, Password: u.opts.Password})
	return err == nil && want.Response == cred.Response
}

func (u *UAS) readRTP(c *call, pc net.PacketConn) {
	buf := make([]byte, 1500)
	for {
		n, _, err := pc.ReadFrom(buf)
		if err != nil {
			return
		}
		if n < 12 || buf[0]>>6 != 2 {
			continue
		}
		now := time.Now().UnixNano()
		if c.rtpN.Add(1) == 1 {
			c.rtpFirst.Store(now)
		}
		c.rtpLast.Store(now)
	}
}

func (u *UAS) onAck(req *sip.Request, tx sip.ServerTransaction) {
	id := req.CallID()
	if id == nil {
		return
	}
	c := u.lookup(id.Value())
	if c == nil {
		return
	}
	u.event(c, func(r *Call) { r.Acked = true }, "ACK")
	c.ackOnce.Do(func() { close(c.acked) })
	if c.b.HangupAfter > 0 {
		u.wg.Go(func() { u.hangup(c) })
	}
}

// hangup sends BYE after the behaviour's delay, unless the call ended first.
func (u *UAS) hangup(c *call) {
	t := time.NewTimer(c.b.HangupAfter)
	defer t.Stop()
	select {
	case <-t.C:
	case <-c.ended:
		return
	case <-u.ctx.Done():
		return
	}
	u.mu.Lock()
	inv := c.invite
	u.mu.Unlock()
	ct := inv.Contact()
	if ct == nil {
		return
	}
	bye := sip.NewRequest(sip.BYE, *ct.Address.Clone())
	from := &sip.FromHeader{Address: inv.To().Address, Params: sip.NewParams()}
	from.Params.Add("tag", c.toTag)
	to := &sip.ToHeader{Address: inv.From().Address, Params: inv.From().Params.Clone()}
	bye.AppendHeader(from)
	bye.AppendHeader(to)
	bye.AppendHeader(sip.HeaderClone(inv.CallID()))
	bye.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.BYE})
	bye.SetBody(nil)
	bye.SetTransport(c.rec.Transport)
	cli := u.cliUDP
	if c.rec.Transport == "TCP" {
		cli = u.cliTCP
	}
	c.end()
	u.event(c, func(r *Call) { r.ByeSent = true }, "BYE>")
	ctx, cancel := context.WithTimeout(u.ctx, 4*time.Second)
	defer cancel()
	if _, err := cli.Do(ctx, bye); err != nil {
		u.log.Debug("BYE", "err", err)
	}
}

func (u *UAS) onBye(req *sip.Request, tx sip.ServerTransaction) {
	var c *call
	if id := req.CallID(); id != nil {
		c = u.lookup(id.Value())
	}
	if c == nil {
		_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusCallTransactionDoesNotExists, "Call/Transaction Does Not Exist", nil))
		return
	}
	// sipgo hands each request to its own goroutine: an ACK sent just before this BYE may
	// still be on its way up. Let it land first so Events keep the wire order.
	select {
	case <-c.acked:
	case <-c.answered:
		t := time.NewTimer(time.Second)
		select {
		case <-c.acked:
		case <-t.C:
		}
		t.Stop()
	default:
	}
	_ = tx.Respond(sip.NewResponseFromRequest(req, sip.StatusOK, "OK", nil))
	c.end()
	u.event(c, func(r *Call) { r.ByeRecv = true }, "BYE<")
}

// interceptConn lets AnswerOnCancel answer an INVITE just before its CANCEL reaches the
// transaction layer.
type interceptConn struct {
	net.PacketConn
	u *UAS
}

func (ic *interceptConn) ReadFrom(p []byte) (int, net.Addr, error) {
	n, addr, err := ic.PacketConn.ReadFrom(p)
	if err == nil && n > 7 && string(p[:7]) == "CANCEL " {
		if c := ic.u.lookup(callIDOf(p[:n])); c != nil && c.b.AnswerOnCancel {
			ic.u.answerCall(c)
		}
	}
	return n, addr, err
}

// callIDOf finds the Call-ID header value in a raw SIP message.
func callIDOf(msg []byte) string {
	for _, line := range strings.Split(string(msg), "\r\n") {
		name, val, ok := strings.Cut(line, ":")
		if !ok {
			if line == "" {
				break
			}
			continue
		}
		name = strings.TrimSpace(name)
		if strings.EqualFold(name, "Call-ID") || name == "i" {
			return strings.TrimSpace(val)
		}
	}
	return ""
}
