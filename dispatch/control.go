package dispatch

import (
	"context"
	"fmt"
	"hash/maphash"
	"strconv"
	"sync"
	"time"
)

func lower(s string) string {
	b := []byte(s)
	for i, c := range b {
		if c >= 'A' && c <= 'Z' {
			b[i] = c + 'a' - 'A'
		}
	}
	return string(b)
}

// HandleMO handles a mobile-originated message: a stop keyword (Config.MOKeywords)
// opts the sender out of sms for Config.MOTenant, a start keyword
// (Config.StartKeywords) opts it back in; matching ignores case and spaces. Each change is
// stored, published to the opt-outs topic, and produces an `opted_out`/`opted_in` event
// (doc.go). Other MO messages are ignored. It returns once the opt-out is durable.
func (p *Pipeline) HandleMO(mo MO) error {
	kw := normKeyword(mo.Text)
	var out, match bool
	for _, k := range p.cfg.MOKeywords {
		if normKeyword(k) == kw {
			out, match = true, true
			break
		}
	}
	if !match {
		for _, k := range p.cfg.StartKeywords {
			if normKeyword(k) == kw {
				match = true
				break
			}
		}
	}
	if !match {
		return nil
	}
	addr, err := NormalizeE164(mo.From, "")
	if err != nil {
		p.log.Warn("MO keyword from an address that is not E.164; ignored", "connection", mo.Connection, "err", err)
		return nil
	}
	at := mo.At
	if at.IsZero() {
		at = p.now()
	}
	o := OptOut{Tenant: p.cfg.MOTenant, Channel: ChannelSMS, Address: addr, OptedOut: out, Source: "keyword", TS: at.UTC()}
	if err := p.o.OptOuts.SetOptOut(o); err != nil {
		p.m.storeErrors.WithLabelValues("optout_set").Inc()
		return fmt.Errorf("dispatch: opt-out from MO %s: %w", addr, err)
	}
	if p.o.OptOutBus != nil {
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		err := p.o.OptOutBus.PublishOptOut(ctx, o)
		cancel()
		if err != nil {
			p.log.Error("opt-out not published to the opt-outs topic (kept locally)", "err", err)
		}
	}
	st := StatusOptedIn
	if out {
		st = StatusOptedOut
	}
	p.emitInfo(Event{
		ID:     "mo/" + mo.Connection + "/" + addr + "/" + strconv.FormatInt(at.UnixNano(), 10),
		Tenant: p.cfg.MOTenant, Channel: ChannelSMS, To: mo.To, From: addr, Status: st,
		Node: p.o.Node, Reason: "keyword", Detail: kw, Connection: mo.Connection,
	})
	return nil
}

// CancelCampaign removes tenant's campaign's held requests from the schedule and emits
// `cancelled` for each; it returns how many, once their events are durable. Requests
// already leased by the scheduler (being sent) are not cancelled.
func (p *Pipeline) CancelCampaign(tenant, campaign string) (int, error) {
	if campaign == "" {
		return 0, fmt.Errorf("dispatch: cancel: campaign: must not be empty")
	}
	if tenant == "" {
		tenant = "default"
	}
	items, err := p.o.Schedule.Cancel(tenant, campaign)
	if err != nil {
		return 0, fmt.Errorf("dispatch: cancel %s/%s: %w", tenant, campaign, err)
	}
	var wg sync.WaitGroup
	for _, it := range items {
		j := &job{value: it.Request}
		j.p = parseRequest(it.Request, p.cfg.MaxRequestBytes, p.cfg.SmartEncoding, p.count)
		j.fillTemplate(p.o.Node)
		j.ev.ID, j.ev.Tenant, j.ev.Campaign = it.ID, it.Tenant, it.Campaign
		ev := j.event(StatusCancelled)
		ev.Detail = "campaign cancelled"
		ev.TS = p.now().UTC()
		wg.Add(1)
		if !p.em.emit(ev, wg.Done) {
			wg.Done()
		}
	}
	p.m.requests.WithLabelValues(string(StatusCancelled)).Add(float64(len(items)))
	wg.Wait()
	return len(items), nil
}

// scheduler takes due items from the schedule and re-injects them into the workers. It
// polls every Config.SchedulePoll, and again at once while takes come back full.
func (p *Pipeline) scheduler(ctx context.Context) {
	tick := time.NewTicker(p.cfg.SchedulePoll)
	defer tick.Stop()
	lastDepth := time.Time{}
	for {
		select {
		case <-ctx.Done():
			return
		case <-tick.C:
		}
		now := p.now()
		if now.Sub(lastDepth) >= time.Second {
			if n, err := p.o.Schedule.Len(); err == nil {
				p.m.scheduleDepth.Set(float64(n))
			}
			lastDepth = now
		}
		for ctx.Err() == nil {
			items, err := p.o.Schedule.Take(p.now(), p.cfg.ScheduleBatch, p.cfg.ScheduleLease)
			if err != nil {
				p.m.storeErrors.WithLabelValues("schedule_take").Inc()
				p.log.Error("schedule take failed", "err", err)
				break
			}
			for i := range items {
				it := items[i]
				q := p.queues[maphash.String(p.seed, it.ID)%uint64(len(p.queues))]
				select {
				case q <- &job{held: &it, value: it.Request}:
				case <-ctx.Done():
					return // leased items are offered again after their lease
				}
			}
			if len(items) < p.cfg.ScheduleBatch {
				break
			}
		}
	}
}
