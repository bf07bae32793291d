package control

import (
	"context"
	"encoding/csv"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/rotation"
)

// memOptOuts is a map-backed OptOutStore with the optional GetOptOut.
type memOptOuts struct {
	mu   sync.RWMutex
	m    map[string]dispatch.OptOut
	fail atomic.Pointer[error] // returned by every call when set
}

func newMemOptOuts() *memOptOuts { return &memOptOuts{m: map[string]dispatch.OptOut{}} }

func optKey(t, c, a string) string { return t + "\x00" + c + "\x00" + a }

func (s *memOptOuts) OptedOut(tenant, channel, address string) (bool, error) {
	if e := s.fail.Load(); e != nil {
		return false, *e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if o, ok := s.m[optKey(tenant, channel, address)]; ok && o.OptedOut {
		return true, nil
	}
	o, ok := s.m[optKey(tenant, dispatch.ChannelAll, address)]
	return ok && o.OptedOut, nil
}

func (s *memOptOuts) GetOptOut(tenant, channel, address string) (dispatch.OptOut, bool, error) {
	if e := s.fail.Load(); e != nil {
		return dispatch.OptOut{}, false, *e
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	o, ok := s.m[optKey(tenant, channel, address)]
	return o, ok, nil
}

func (s *memOptOuts) SetOptOut(o dispatch.OptOut) error {
	if e := s.fail.Load(); e != nil {
		return *e
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if o.OptedOut {
		s.m[optKey(o.Tenant, o.Channel, o.Address)] = o
	} else {
		delete(s.m, optKey(o.Tenant, o.Channel, o.Address))
	}
	return nil
}

// importCSV is a minimal importer for the route tests (storage has the real one).
func (s *memOptOuts) importCSV(r io.Reader) (ImportResult, error) {
	var res ImportResult
	cr := csv.NewReader(r)
	cr.FieldsPerRecord = -1
	line := 0
	for {
		rec, err := cr.Read()
		if err == io.EOF {
			return res, nil
		}
		line++
		if err != nil {
			res.Rejected++
			res.Errors = append(res.Errors, ImportError{Line: line, Message: err.Error()})
			continue
		}
		if line == 1 && rec[0] == "tenant" {
			continue
		}
		addr := rec[0]
		if len(rec) >= 3 {
			addr = rec[2]
		}
		a, err := dispatch.NormalizeE164(addr, "")
		if err != nil {
			res.Rejected++
			res.Errors = append(res.Errors, ImportError{Line: line, Message: err.Error()})
			continue
		}
		_ = s.SetOptOut(dispatch.OptOut{Tenant: "default", Channel: "all", Address: a, OptedOut: true, Source: "import"})
		res.Imported++
	}
}

func (s *memOptOuts) exportCSV(w io.Writer) error {
	s.mu.RLock()
	defer s.mu.RUnlock()
	cw := csv.NewWriter(w)
	_ = cw.Write([]string{"tenant", "channel", "address", "source", "ts"})
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	for _, k := range keys {
		o := s.m[k]
		_ = cw.Write([]string{o.Tenant, o.Channel, o.Address, o.Source, o.TS.Format(time.RFC3339)})
	}
	cw.Flush()
	return cw.Error()
}

// memSettings is a map-backed SettingsStore.
type memSettings struct {
	mu sync.Mutex
	m  map[string][]byte
}

func newMemSettings() *memSettings { return &memSettings{m: map[string][]byte{}} }

func (s *memSettings) PutSetting(ns, key string, v []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.m[ns+"/"+key] = append([]byte(nil), v...)
	return nil
}

func (s *memSettings) DeleteSetting(ns, key string) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	delete(s.m, ns+"/"+key)
	return nil
}

func (s *memSettings) ListSettings(ns string, fn func(string, []byte) error) error {
	s.mu.Lock()
	keys := make([]string, 0, len(s.m))
	for k := range s.m {
		if strings.HasPrefix(k, ns+"/") {
			keys = append(keys, k)
		}
	}
	sort.Strings(keys)
	vals := make([][]byte, len(keys))
	for i, k := range keys {
		vals[i] = s.m[k]
	}
	s.mu.Unlock()
	for i, k := range keys {
		if err := fn(strings.TrimPrefix(k, ns+"/"), vals[i]); err != nil {
			return err
		}
	}
	return nil
}

// fakeHistory answers one known id and records every id asked for.
type fakeHistory struct {
	mu    sync.Mutex
	asked []string
}

func (h *fakeHistory) History(id string) ([]dispatch.Event, error) {
	h.mu.Lock()
	h.asked = append(h.asked, id)
	h.mu.Unlock()
	switch id {
	case "req-1":
		return []dispatch.Event{{ID: id, Status: dispatch.StatusAccepted}, {ID: id, Status: dispatch.StatusSubmitted, Segments: 1}}, nil
	case "boom":
		return nil, errors.New("disk on fire")
	case "panic":
		panic("history exploded")
	}
	return nil, nil
}

func (h *fakeHistory) askedIDs() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.asked...)
}

// fakePools keeps configs in a map and shows them as views.
type fakePools struct {
	mu sync.Mutex
	m  map[string]rotation.PoolConfig
}

func (p *fakePools) ListPools() (any, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	out := make([]rotation.PoolConfig, 0, len(p.m))
	for _, c := range p.m {
		out = append(out, c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Name < out[j].Name })
	return out, nil
}

func (p *fakePools) Pool(name string) (any, bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	c, ok := p.m[name]
	return c, ok, nil
}

func (p *fakePools) PutPool(c rotation.PoolConfig) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.m[c.Name] = c
	return nil
}

func (p *fakePools) DeletePool(name string) (bool, error) {
	p.mu.Lock()
	defer p.mu.Unlock()
	_, ok := p.m[name]
	delete(p.m, name)
	return ok, nil
}

// fakeLimits holds a LimitsConfig.
type fakeLimits struct {
	mu sync.Mutex
	c  dispatch.LimitsConfig
}

func (l *fakeLimits) Limits() dispatch.LimitsConfig {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.c
}

func (l *fakeLimits) UpdateLimits(c dispatch.LimitsConfig) error {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.c = c
	return nil
}

// fakeQueue records enqueued records.
type fakeQueue struct {
	mu      sync.Mutex
	records [][]byte
}

func (q *fakeQueue) enqueue(ctx context.Context, records [][]byte) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	q.records = append(q.records, records...)
	return nil
}

func validateChannel(r []byte) error {
	if !strings.Contains(string(r), `"channel"`) {
		return &fieldError{Field: "channel", Msg: "required"}
	}
	return nil
}

func cancelFake(_ context.Context, tenant, campaign string) (int, error) {
	if campaign == "unknown" {
		return 0, fmt.Errorf("%w: no campaign %q", ErrNotFound, campaign)
	}
	return 3, nil
}

func slogDiscard() *slog.Logger { return slog.New(slog.DiscardHandler) }

// quietHistory knows no request.
type quietHistory struct{}

func (quietHistory) History(string) ([]dispatch.Event, error) { return nil, nil }
