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
	writeWAV(t, cfg.PromptDir, "three.wav", 3*time.Second)
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

// A 401 challenge is answered with digest credentials and the call goes through; wrong
// credentials end as failed sip_403 without a loop.
func TestDigestAuth(t *testing.T) {
	u := newUAS(t, uastest.Options{Username: "alice", Password: "s3cret"})
	u.SetDefault(uastest.Behavior{Challenge: true})
	for _, tc := range []struct {
		name, password string
		status         dispatch.Status
		code           int
	}{
		{"good", "s3cret", dispatch.StatusCompleted, 200},
		{"bad", "wrong", dispatch.StatusFailed, 403},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tr, _ := startTrunk(t, "udp", u.UDPAddr(), func(c *sipgw.Config) { c.Username, c.Password = "alice", tc.password })
			to := "+35850" + tc.name
			r := tr.Call(context.Background(), call(to), nil)
			if r.Status != tc.status || r.SIPCode != tc.code {
				t.Fatalf("result %+v, want %s %d", r, tc.status, tc.code)
			}
			uc := waitCall(t, u, to, func(c uastest.Call) bool { return c.Final != 0 })
			if uc.Invites != 2 || uc.Index("401") != 1 {
				t.Errorf("UAS events %v, invites %d: want INVITE 401 INVITE …", uc.Events, uc.Invites)
			}
			if tc.code == 200 && !uc.Authorized {
				t.Errorf("call not authorized")
			}
		})
	}
}

// No response at all within answer_timeout fails over (Retryable) without waiting for the
// ring timeout.
func TestNoResponseIsRetryable(t *testing.T) {
	u := newUAS(t, uastest.Options{})
	u.SetDefault(uastest.Behavior{NoResponse: true})
	tr, _ := startTrunk(t, "udp", u.UDPAddr(), func(c *sipgw.Config) { c.AnswerTimeout = 300 * time.Millisecond })
	c := call("+35840silent")
	c.RingTimeout = 10 * time.Second
	start := time.Now()
	r := tr.Call(context.Background(), c, nil)
	if r.Status != dispatch.StatusFailed || r.Reason != "timeout" || !r.Retryable || r.SIPCode != 0 {
		t.Fatalf("result %+v, want failed timeout retryable", r)
	}
	if d := time.Since(start); d > 3*time.Second {
		t.Errorf("took %v, want about answer_timeout", d)
	}
}

// A 200 OK that crosses our CANCEL (ring timeout) is ACKed and then BYEd: the far end
// keeps no ghost call.
func TestAnswerRacingCancelIsHungUp(t *testing.T) {
	u := newUAS(t, uastest.Options{})
	u.SetDefault(uastest.Behavior{AnswerOnCancel: true})
	tr, _ := startTrunk(t, "udp", u.UDPAddr(), nil)
	c := call("+35840race")
	c.RingTimeout = 200 * time.Millisecond
	answered := false
	r := tr.Call(context.Background(), c, func() { answered = true })
	if r.Status != dispatch.StatusNoAnswer || answered {
		t.Fatalf("result %+v (onAnswer %v), want no_answer without onAnswer", r, answered)
	}
	uc := waitCall(t, u, "+35840race", func(c uastest.Call) bool { return c.ByeRecv })
	if uc.Index("200") < 0 || uc.Index("ACK") < uc.Index("200") || uc.Index("BYE<") < uc.Index("ACK") {
		t.Errorf("UAS events %v: want 200, ACK, BYE", uc.Events)
	}
}

// The far end hanging up ends the call early: completed, with the duration until its BYE,
// and we send no BYE of our own.
func TestRemoteHangup(t *testing.T) {
	u := newUAS(t, uastest.Options{})
	u.SetDefault(uastest.Behavior{HangupAfter: 300 * time.Millisecond})
	for _, transport := range []string{"udp", "tcp"} {
		t.Run(transport, func(t *testing.T) {
			addr := u.UDPAddr()
			if transport == "tcp" {
				addr = u.TCPAddr()
			}
			tr, _ := startTrunk(t, transport, addr, nil)
			to := "+35840hangup" + transport
			c := call(to)
			c.Prompt = "long"
			r := tr.Call(context.Background(), c, nil)
			if r.Status != dispatch.StatusCompleted || !r.Answered {
				t.Fatalf("result %+v", r)
			}
			if r.Duration < 250*time.Millisecond || r.Duration > 3*time.Second {
				t.Errorf("Duration %v, want about 300ms", r.Duration)
			}
			uc := waitCall(t, u, to, func(c uastest.Call) bool { return c.ByeSent })
			if uc.ByeRecv {
				t.Errorf("UAS events %v: we sent BYE after theirs", uc.Events)
			}
		})
	}
}

