package dispatch

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"
	"unicode/utf16"

	"github.com/sendcore/sendcore/segment"
)

// Small in-memory stand-ins for the stores, the source and the connections, used until
// (and besides) the real ones: the pipeline's contract with them is the interfaces.

type memStore struct {
	mu       sync.Mutex
	optouts  map[string]bool
	claims   map[string]Claim
	terminal map[string]Status
	history  map[string][]Event
	outbox   map[uint64]Event
	seq      uint64
	subs     map[string]*memSub // connection/smscid
	byID     map[string]*memSub
	early    map[string]Receipt // connection/smscid
	held     map[string]Scheduled
	leased   map[string]time.Time
	appended atomic.Int64
}

type memSub struct {
	s     Submission
	parts []PartReceipt
	done  bool
	due   time.Time
}

func newMemStore() *memStore {
	return &memStore{optouts: map[string]bool{}, claims: map[string]Claim{}, terminal: map[string]Status{},
		history: map[string][]Event{}, outbox: map[uint64]Event{}, subs: map[string]*memSub{}, byID: map[string]*memSub{},
		early: map[string]Receipt{}, held: map[string]Scheduled{}, leased: map[string]time.Time{}}
}

func (s *memStore) OptedOut(tenant string, ch Channel, addr string) (bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.optouts[tenant+"/"+ch+"/"+addr] || s.optouts[tenant+"/all/"+addr], nil
}

func (s *memStore) SetOptOut(o OptOut) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	k := o.Tenant + "/" + o.Channel + "/" + o.Address
	if o.OptedOut {
		s.optouts[k] = true
	} else {
		delete(s.optouts, k)
	}
	return nil
}

func (s *memStore) Claim(id, source string, at time.Time) (Claim, bool, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.claims[id]; ok {
		c.Terminal = s.terminal[id]
		return c, true, nil
	}
	s.claims[id] = Claim{Source: source, At: at}
	return Claim{}, false, nil
}

func (s *memStore) ClaimAccepted(id, source string, at time.Time, accepted Event) (Claim, bool, uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if c, ok := s.claims[id]; ok {
		c.Terminal = s.terminal[id]
		return c, true, 0, nil
	}
	s.claims[id] = Claim{Source: source, At: at}
	s.seq++
	s.outbox[s.seq] = accepted
	s.history[id] = append(s.history[id], accepted)
	s.appended.Add(1)
	return Claim{}, false, s.seq, nil
}

func (s *memStore) Append(evs []Event) error {
	_, err := s.AppendSeqs(evs)
	return err
}

func (s *memStore) AppendSeqs(evs []Event) ([]uint64, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	seqs := make([]uint64, len(evs))
	for i, e := range evs {
		if e.Status.Terminal() && e.Status != StatusDuplicate {
			if _, ok := s.terminal[e.ID]; ok {
				continue
			}
			s.terminal[e.ID] = e.Status
		}
		s.seq++
		seqs[i] = s.seq
		s.outbox[s.seq] = e
		s.history[e.ID] = append(s.history[e.ID], e)
		s.appended.Add(1)
	}
	return seqs, nil
}

func (s *memStore) History(id string) ([]Event, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]Event(nil), s.history[id]...), nil
}

func (s *memStore) Outbox(after uint64, fn func(uint64, Event) error) error {
	s.mu.Lock()
	var seqs []uint64
	for q := range s.outbox {
		if q > after {
			seqs = append(seqs, q)
		}
	}
	sort.Slice(seqs, func(a, b int) bool { return seqs[a] < seqs[b] })
	evs := make([]Event, len(seqs))
	for i, q := range seqs {
		evs[i] = s.outbox[q]
	}
	s.mu.Unlock()
	for i := range seqs {
		if err := fn(seqs[i], evs[i]); err != nil {
			return err
		}
	}
	return nil
}

func (s *memStore) Published(seqs []uint64) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, q := range seqs {
		delete(s.outbox, q)
	}
	return nil
}

func (s *memStore) terminalOf(id string) Status {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.terminal[id]
}

func (s *memStore) outboxLen() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.outbox)
}

func memFinal(st string) bool { return st != "" && st != "ACCEPTD" && st != "ENROUTE" }

func (ms *memSub) result() ReceiptResult {
	complete := true
	for _, pr := range ms.parts {
		complete = complete && memFinal(pr.State)
	}
	return ReceiptResult{Matched: true, RequestID: ms.s.RequestID, Complete: complete && ms.done,
		Template: ms.s.Template, Parts: append([]PartReceipt(nil), ms.parts...)}
}

