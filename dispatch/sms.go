package dispatch

import (
	"fmt"
	"hash/maphash"
	"strings"
	"time"

	"github.com/sendcore/sendcore/segment"
)

// smsRoute runs route → sender → segment → limits → submit for an SMS job.
func (p *Pipeline) smsRoute(j *job) {
	j.cands = p.smsRouter.candidates(j.candBuf[:0], j.p.to)
	if len(j.cands) == 0 {
		ev := j.event(StatusRejected)
		ev.Reason, ev.Detail = ReasonNoRoute, fmt.Sprintf("to: no SMS connection routes %q", j.p.to)
		p.emitFinal(j, ev, string(StatusRejected))
		return
	}
	c, ok := pickReady(j.cands, func(i int) bool { return p.o.SMS[i].Sender.Ready() })
	if !ok {
		p.hold(j, p.now().Add(p.cfg.RetryDelay), "no_connection")
		return
	}
	j.conn = c
	route := &p.o.SMS[c]
	if !p.pickFrom(j, ChannelSMS, route.DefaultFrom) {
		return
	}
	j.ev.Connection = route.Sender.Name()
	opt := j.p.opt
	opt.Concat = route.Sender.Concat()
	if ns, ok := route.Sender.(NationalSender); ok {
		opt.National = ns.National()
	}
	var ref uint16
	if j.p.count.Segments > 1 {
		b := &p.refs[c][maphash.String(p.seed, j.p.to)%refBuckets]
		ref = uint16(b.Add(1))
	}
	t0 := p.now()
	if err := p.split(&j.msg, j.p.req.Text, opt, ref); err != nil {
		ev := j.event(StatusRejected)
		ev.Reason, ev.Detail = splitReason(err), "text: "+err.Error()
		p.emitFinal(j, ev, string(StatusRejected))
		return
	}
	p.m.observeStage("segment", p.now().Sub(t0).Seconds())
	// The billing count of what is sent: the split with this connection's concatenation
	// form and national tables (CountText of the same text and options gives the same).
	j.ev.Segments = j.msg.Segments
	j.ev.Encoding = j.msg.Encoding.String()
	if !p.reserve(j, j.ev.Segments, func() { p.submit(j) }) {
		return
	}
	p.submit(j)
}

func splitReason(err error) string {
	if se, ok := err.(*segment.Error); ok {
		return se.Code
	}
	return ReasonInvalidField
}

// submit hands the segmented message to the connection; smsDone continues.
func (p *Pipeline) submit(j *job) {
	r := &j.p.req
	j.sms = SMS{RequestID: r.ID, To: j.p.to, From: j.ev.From, Parts: j.msg.Parts,
		DLR: r.DLR == nil || *r.DLR, Priority: r.Priority}
	if r.ExpiresAt != nil {
		j.sms.ValidUntil = *r.ExpiresAt
	}
	if !p.acquireUnconfirmed(j) {
		return
	}
	sent := p.now()
	err := p.o.SMS[j.conn].Sender.Send(p.hard, &j.sms, func(res []PartResult) { p.smsDone(j, res, sent) })
	if err != nil {
		p.abandon(j, "send cancelled by shutdown", err)
	}
}

// smsDone turns the part results into `submitted` (and tracks the receipts) or `failed`.
func (p *Pipeline) smsDone(j *job, res []PartResult, sent time.Time) {
	now := p.now()
	p.m.observeStage("submit", now.Sub(sent).Seconds())
	if !j.rec.Time.IsZero() && j.held == nil {
		p.m.e2e.Observe(now.Sub(j.rec.Time).Seconds())
	}
	worst := OutcomeOK
	var firstErr error
	ids := make([]string, len(res))
	for i, pr := range res {
		ids[i] = pr.SMSCID
		if pr.Outcome != OutcomeOK && (worst == OutcomeOK || pr.Outcome < worst) {
			worst = pr.Outcome
		}
		if pr.Err != nil && firstErr == nil {
			firstErr = pr.Err
		}
	}
	if len(res) != len(j.msg.Parts) && worst == OutcomeOK {
		worst, firstErr = OutcomeUnknown, fmt.Errorf("dispatch: %d results for %d parts", len(res), len(j.msg.Parts))
	}
	if worst != OutcomeOK {
		ev := j.event(StatusFailed)
		ev.Reason = "submit_" + worst.String()
		if firstErr != nil {
			ev.Detail = firstErr.Error()
		}
		ev.SMSCIDs = nonEmpty(ids)
		if j.pool != "" && p.o.Pools != nil {
			p.o.Pools.Feedback(j.pool, j.ev.From, StatusFailed, now)
		}
		p.emitFinal(j, ev, string(StatusFailed))
		return
	}
	ev := j.event(StatusSubmitted)
	ev.SMSCIDs = ids
	p.m.segments.WithLabelValues(ev.Connection, ev.Encoding).Add(float64(ev.Segments))
	if !j.sms.DLR {
		p.emitFinal(j, ev, string(StatusSubmitted))
		return
	}
	// Two hand-offs before the record is finished: the submitted event is durable, and
	// the submission is tracked. The event is queued first so that a receipt's event
	// can never precede it.
	j.handoffs.Store(2)
	handoff := func() {
		if j.handoffs.Add(-1) == 0 {
			p.finish(j, string(StatusSubmitted))
		}
	}
	ev.TS = now.UTC()
	if !p.em.emit(ev, handoff) {
		p.abandon(j, "event stream closed", nil)
		return
	}
	p.track(j, Submission{RequestID: ev.ID, Connection: ev.Connection, SMSCIDs: ids, Template: ev}, handoff)
}

func nonEmpty(ids []string) []string {
	for _, s := range ids {
		if s != "" {
			return ids
		}
	}
	return nil
}

// normKeyword upper-cases s and drops every space, so " s top " matches STOP.
func normKeyword(s string) string {
	var b strings.Builder
	for _, r := range strings.ToUpper(s) {
		if r == ' ' || r == '\t' || r == '\n' || r == '\r' || r == '\u00a0' {
			continue
		}
		b.WriteRune(r)
	}
	return b.String()
}
