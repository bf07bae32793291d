package dispatch

import (
	"fmt"
	"sync/atomic"
	"time"
)

// Voice defaults (contract §2 `voice`).
const (
	defaultRingTimeout = 30 * time.Second
	defaultMaxDuration = 120 * time.Second
)

// voice runs route → caller ID → limits, then places the call in its own goroutine,
// bounded by the trunk's MaxCalls; a retryable failure fails over to the next ready
// trunk of the route.
func (p *Pipeline) voice(j *job) {
	j.cands = p.voiceRouter.candidates(j.candBuf[:0], j.p.to)
	if len(j.cands) == 0 {
		ev := j.event(StatusRejected)
		ev.Reason, ev.Detail = ReasonNoRoute, fmt.Sprintf("to: no SIP trunk routes %q", j.p.to)
		p.emitFinal(j, ev, string(StatusRejected))
		return
	}
	c, ok := pickReady(j.cands, func(i int) bool { return p.o.Voice[i].Caller.Ready() })
	if !ok {
		p.hold(j, p.now().Add(p.cfg.RetryDelay), "no_connection")
		return
	}
	j.conn = c
	if !p.pickFrom(j, ChannelVoice, p.o.Voice[c].DefaultFrom) {
		return
	}
	cont := func() { go p.call(j) }
	if !p.reserve(j, 1, cont) {
		return
	}
	cont()
}

// call places the call on j.conn, then on the next ready candidates while the result is
// retryable, and emits the outcome.
func (p *Pipeline) call(j *job) {
	r := &j.p.req
	c := &Call{RequestID: r.ID, To: j.p.to, From: j.ev.From,
		RingTimeout: defaultRingTimeout, MaxDuration: defaultMaxDuration}
	if v := r.Voice; v != nil {
		if v.RingTimeoutS > 0 {
			c.RingTimeout = time.Duration(v.RingTimeoutS) * time.Second
		}
		if v.MaxDurationS > 0 {
			c.MaxDuration = time.Duration(v.MaxDurationS) * time.Second
		}
		c.Prompt = v.Prompt
	}
	order := append(make([]int, 0, len(j.cands)), j.conn)
	for _, conn := range j.cands {
		if conn != j.conn {
			order = append(order, conn)
		}
	}
	tried := 0
	var res CallResult
	for i, conn := range order {
		if i > 0 && !p.o.Voice[conn].Caller.Ready() {
			continue
		}
		j.conn = conn
		slots := p.voiceSlots[conn]
		select {
		case slots <- struct{}{}:
		case <-p.hard.Done():
			p.abandon(j, "call not placed before shutdown", p.hard.Err())
			return
		}
		trunk := p.o.Voice[conn].Caller
		j.ev.Connection = trunk.Name()
		var answered atomic.Bool
		res = trunk.Call(p.hard, c, func() {
			if answered.CompareAndSwap(false, true) {
				p.emitInfo(j.event(StatusAnswered))
			}
		})
		<-slots
		tried++
		if res.Answered || answered.Load() || !res.Retryable {
			break
		}
	}
	if tried == 0 {
		p.hold(j, p.now().Add(p.cfg.RetryDelay), "no_connection")
		return
	}
	ev := j.event(res.Status)
	switch res.Status {
	case StatusCompleted, StatusBusy, StatusNoAnswer, StatusDeclined, StatusFailed:
	default:
		ev.Status, ev.Detail = StatusFailed, fmt.Sprintf("trunk returned status %q", res.Status)
	}
	if ev.Status == StatusFailed && ev.Reason == "" {
		ev.Reason = res.Reason
		if ev.Reason == "" {
			ev.Reason = "call_failed"
		}
	}
	if res.Duration > 0 {
		// Rounded up: an answered call lasted at least 1 ms, and duration_ms (omitted when
		// zero) is part of every completed event.
		ev.DurationMS = int64((res.Duration + time.Millisecond - 1) / time.Millisecond)
	}
	if j.pool != "" && p.o.Pools != nil {
		p.o.Pools.Feedback(j.pool, j.ev.From, ev.Status, p.now())
	}
	p.emitFinal(j, ev, string(ev.Status))
}