func (s *memStore) Track(sub Submission, ttl time.Duration) (ReceiptResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms := s.byID[sub.RequestID]
	if ms == nil || ms.s.Connection != sub.Connection || len(ms.parts) != len(sub.SMSCIDs) || ms.parts[0].SMSCID != sub.SMSCIDs[0] {
		ms = &memSub{s: sub, parts: make([]PartReceipt, len(sub.SMSCIDs)), due: time.Now().Add(ttl)}
		s.byID[sub.RequestID] = ms
		for i, id := range sub.SMSCIDs {
			s.subs[sub.Connection+"/"+id] = ms
			ms.parts[i] = PartReceipt{Part: i + 1, SMSCID: id}
		}
	}
	for i, id := range sub.SMSCIDs {
		if r, ok := s.early[sub.Connection+"/"+id]; ok {
			delete(s.early, sub.Connection+"/"+id)
			if !memFinal(ms.parts[i].State) && !ms.done {
				ms.parts[i].State, ms.parts[i].Err = r.State, r.Err
			}
		}
	}
	done := false
	if !ms.done {
		all := true
		for _, pr := range ms.parts {
			all = all && memFinal(pr.State)
		}
		ms.done, done = all, all
	}
	res := ms.result()
	res.Done = done
	return res, nil
}

func (s *memStore) Apply(r Receipt) (ReceiptResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	ms, ok := s.subs[r.Connection+"/"+r.SMSCID]
	if !ok {
		if memFinal(r.State) {
			s.early[r.Connection+"/"+r.SMSCID] = r
		}
		return ReceiptResult{}, nil
	}
	part := 0
	for i := range ms.parts {
		if ms.parts[i].SMSCID == r.SMSCID {
			part = i + 1
			if !ms.done && !memFinal(ms.parts[i].State) {
				ms.parts[i].State, ms.parts[i].Err = r.State, r.Err
			}
		}
	}
	done := false
	if !ms.done {
		all := true
		for _, pr := range ms.parts {
			all = all && memFinal(pr.State)
		}
		ms.done, done = all, all
	}
	res := ms.result()
	res.Done, res.Part = done, part
	if ms.done {
		res.Complete = true
	}
	return res, nil
}

func (s *memStore) Expiring(now time.Time, max int) ([]ReceiptResult, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []ReceiptResult
	for _, ms := range s.byID {
		if !ms.done && !ms.due.After(now) && len(out) < max {
			out = append(out, ms.result())
		}
	}
	return out, nil
}

func (s *memStore) Expired(ids []string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	for _, id := range ids {
		if ms := s.byID[id]; ms != nil {
			ms.done = true
		}
	}
	return nil
}

func (s *memStore) Hold(it Scheduled) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.held[it.ID] = it
	delete(s.leased, it.ID)
	return nil
}

func (s *memStore) Take(now time.Time, max int, lease time.Duration) ([]Scheduled, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Scheduled
	for id, it := range s.held {
		if it.Due.After(now) {
			continue
		}
		if l, ok := s.leased[id]; ok && l.After(now) {
			continue
		}
		out = append(out, it)
	}
	sort.Slice(out, func(a, b int) bool { return out[a].Due.Before(out[b].Due) })
	if len(out) > max {
		out = out[:max]
	}
	for _, it := range out {
		s.leased[it.ID] = now.Add(lease)
	}
	return out, nil
}

func (s *memStore) Done(id string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.held, id)
	delete(s.leased, id)
	return nil
}

func (s *memStore) Cancel(tenant, campaign string) ([]Scheduled, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []Scheduled
	for id, it := range s.held {
		if _, leased := s.leased[id]; leased || it.Tenant != tenant || it.Campaign != campaign {
			continue
		}
		out = append(out, it)
		delete(s.held, id)
	}
	return out, nil
}

func (s *memStore) Len() (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.held), nil
}

// chanSource delivers records pushed with push; it counts acknowledgements.
type chanSource struct {
	in    chan Record
	acked atomic.Int64
	ackMu sync.Mutex
	acks  map[string]int
}

func newChanSource() *chanSource {
	return &chanSource{in: make(chan Record, 1024), acks: map[string]int{}}
}

