package sip

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"net"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/emiago/sipgo"
	"github.com/emiago/sipgo/sip"

	"github.com/sendcore/sendcore/dispatch"
)

// dialog is what the trunk's request handlers need to know about a call in progress.
type dialog struct {
	bye     chan struct{} // closed when the far end sends BYE
	byeOnce sync.Once
	ans     atomic.Bool
}

func (d *dialog) remoteBye()     { d.byeOnce.Do(func() { close(d.bye) }) }
func (d *dialog) answered() bool { return d.ans.Load() }

// Reasons of failed results (CallResult.Reason).
const (
	ReasonInvalidNumber = "invalid_number" // 404, 484
	ReasonTimeout       = "timeout"        // no response within answer_timeout
	ReasonShutdown      = "shutdown"       // the trunk stopped before or during the call
	ReasonCancelled     = "cancelled"      // the caller's ctx ended before an answer
	ReasonPrompt        = "prompt"         // the prompt cannot be played
	ReasonTransport     = "transport"      // the INVITE could not be sent
	ReasonSDP           = "sdp"            // the answer carried no usable audio stream
)

// Call places c and blocks until it ends (dispatch.Caller). It waits for a free slot
// (max_calls) and for the attempt rate (cps) first; when ctx (or the trunk's Run) ends, the
// call is cancelled or hung up and a result is still returned. onAnswer, if not nil, is
// called once, when the far end answers, before the prompt plays.
//
// Outcomes: completed (answered, then ended by either side; Duration from answer), busy
// (486, 600), declined (603), no_answer (ring timeout → CANCEL, 480, 408), failed with
// Reason "invalid_number" (404, 484), "timeout" and Retryable (no response within
// answer_timeout), Retryable "sip_503", else "sip_<code>", or one of the Reason* codes.
func (t *Trunk) Call(ctx context.Context, c *dispatch.Call, onAnswer func()) dispatch.CallResult {
	r := t.call(ctx, c, onAnswer)
	r.Trunk = t.cfg.Name
	t.outcomes[outcomeIndex(r.Status)].Add(1)
	t.m.calls.WithLabelValues(t.cfg.Name, string(r.Status)).Inc()
	return r
}

func failed(reason string, retryable bool) dispatch.CallResult {
	return dispatch.CallResult{Status: dispatch.StatusFailed, Reason: reason, Retryable: retryable}
}

// stopReason names why ctx or the trunk ended a call before an answer.
func stopReason(runCtx context.Context) string {
	if runCtx.Err() != nil {
		return ReasonShutdown
	}
	return ReasonCancelled
}

func (t *Trunk) call(ctx context.Context, c *dispatch.Call, onAnswer func()) dispatch.CallResult {
	runCtx, ok := t.enter(ctx)
	if !ok {
		return failed(ReasonShutdown, true)
	}
	defer t.calls.Done()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	stop := context.AfterFunc(runCtx, cancel)
	defer stop()

	var audio *prompt
	if c.Prompt != "" {
		p, err := t.prompts.get(c.Prompt)
		if err != nil {
			t.log.Error("prompt", "request_id", c.RequestID, "err", err)
			return failed(ReasonPrompt, false)
		}
		audio = p
	}

	// Not yet sent: another trunk may place it.
	select {
	case t.slots <- struct{}{}:
	case <-ctx.Done():
		return failed(stopReason(runCtx), true)
	}
	defer func() { <-t.slots }()
	if err := t.limiter.Wait(ctx); err != nil {
		return failed(stopReason(runCtx), true)
	}

	t.attempts.Add(1)
	t.active.Add(1)
	t.m.active.WithLabelValues(t.cfg.Name).Inc()
	defer func() {
		t.active.Add(-1)
		t.m.active.WithLabelValues(t.cfg.Name).Dec()
	}()

	med, err := newRTPStream(t.localIP)
	if err != nil {
		t.log.Error("rtp", "request_id", c.RequestID, "err", err)
		return failed(ReasonTransport, true)
	}
	defer med.Close()
	cl := &callLeg{t: t, c: c, med: med, audio: audio, runCtx: runCtx, d: &dialog{bye: make(chan struct{})}}
	return cl.run(ctx, onAnswer)
}

