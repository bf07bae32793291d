package dispatch

import (
	"context"
	"fmt"
	"time"
)

// Receipt handling. A request with dlr ends in `delivered` or `undelivered` exactly once,
// across crashes, by three rules:
//   - Completion is idempotent: the receipt store reports Complete on every receipt (and
//     on every Track) that finds all parts final, the pipeline then emits the completion
//     event, and the ledger adds only the first terminal event of a request.
//   - A receipt is acknowledged to the SMSC (HandleReceipt returns nil) only once its
//     completion event is durable in the ledger, whose outbox publishes it: a crash
//     before that makes the SMSC redeliver the receipt.
//   - Early receipts (before Track) are kept durably by the receipt store and applied by
//     Track in its own write; a redelivered record whose request was submitted tracks it
//     again (a no-op if tracked), so a crash between submission and tracking loses no
//     receipt either.
// A submission whose receipts do not all arrive within Config.ReceiptTTL ends in
// `undelivered` with reason receipt_timeout (the sweeper).

// ReasonReceiptTimeout is the reason of the `undelivered` event of a submission whose
// receipts did not all arrive within the receipt TTL; `parts` holds what did arrive.
const ReasonReceiptTimeout = "receipt_timeout"

// sweepBatch is the most expired submissions the sweeper handles at once.
const sweepBatch = 1000

// HandleReceipt applies one delivery receipt (gateway/smpp calls it). When its request is
// complete after it (every part final, also when the receipt is a repeat) it emits
// `delivered`, or `undelivered` when any part failed, with every part's state in `parts`,
// feeds the pool's health, and returns only once that event is durable in the ledger
// (whose outbox publishes it). A receipt that matches no tracked submission yet is kept
// by the receipt store for its Track. An error means the receipt or its event was not
// made durable: the SMSC should redeliver it (a repeat is harmless).
func (p *Pipeline) HandleReceipt(r Receipt) error {
	res, err := p.o.Receipts.Apply(r)
	if err != nil {
		p.m.storeErrors.WithLabelValues("receipts_apply").Inc()
		return fmt.Errorf("dispatch: apply receipt %s/%s: %w", r.Connection, r.SMSCID, err)
	}
	if !res.Complete {
		return nil
	}
	if !p.em.emitWait(p.completion(res)) {
		return fmt.Errorf("dispatch: receipt %s/%s: completion event not durable: %w", r.Connection, r.SMSCID, ErrNotRunning)
	}
	return nil
}

// completion builds the delivered/undelivered event of a complete request. Pool health
// and the outcome metric count the first completion (res.Done) only.
func (p *Pipeline) completion(res ReceiptResult) Event {
	ev := res.Template
	ev.Status = StatusDelivered
	ev.Parts = res.Parts
	ev.Reason, ev.Detail = "", ""
	for _, pr := range res.Parts {
		if pr.State != "DELIVRD" {
			ev.Status = StatusUndelivered
			ev.Reason = "receipt_" + lower(pr.State)
			if pr.Err != "" {
				ev.Detail = fmt.Sprintf("part %d: %s err %s", pr.Part, pr.State, pr.Err)
			} else {
				ev.Detail = fmt.Sprintf("part %d: %s", pr.Part, pr.State)
			}
			break
		}
	}
	ev.Node = p.o.Node
	now := p.now()
	ev.TS = now.UTC()
	if res.Done {
		if ev.Pool != "" && p.o.Pools != nil {
			p.o.Pools.Feedback(ev.Pool, ev.From, ev.Status, now)
		}
		p.m.request(string(ev.Status))
	}
	return ev
}

// track tracks a submitted request's receipts (applying early ones). The record's
// hand-off waits for it and, when early receipts completed the request, for the
// completion event too. A failed Track abandons the record: its redelivery tracks again
// (resumeSubmitted).
func (p *Pipeline) track(j *job, sub Submission, handoff func()) {
	res, err := p.o.Receipts.Track(sub, p.cfg.ReceiptTTL)
	if err != nil {
		p.m.storeErrors.WithLabelValues("receipts_track").Inc()
		p.abandon(j, "receipt tracking failed", err)
		return
	}
	if res.Complete {
		j.handoffs.Add(1)
		if !p.em.emit(p.completion(res), handoff) {
			p.abandon(j, "event stream closed", nil)
			return
		}
	}
	handoff()
}