// The prompt is sent as RTP in 20 ms packets, paced in real time, then the call is hung up;
// MaxDuration cuts a long prompt.
func TestPromptRTP(t *testing.T) {
	u := newUAS(t, uastest.Options{})
	tr, _ := startTrunk(t, "udp", u.UDPAddr(), nil)
	c := call("+35840prompt")
	c.Prompt = "hello.wav" // 200 ms: 10 packets
	r := tr.Call(context.Background(), c, nil)
	if r.Status != dispatch.StatusCompleted || r.Duration < 170*time.Millisecond {
		t.Fatalf("result %+v", r)
	}
	uc := waitCall(t, u, "+35840prompt", func(c uastest.Call) bool { return c.ByeRecv && c.RTPPackets == 10 })
	if span := uc.RTPLast.Sub(uc.RTPFirst); span < 150*time.Millisecond || span > 400*time.Millisecond {
		t.Errorf("10 packets over %v, want about 180ms", span)
	}
	if got := tr.Stats(); got.Outcomes["completed"] != 1 || got.Attempts != 1 || got.Active != 0 {
		t.Errorf("Stats %+v", got)
	}

	c = call("+35840cut")
	c.Prompt = "long"
	c.MaxDuration = 300 * time.Millisecond
	r = tr.Call(context.Background(), c, nil)
	if r.Status != dispatch.StatusCompleted || r.Duration > 2*time.Second {
		t.Fatalf("result %+v, want completed after MaxDuration", r)
	}

	c = call("+35840noprompt")
	c.Prompt = "missing"
	if r = tr.Call(context.Background(), c, nil); r.Status != dispatch.StatusFailed || r.Reason != "prompt" {
		t.Fatalf("result %+v, want failed prompt", r)
	}
	if _, ok := u.CallTo("+35840noprompt"); ok {
		t.Errorf("a call with a missing prompt was placed")
	}
}

// Stopping the trunk mid-call hangs up every call cleanly (BYE when answered, CANCEL when
// ringing), each Call still returns its result, and Run returns.
func TestShutdownMidCall(t *testing.T) {
	u := newUAS(t, uastest.Options{})
	u.Handle("+35840talk", uastest.Behavior{})
	u.Handle("+35840ring", uastest.Behavior{RingForever: true})
	tr, stop := startTrunk(t, "udp", u.UDPAddr(), nil)
	results := make(chan dispatch.CallResult, 2)
	talk := call("+35840talk")
	talk.Prompt = "long"
	talk.MaxDuration = time.Minute
	ring := call("+35840ring")
	ring.RingTimeout = time.Minute
	for _, c := range []*dispatch.Call{talk, ring} {
		go func() { results <- tr.Call(context.Background(), c, nil) }()
	}
	if _, err := u.WaitFor(5*time.Second, func(calls []uastest.Call) bool {
		n := 0
		for _, c := range calls {
			if c.RTPPackets > 0 || c.Has("180") {
				n++
			}
		}
		return n == 2
	}); err != nil {
		t.Fatal(err)
	}
	stop()
	got := map[dispatch.Status]dispatch.CallResult{}
	for range 2 {
		select {
		case r := <-results:
			got[r.Status] = r
		case <-time.After(5 * time.Second):
			t.Fatal("Call did not return after shutdown")
		}
	}
	if r, ok := got[dispatch.StatusCompleted]; !ok || !r.Answered {
		t.Errorf("answered call: %+v", got)
	}
	if r, ok := got[dispatch.StatusFailed]; !ok || r.Reason != "shutdown" {
		t.Errorf("ringing call: %+v", got)
	}
	if _, err := u.WaitFor(5*time.Second, func(calls []uastest.Call) bool {
		for _, c := range calls {
			if (c.User == "+35840talk" && !c.ByeRecv) || (c.User == "+35840ring" && !c.Cancelled) {
				return false
			}
		}
		return true
	}); err != nil {
		t.Fatal(err)
	}
	if r := tr.Call(context.Background(), call("+35840late"), nil); r.Status != dispatch.StatusFailed || r.Reason != "shutdown" || !r.Retryable {
		t.Errorf("call after shutdown: %+v", r)
	}
}

// max_calls bounds concurrent calls: a call waits for a slot, and gives up (Retryable, not
// placed) when its ctx ends first.
func TestMaxCalls(t *testing.T) {
	u := newUAS(t, uastest.Options{})
	u.SetDefault(uastest.Behavior{RingForever: true})
	tr, _ := startTrunk(t, "udp", u.UDPAddr(), func(c *sipgw.Config) { c.MaxCalls = 1 })
	first := make(chan dispatch.CallResult, 1)
	c1 := call("+35840one")
	c1.RingTimeout = time.Second
	go func() { first <- tr.Call(context.Background(), c1, nil) }()
	if _, err := u.WaitFor(5*time.Second, func(calls []uastest.Call) bool { return len(calls) == 1 && calls[0].Has("180") }); err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
	defer cancel()
	r := tr.Call(ctx, call("+35840two"), nil)
	if r.Status != dispatch.StatusFailed || !r.Retryable {
		t.Errorf("second call: %+v, want failed retryable", r)
	}
	if _, ok := u.CallTo("+35840two"); ok {
		t.Errorf("second call placed beyond max_calls")
	}
	if r := <-first; r.Status != dispatch.StatusNoAnswer {
		t.Errorf("first call: %+v", r)
	}
}

// cps bounds call attempts per second.
func TestCPSLimit(t *testing.T) {
	u := newUAS(t, uastest.Options{})
	u.SetDefault(uastest.Behavior{Status: 486})
	const cps, n = 50, 40
	tr, _ := startTrunk(t, "udp", u.UDPAddr(), func(c *sipgw.Config) { c.CPS = cps })
	start := time.Now()
	var wg sync.WaitGroup
	for i := range n {
		wg.Go(func() {
			tr.Call(context.Background(), call("+3584000"+string(rune('a'+i%26))+string(rune('a'+i/26))), nil)
		})
	}
	wg.Wait()
	// n attempts with burst 1 need (n-1)/cps seconds at least.
	min := time.Duration(float64(n-1) / cps * float64(time.Second))
	if d := time.Since(start); d < min*95/100 {
		t.Errorf("%d attempts in %v, faster than %d/s", n, d, cps)
	}
	if got := tr.Stats().Attempts; got != n {
		t.Errorf("attempts %d", got)
	}
}