func (s *chanSource) push(key, value, source string) {
	s.in <- Record{Key: []byte(key), Value: []byte(value), Source: source, Time: time.Now(), Ack: func() {
		s.ackMu.Lock()
		s.acks[source]++
		s.ackMu.Unlock()
		s.acked.Add(1)
	}}
}

func (s *chanSource) Run(ctx context.Context, deliver func(Record), drained <-chan struct{}) error {
	for {
		select {
		case <-ctx.Done():
			<-drained
			return nil
		case r := <-s.in:
			deliver(r)
		}
	}
}

// fakeSMSC is an SMSSender that answers every part at once with an id and, optionally,
// reports receipts through a callback.
type fakeSMSC struct {
	name    string
	ready   atomic.Bool
	mu      sync.Mutex
	parts   map[string]int // request id -> parts received
	msgs    atomic.Int64
	seq     atomic.Int64
	receipt func(Receipt)
	early   func(Receipt) // receipts sent before the submit is answered
	fail    func(m *SMS) Outcome
}

func newFakeSMSC(name string) *fakeSMSC {
	f := &fakeSMSC{name: name, parts: map[string]int{}}
	f.ready.Store(true)
	return f
}

func (f *fakeSMSC) Name() string           { return f.name }
func (f *fakeSMSC) Ready() bool            { return f.ready.Load() }
func (f *fakeSMSC) Concat() segment.Concat { return segment.ConcatUDH8 }

func (f *fakeSMSC) Send(ctx context.Context, m *SMS, done func([]PartResult)) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	f.mu.Lock()
	f.parts[m.RequestID] += len(m.Parts)
	f.mu.Unlock()
	f.msgs.Add(1)
	res := make([]PartResult, len(m.Parts))
	outcome := OutcomeOK
	if f.fail != nil {
		outcome = f.fail(m)
	}
	var rs []Receipt
	for i := range res {
		if outcome != OutcomeOK {
			res[i] = PartResult{Outcome: outcome, Err: fmt.Errorf("fake %s", outcome)}
			continue
		}
		id := fmt.Sprintf("%s-%d", f.name, f.seq.Add(1))
		res[i] = PartResult{Outcome: OutcomeOK, SMSCID: id}
		rs = append(rs, Receipt{Connection: f.name, SMSCID: id, State: "DELIVRD", At: time.Now()})
	}
	if f.early != nil && m.DLR {
		for _, r := range rs {
			f.early(r)
		}
	}
	go func() {
		done(res)
		if f.receipt != nil && m.DLR {
			for _, r := range rs {
				f.receipt(r)
			}
		}
	}()
	return nil
}

func (f *fakeSMSC) partsOf(id string) int {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.parts[id]
}

// fakeCount and fakeSplit stand in for package segment: GSM-7 when every rune is ASCII
// printable, else UCS-2; 160/153 and 70/67 units per segment; "gsm7" on non-ASCII text is
// an encoding_mismatch.
func fakeCount(text string, opt segment.Options) (segment.Count, error) {
	gsm := true
	for _, r := range text {
		if r < 0x20 || r > 0x7e {
			gsm = false
		}
	}
	enc := segment.GSM7
	units := len(text)
	if !gsm || opt.Encoding == segment.UCS2 {
		if opt.Encoding == segment.GSM7 {
			return segment.Count{}, &segment.Error{Code: "encoding_mismatch", Detail: "not GSM-7"}
		}
		enc, units = segment.UCS2, len(utf16.Encode([]rune(text)))
	}
	one, multi := 160, 153
	if enc == segment.UCS2 {
		one, multi = 70, 67
	}
	n := 1
	if units > one {
		n = (units + multi - 1) / multi
	}
	if n > 255 {
		return segment.Count{}, &segment.Error{Code: "too_long", Detail: fmt.Sprintf("%d segments", n)}
	}
	return segment.Count{Encoding: enc, Segments: n, Units: units}, nil
}

func fakeSplit(m *segment.Message, text string, opt segment.Options, ref uint16) error {
	c, err := fakeCount(text, opt)
	if err != nil {
		return err
	}
	m.Encoding, m.Units, m.Text, m.Segments = c.Encoding, c.Units, text, c.Segments
	m.Parts = m.Parts[:0]
	for i := 1; i <= c.Segments; i++ {
		m.Parts = append(m.Parts, segment.Part{ShortMessage: []byte(strings.Repeat("x", 1)), Seq: i, Total: c.Segments, Ref: ref})
	}
	return nil
}