// resumeSubmitted finishes a redelivered record whose request was submitted before (sub
// is its `submitted` event). It tracks the submission again, which is a no-op when it
// was tracked and otherwise applies the receipts that arrived meanwhile, and emits the
// completion when they are all in: a crash between submission, tracking and completion
// loses nothing.
func (p *Pipeline) resumeSubmitted(j *job, sub Event) {
	if len(sub.SMSCIDs) == 0 || (j.p.req.DLR != nil && !*j.p.req.DLR) || sub.Channel == ChannelVoice {
		p.finish(j, "redelivered")
		return
	}
	for _, id := range sub.SMSCIDs {
		if id == "" {
			p.finish(j, "redelivered")
			return
		}
	}
	res, err := p.o.Receipts.Track(Submission{RequestID: sub.ID, Connection: sub.Connection, SMSCIDs: sub.SMSCIDs, Template: sub}, p.cfg.ReceiptTTL)
	if err != nil {
		p.m.storeErrors.WithLabelValues("receipts_track").Inc()
		p.abandon(j, "receipt tracking failed", err)
		return
	}
	if !res.Complete {
		p.finish(j, "redelivered")
		return
	}
	if !p.em.emit(p.completion(res), func() { p.finish(j, "redelivered") }) {
		p.abandon(j, "event stream closed", nil)
	}
}

// sweeper ends the submissions whose receipts did not all arrive within the receipt TTL:
// every Config.ReceiptSweep it takes the expired ones from the receipt store, emits
// `undelivered` (receipt_timeout, with the parts known) for each, and once those are
// durable marks them expired. A crash in between sweeps them again (the ledger keeps one
// terminal event).
func (p *Pipeline) sweeper(ctx context.Context) {
	t := time.NewTicker(p.cfg.ReceiptSweep)
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
		for ctx.Err() == nil {
			subs, err := p.o.Receipts.Expiring(p.now(), sweepBatch)
			if err != nil {
				p.m.storeErrors.WithLabelValues("receipts_expiring").Inc()
				p.log.Error("receipt timeout sweep failed", "err", err)
				break
			}
			if len(subs) == 0 {
				break
			}
			if !p.expire(ctx, subs) {
				return
			}
			if len(subs) < sweepBatch {
				break
			}
		}
	}
}

// expire emits the timeout events of subs, waits until they are durable, and marks the
// submissions expired. It returns false when it could not (shutdown).
func (p *Pipeline) expire(ctx context.Context, subs []ReceiptResult) bool {
	durable := make(chan struct{}, len(subs))
	ids := make([]string, 0, len(subs))
	for _, res := range subs {
		if !p.em.emit(p.timeoutEvent(res), func() { durable <- struct{}{} }) {
			return false
		}
		ids = append(ids, res.RequestID)
	}
	for range ids {
		select {
		case <-durable:
		case <-ctx.Done():
			return false
		case <-p.em.dead:
			return false
		}
	}
	p.m.receiptTimeouts.Add(float64(len(ids)))
	if err := p.o.Receipts.Expired(ids); err != nil {
		p.m.storeErrors.WithLabelValues("receipts_expired").Inc()
		p.log.Error("expired submissions not marked (swept again later; the ledger keeps one terminal event)", "err", err)
	}
	return true
}

// timeoutEvent is the `undelivered` event of a submission whose receipt TTL passed.
func (p *Pipeline) timeoutEvent(res ReceiptResult) Event {
	ev := res.Template
	ev.Status = StatusUndelivered
	ev.Reason = ReasonReceiptTimeout
	ev.Parts = res.Parts
	open := 0
	for _, pr := range res.Parts {
		if pr.State == "" || pr.State == "ACCEPTD" || pr.State == "ENROUTE" {
			open++
		}
	}
	ev.Detail = fmt.Sprintf("%d of %d parts without a final receipt within %v", open, len(res.Parts), p.cfg.ReceiptTTL)
	ev.Node = p.o.Node
	ev.TS = p.now().UTC()
	return ev
}

// defaultUnconfirmed is Config.MaxUnconfirmed for a connection that reports no window.
const defaultUnconfirmed = 256

func newUnconfirmed(max int, s SMSSender) chan struct{} {
	if max == 0 {
		max = defaultUnconfirmed
		if w, ok := s.(InFlightWindower); ok && w.InFlightWindow() > 0 {
			max = w.InFlightWindow()
		}
	}
	if max < 0 {
		return nil
	}
	return make(chan struct{}, max)
}

// acquireUnconfirmed takes one of the connection's unconfirmed-send slots for j, waiting
// while all are taken (sends whose outcome is not durable yet). It returns false when the
// shutdown grace ended first (j is abandoned).
func (p *Pipeline) acquireUnconfirmed(j *job) bool {
	sem := p.unconfirmed[j.conn]
	if sem == nil || j.slot != nil {
		return true
	}
	select {
	case sem <- struct{}{}:
		j.slot = sem
		return true
	case <-p.hard.Done():
		p.abandon(j, "send cancelled by shutdown", p.hard.Err())
		return false
	}
}

// releaseUnconfirmed gives j's slot back; j's outcome is durable (or j was abandoned).
func (p *Pipeline) releaseUnconfirmed(j *job) {
	if j.slot != nil {
		<-j.slot
		j.slot = nil
	}
}