// callLeg is one call's state, used by one goroutine.
type callLeg struct {
	t      *Trunk
	c      *dispatch.Call
	med    media
	audio  *prompt
	runCtx context.Context
	d      *dialog
	callID string

	invite *sip.Request
	tx     sip.ClientTransaction
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// newInvite builds the INVITE for c with our SDP offer.
func (l *callLeg) newInvite() *sip.Request {
	t := l.t
	host, portS, _ := net.SplitHostPort(t.cfg.Addr)
	ruri := sip.Uri{Scheme: t.scheme, User: l.c.To, Host: t.domain}
	if t.cfg.Domain == "" {
		ruri.Host = host
		ruri.Port, _ = strconv.Atoi(portS)
	}
	req := sip.NewRequest(sip.INVITE, ruri)
	if t.cfg.Domain != "" {
		req.SetDestination(t.cfg.Addr)
	}
	from := &sip.FromHeader{Address: sip.Uri{Scheme: t.scheme, User: l.c.From, Host: t.domain}, Params: sip.NewParams()}
	from.Params.Add("tag", sip.GenerateTagN(16))
	to := &sip.ToHeader{Address: sip.Uri{Scheme: t.scheme, User: l.c.To, Host: t.domain}}
	callID := sip.CallIDHeader(l.callID)
	req.AppendHeader(from)
	req.AppendHeader(to)
	req.AppendHeader(&callID)
	req.AppendHeader(&sip.CSeqHeader{SeqNo: 1, MethodName: sip.INVITE})
	req.AppendHeader(sip.NewHeader("P-Asserted-Identity", "<"+t.scheme+":"+l.c.From+"@"+t.domain+">"))
	contact := t.contact
	req.AppendHeader(sip.HeaderClone(&contact))
	req.AppendHeader(sip.NewHeader("Allow", "INVITE, ACK, CANCEL, BYE, OPTIONS"))
	req.AppendHeader(sip.NewHeader("Content-Type", "application/sdp"))
	var sid [8]byte
	_, _ = rand.Read(sid[:])
	sess := uint64(sid[0])<<24 | uint64(sid[1])<<16 | uint64(sid[2])<<8 | uint64(sid[3])
	req.SetBody(sdpOffer(t.localIP, l.med.Port(), sess))
	req.SetTransport(t.transport)
	return req
}

// newInDialog builds ACK or BYE for the dialog the 2xx res established.
func (t *Trunk) newInDialog(method sip.RequestMethod, res *sip.Response, seq uint32, from *sip.FromHeader, to *sip.ToHeader) *sip.Request {
	var ruri sip.Uri
	if ct := res.Contact(); ct != nil {
		ruri = *ct.Address.Clone()
	} else {
		host, portS, _ := net.SplitHostPort(t.cfg.Addr)
		ruri = sip.Uri{Scheme: t.scheme, User: to.Address.User, Host: host}
		ruri.Port, _ = strconv.Atoi(portS)
	}
	req := sip.NewRequest(method, ruri)
	rr := res.GetHeaders("Record-Route")
	for i := len(rr) - 1; i >= 0; i-- {
		req.AppendHeader(sip.NewHeader("Route", rr[i].Value()))
	}
	req.AppendHeader(sip.HeaderClone(from))
	req.AppendHeader(sip.HeaderClone(to))
	req.AppendHeader(sip.HeaderClone(res.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: seq, MethodName: method})
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.SetBody(nil)
	req.SetTransport(t.transport)
	return req
}

// newCancel builds the CANCEL for the current INVITE (same Via branch and CSeq number).
func (l *callLeg) newCancel() *sip.Request {
	inv := l.invite
	req := sip.NewRequest(sip.CANCEL, *inv.Recipient.Clone())
	req.AppendHeader(sip.HeaderClone(inv.Via()))
	mf := sip.MaxForwardsHeader(70)
	req.AppendHeader(&mf)
	req.AppendHeader(sip.HeaderClone(inv.From()))
	req.AppendHeader(sip.HeaderClone(inv.To()))
	req.AppendHeader(sip.HeaderClone(inv.CallID()))
	req.AppendHeader(&sip.CSeqHeader{SeqNo: inv.CSeq().SeqNo, MethodName: sip.CANCEL})
	req.SetBody(nil)
	req.SetTransport(inv.Transport())
	req.SetDestination(inv.Destination())
	return req
}

// sendCancel sends CANCEL and waits (bounded) for its answer in the background; wg tracks it.
func (l *callLeg) sendCancel(wg *sync.WaitGroup) {
	cancelReq := l.newCancel()
	ctx, cancel := context.WithTimeout(context.Background(), hangupTimeout)
	tx, err := l.t.cli.TransactionRequest(ctx, cancelReq)
	if err != nil {
		cancel()
		l.t.log.Warn("send CANCEL", "call_id", l.callID, "err", err)
		return
	}
	wg.Go(func() {
		defer cancel()
		defer tx.Terminate()
		for {
			select {
			case res := <-tx.Responses():
				if !res.IsProvisional() {
					return
				}
			case <-tx.Done():
				return
			case <-ctx.Done():
				return
			}
		}
	})
}

// run drives the call from INVITE to its end.
func (l *callLeg) run(ctx context.Context, onAnswer func()) dispatch.CallResult {
	t := l.t
	l.callID = randomHex(16) + "@sendcore"
	t.dialogs.Store(l.callID, l.d)
	defer t.dialogs.Delete(l.callID)
	var bg sync.WaitGroup // CANCEL transactions
	defer bg.Wait()

	l.invite = l.newInvite()
	start := time.Now()
	tx, err := t.cli.TransactionRequest(ctx, l.invite)
	if err != nil {
		t.log.Warn("send INVITE", "call_id", l.callID, "err", err)
		return failed(ReasonTransport, true)
	}
	l.tx = tx
	defer func() { l.tx.Terminate() }()

	ringTimeout := l.c.RingTimeout
	if ringTimeout <= 0 {
		ringTimeout = t.cfg.RingTimeout
	}
	answerTimer := time.NewTimer(t.cfg.AnswerTimeout)
	defer answerTimer.Stop()
	ringTimer := time.NewTimer(ringTimeout)
	defer ringTimer.Stop()
	var graceC <-chan time.Time // after CANCEL: bound on the wait for the INVITE's final answer

	done := ctx.Done()
	anyResponse, provisional, setupSeen := false, false, false
	cancelPending, cancelSent := false, false
	var cancelResult dispatch.CallResult
	authTries := 0
	startCancel := func(r dispatch.CallResult) {
		cancelResult, done = r, nil
		ringTimer.Stop()
		if provisional {
			l.sendCancel(&bg)
			cancelSent = true
			graceC = time.After(hangupTimeout + t.cfg.AnswerTimeout)
		} else {
			cancelPending = true // CANCEL only after a provisional response (RFC 3261 9.1)
		}
	}
	for {
		select {
		case res := <-l.tx.Responses():
			if !anyResponse {
				anyResponse = true
				answerTimer.Stop()
			}
			if res.IsProvisional() {
				provisional = true
				if cancelPending && !cancelSent {
					l.sendCancel(&bg)
					cancelSent = true
					graceC = time.After(hangupTimeout + t.cfg.AnswerTimeout)
				}
				continue
			}
			if !setupSeen {
				setupSeen = true
				t.m.setup.WithLabelValues(t.cfg.Name).Observe(time.Since(start).Seconds())
			}
			if res.IsSuccess() {
				if cancelPending || cancelSent {
					// 200 raced our CANCEL: the far end has a call; end it (ACK, BYE).
					l.ack(res)
					l.bye(res)
					r := cancelResult
					r.SIPCode = res.StatusCode
					return r
				}
				return l.answered(ctx, res, onAnswer)
			}
			code := int(res.StatusCode)
			if (code == 401 || code == 407) && t.cfg.Password != "" && authTries < 2 && !cancelPending && !cancelSent {
				authTries++
				l.tx.Terminate()
				ntx, err := t.cli.TransactionDigestAuth(ctx, l.invite, res, sipgo.DigestAuth{Username: t.cfg.Username, Password: t.cfg.Password})
				if err != nil {
					t.log.Warn("digest auth", "call_id", l.callID, "err", err)
					return outcome(code)
				}
				l.tx = ntx
				provisional = false
				continue
			}
			if (cancelPending || cancelSent) && code == 487 {
				r := cancelResult
				r.SIPCode = code
				return r
			}
			return outcome(code)
		case <-l.tx.Done():
			if cancelPending || cancelSent {
				return cancelResult
			}
			t.log.Warn("INVITE transaction ended without a final answer", "call_id", l.callID, "err", l.tx.Err())
			return failed(ReasonTimeout, true)
		case <-answerTimer.C:
			if !anyResponse {
				// Nothing at all: the trunk is down or unreachable. No CANCEL without a
				// provisional response; a late 2xx is hung up by onStrayResponse.
				if cancelPending {
					return cancelResult
				}
				return failed(ReasonTimeout, true)
			}
		case <-ringTimer.C:
			startCancel(dispatch.CallResult{Status: dispatch.StatusNoAnswer})
		case <-done:
			startCancel(failed(stopReason(l.runCtx), false))
		case <-graceC:
			// No final answer to the cancelled INVITE: give up on it.
			return cancelResult
		}
	}
}

// outcome maps a final non-2xx status code to a result.
func outcome(code int) dispatch.CallResult {
	r := dispatch.CallResult{SIPCode: code}
	switch code {
	case 486, 600:
		r.Status = dispatch.StatusBusy
	case 603:
		r.Status = dispatch.StatusDeclined
	case 480, 408, 487:
		r.Status = dispatch.StatusNoAnswer
	case 404, 484:
		r.Status, r.Reason = dispatch.StatusFailed, ReasonInvalidNumber
	case 503:
		r.Status, r.Reason, r.Retryable = dispatch.StatusFailed, "sip_503", true
	default:
		r.Status, r.Reason = dispatch.StatusFailed, "sip_"+strconv.Itoa(code)
	}
	return r
}

// ack ACKs the 2xx res, and its retransmissions.
func (l *callLeg) ack(res *sip.Response) {
	t := l.t
	ack := t.newInDialog(sip.ACK, res, l.invite.CSeq().SeqNo, l.invite.From(), res.To())
	tmpl := ack.Clone()
	l.tx.OnRetransmission(func(r *sip.Response) {
		if r.IsSuccess() {
			_ = t.cli.WriteRequest(tmpl.Clone())
		}
	})
	if err := t.cli.WriteRequest(ack); err != nil {
		t.log.Warn("send ACK", "call_id", l.callID, "err", err)
	}
}

func (l *callLeg) bye(res *sip.Response) {
	t := l.t
	bye := t.newInDialog(sip.BYE, res, l.invite.CSeq().SeqNo+1, l.invite.From(), res.To())
	ctx, cancel := context.WithTimeout(context.Background(), hangupTimeout)
	defer cancel()
	r, err := t.cli.Do(ctx, bye)
	if err != nil {
		t.log.Warn("BYE", "call_id", l.callID, "err", err)
		return
	}
	if r.StatusCode != 200 && r.StatusCode != 481 {
		t.log.Warn("BYE answered", "call_id", l.callID, "code", r.StatusCode)
	}
}

// answered runs an answered call: ACK, onAnswer, prompt, BYE.
func (l *callLeg) answered(ctx context.Context, res *sip.Response, onAnswer func()) dispatch.CallResult {
	t := l.t
	at := time.Now()
	l.d.ans.Store(true)
	l.ack(res)
	if onAnswer != nil {
		onAnswer()
	}
	r := dispatch.CallResult{Status: dispatch.StatusCompleted, Answered: true, SIPCode: int(res.StatusCode)}

	maxDur := l.c.MaxDuration
	if maxDur <= 0 {
		maxDur = t.cfg.MaxDuration
	}
	pctx, cancel := context.WithTimeout(ctx, maxDur)
	watched := make(chan struct{})
	go func() { // the far end's BYE ends the prompt early
		defer close(watched)
		select {
		case <-l.d.bye:
			cancel()
		case <-pctx.Done():
		}
	}()
	defer func() { cancel(); <-watched }()

	if l.audio != nil {
		ans, err := parseSDPAnswer(res.Body())
		if err != nil {
			t.log.Warn("answer SDP", "call_id", l.callID, "err", err)
		} else {
			n, err := l.med.Play(pctx, ans.addr, ans.pt, l.audio.payload(ans.pt))
			t.m.rtpSent.WithLabelValues(t.cfg.Name).Add(float64(n))
			if err != nil && !errors.Is(err, context.Canceled) && !errors.Is(err, context.DeadlineExceeded) {
				t.log.Warn("play", "call_id", l.callID, "err", err)
			}
		}
	}
	select {
	case <-l.d.bye: // the far end hung up
	default:
		l.bye(res)
	}
	r.Duration = time.Since(at)
	return r
}

var _ dispatch.Caller = (*Trunk)(nil)
