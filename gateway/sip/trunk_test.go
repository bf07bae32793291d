package sip_test

import (
	"context"
	"encoding/binary"
	"math"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/sendcore/sendcore/dispatch"
	sipgw "github.com/sendcore/sendcore/gateway/sip"
	"github.com/sendcore/sendcore/gateway/sip/uastest"
)

// writeWAV writes a mono 8 kHz 16-bit PCM tone of d to dir/name.
func writeWAV(t testing.TB, dir, name string, d time.Duration) {
	t.Helper()
	n := int(d / (time.Second / 8000))
	data := make([]byte, 2*n)
	for i := range n {
		v := int16(8000 * math.Sin(2*math.Pi*440*float64(i)/8000))
		binary.LittleEndian.PutUint16(data[2*i:], uint16(v))
	}
	h := make([]byte, 44)
	copy(h[0:], "RIFF")
	binary.LittleEndian.PutUint32(h[4:], uint32(36+len(data)))
	copy(h[8:], "WAVEfmt ")
	binary.LittleEndian.PutUint32(h[16:], 16)
	binary.LittleEndian.PutUint16(h[20:], 1)
	binary.LittleEndian.PutUint16(h[22:], 1)
	binary.LittleEndian.PutUint32(h[24:], 8000)
	binary.LittleEndian.PutUint32(h[28:], 16000)
	binary.LittleEndian.PutUint16(h[32:], 2)
	binary.LittleEndian.PutUint16(h[34:], 16)
	copy(h[36:], "data")
	binary.LittleEndian.PutUint32(h[40:], uint32(len(data)))
	if err := os.WriteFile(filepath.Join(dir, name), append(h, data...), 0o644); err != nil {
		t.Fatal(err)
	}
}

func newUAS(t testing.TB, opts uastest.Options) *uastest.UAS {
	t.Helper()
	u, err := uastest.New(opts)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { u.Close() })
	return u
}

// startTrunk runs a trunk against addr until the test ends; stop stops it early and
// waits for Run to return.
func startTrunk(t testing.TB, transport, addr string, mod func(*sipgw.Config)) (tr *sipgw.Trunk, stop func()) {
	t.Helper()
	cfg := sipgw.DefaultConfig()
	cfg.Name, cfg.Addr, cfg.Transport = "trunk-a", addr, transport
	cfg.Listen = "127.0.0.1:0"
	cfg.CPS = 10000
	cfg.AnswerTimeout = 2 * time.Second
	cfg.PromptDir = t.TempDir()
	writeWAV(t, cfg.PromptDir, "hello.wav", 200*time.Millisecond)
	writeWAV(t, cfg.PromptDir, "long.wav", 10*time.Second)
	if mod != nil {
		mod(&cfg)
	}
	tr, err := sipgw.NewTrunk(cfg, nil, prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- tr.Run(ctx) }()
	var once sync.Once
	stop = func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("Run: %v", err)
				}
			case <-time.After(15 * time.Second):
				t.Errorf("Run did not return")
			}
		})
	}
	t.Cleanup(stop)
	return tr, stop
}

func call(to string) *dispatch.Call {
	return &dispatch.Call{RequestID: "r-" + to, To: to, From: "+358401110001", RingTimeout: 3 * time.Second, MaxDuration: 5 * time.Second}
}

func waitCall(t *testing.T, u *uastest.UAS, user string, cond func(c uastest.Call) bool) uastest.Call {
	t.Helper()
	calls, err := u.WaitFor(5*time.Second, func(calls []uastest.Call) bool {
		for _, c := range calls {
			if c.User == user && cond(c) {
				return true
			}
		}
		return false
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range calls {
		if c.User == user {
			return c
		}
	}
	return uastest.Call{}
}

// Every final response maps to the documented outcome, on UDP and TCP, and every call
// leaves the UAS with a finished dialog.
func TestOutcomes(t *testing.T) {
	type want struct {
		status    dispatch.Status
		reason    string
		code      int
		answered  bool
		retryable bool
	}
	cases := []struct {
		name string
		b    uastest.Behavior
		want want
	}{
		{"answered", uastest.Behavior{AnswerAfter: 20 * time.Millisecond}, want{dispatch.StatusCompleted, "", 200, true, false}},
		{"busy486", uastest.Behavior{Status: 486}, want{dispatch.StatusBusy, "", 486, false, false}},
		{"busy600", uastest.Behavior{Status: 600}, want{dispatch.StatusBusy, "", 600, false, false}},
		{"declined", uastest.Behavior{Status: 603}, want{dispatch.StatusDeclined, "", 603, false, false}},
		{"unavailable", uastest.Behavior{Status: 480}, want{dispatch.StatusNoAnswer, "", 480, false, false}},
		{"timeout408", uastest.Behavior{Status: 408}, want{dispatch.StatusNoAnswer, "", 408, false, false}},
		{"notfound", uastest.Behavior{Status: 404}, want{dispatch.StatusFailed, "invalid_number", 404, false, false}},
		{"incomplete", uastest.Behavior{Status: 484}, want{dispatch.StatusFailed, "invalid_number", 484, false, false}},
		{"unavailable503", uastest.Behavior{Status: 503}, want{dispatch.StatusFailed, "sip_503", 503, false, true}},
		{"server500", uastest.Behavior{Status: 500}, want{dispatch.StatusFailed, "sip_500", 500, false, false}},
		{"ringforever", uastest.Behavior{RingForever: true}, want{dispatch.StatusNoAnswer, "", 487, false, false}},
		{"provisional30", uastest.Behavior{Provisional: 30}, want{dispatch.StatusCompleted, "", 200, true, false}},
	}
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			t.Parallel()
			u := newUAS(t, uastest.Options{})
			addr := u.UDPAddr()
			if transport == "tcp" {
				addr = u.TCPAddr()
			}
			tr, _ := startTrunk(t, transport, addr, nil)
			for _, tc := range cases {
				t.Run(tc.name, func(t *testing.T) {
					t.Parallel()
					to := "+35840" + tc.name
					u.Handle(to, tc.b)
					c := call(to)
					c.RingTimeout = 500 * time.Millisecond
					answers := 0
					r := tr.Call(context.Background(), c, func() { answers++ })
					got := want{r.Status, r.Reason, r.SIPCode, r.Answered, r.Retryable}
					if got != tc.want {
						t.Fatalf("result %+v, want %+v", r, tc.want)
					}
					if r.Trunk != "trunk-a" {
						t.Errorf("Trunk %q", r.Trunk)
					}
					if (answers == 1) != tc.want.answered || answers > 1 {
						t.Errorf("onAnswer called %d times", answers)
					}
					uc := waitCall(t, u, to, func(c uastest.Call) bool {
						return !tc.want.answered || c.ByeRecv
					})
					if tc.want.answered && (!uc.Acked || uc.Index("ACK") > uc.Index("BYE<")) {
						t.Errorf("UAS events %v: want ACK then BYE", uc.Events)
					}
					if tc.name == "ringforever" && !uc.Cancelled {
						t.Errorf("UAS events %v: want CANCEL", uc.Events)
					}
					if !strings.Contains(uc.From, "+358401110001") || !strings.Contains(uc.From, "tag=") {
						t.Errorf("From %q", uc.From)
					}
					if !strings.Contains(uc.PAI, "<sip:+358401110001@") {
						t.Errorf("P-Asserted-Identity %q", uc.PAI)
					}
				})
			}
		})
	}
}
