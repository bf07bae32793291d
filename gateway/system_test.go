package gateway

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"os"
	"regexp"
	"runtime"
	"strings"
	"sync"
	"testing"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/sip/uastest"
	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
)

const testToken = "system-test-admin-token-0123456789"

// system is one gateway (config built here, the same code as `sendcore run`) with an
// SMSC (smsctest) and a SIP endpoint (uastest) on loopback, and an events collector.
type system struct {
	gw   *Gateway
	smsc *smsctest.Server
	uas  *uastest.UAS
	api  string

	mu     sync.Mutex
	events map[string][]dispatch.Event
}

func startSystem(t *testing.T, extra string) *system {
	t.Helper()
	smsc := smsctest.NewServer(smsctest.Options{Receipts: true, ReceiptDelay: 10 * time.Millisecond})
	t.Cleanup(smsc.Close)
	uas, err := uastest.New(uastest.Options{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { uas.Close() })
	yaml := fmt.Sprintf(`node_id: sys
data_dir: %s
log: {level: warn}
kafka: {partitions: 4}
smpp:
  - {name: smsc-fi, addr: %q, binds: 2, window: 20, routes: ["+358"], default_from: Sendcore}
  - {name: smsc-all, addr: %q, binds: 1, window: 20, routes: ["*"], default_from: Fallback}
  - {name: smsc-tr, addr: %q, binds: 1, window: 20, routes: ["+90"], default_from: Fatura, national_languages: [turkish]}
sip:
  - {name: trunk, addr: %q, transport: udp, listen: "127.0.0.1:0", cps: 200, max_calls: 20, routes: ["*"]}
pools:
  - name: callers
    channel: voice
    strategy: round_robin
    numbers:
      - {number: "+358401110001"}
      - {number: "+358401110002"}
      - {number: "+358401110003"}
control: {addr: "127.0.0.1:0"}
dispatch: {shutdown_grace: 2s}
%s`, t.TempDir(), smsc.Addr(), smsc.Addr(), smsc.Addr(), uas.UDPAddr(), extra)
	path := t.TempDir() + "/c.yaml"
	if err := writeFile(path, yaml); err != nil {
		t.Fatal(err)
	}
	cfg, err := LoadConfig(path, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	gw, err := New(cfg, slog.New(slog.NewTextHandler(io.Discard, nil)),
		WithLookupEnv(func(k string) (string, bool) { return testToken, k == "SENDCORE_ADMIN_TOKEN" }))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- gw.Run(ctx) }()
	t.Cleanup(func() {
		cancel()
		select {
		case err := <-done:
			if err != nil {
				t.Errorf("Run: %v", err)
			}
		case <-time.After(20 * time.Second):
			t.Error("Run did not return within 20s")
		}
	})
	select {
	case <-gw.Ready():
	case err := <-done:
		t.Fatalf("Run: %v", err)
	case <-time.After(30 * time.Second):
		t.Fatal("not ready")
	}
	s := &system{gw: gw, smsc: smsc, uas: uas, api: "http://" + gw.ControlAddr(), events: map[string][]dispatch.Event{}}
	s.collect(t, ctx)
	// Readiness: every connection bound.
	waitFor(t, 20*time.Second, "readyz 200", func() bool {
		code, _ := s.call(t, "GET", "/readyz", "")
		return code == 200
	})
	return s
}

func (s *system) collect(t *testing.T, ctx context.Context) {
	r := kgo.NewReader(kgo.ReaderConfig{Brokers: s.gw.Brokers(), GroupID: "system-test", Topic: s.gw.cfg.Kafka.EventsTopic,
		StartOffset: kgo.FirstOffset, MaxWait: 20 * time.Millisecond})
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			m, err := r.ReadMessage(ctx)
			if err != nil {
				return
			}
			var ev dispatch.Event
			if json.Unmarshal(m.Value, &ev) == nil {
				s.mu.Lock()
				s.events[ev.ID] = append(s.events[ev.ID], ev)
				s.mu.Unlock()
			}
		}
	}()
	t.Cleanup(func() { r.Close(); wg.Wait() })
}

func (s *system) terminal(id string) (dispatch.Event, int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	var last dispatch.Event
	n := 0
	for _, e := range s.events[id] {
		if e.Status.Terminal() {
			last, n = e, n+1
		}
	}
	return last, n
}

func (s *system) call(t *testing.T, method, path, body string) (int, []byte) {
	t.Helper()
	req, err := http.NewRequest(method, s.api+path, strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer "+testToken)
	if body != "" {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, b
}

func waitFor(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %v waiting for %s", d, what)
		}
		time.Sleep(10 * time.Millisecond)
	}
}

// TestSystemSMSAndVoiceThroughTheControlPlane guarantees that the wired gateway carries
// requests enqueued over HTTP to the right peer and outcome: SMS routed by prefix with
// receipts, an opt-out made through the API suppressing, voice calls with caller IDs
// rotated from the pool and SIP outcomes mapped, an invalid request refused at the API,
// a scheduled campaign cancelled, and histories and metrics visible.
func TestSystemSMSAndVoiceThroughTheControlPlane(t *testing.T) {
	s := startSystem(t, "")
	s.uas.Handle("+358402220002", uastest.Behavior{Status: 486})
	s.uas.Handle("+358402220003", uastest.Behavior{Status: 603})
	s.uas.Handle("+358402220001", uastest.Behavior{HangupAfter: 50 * time.Millisecond})

	if code, b := s.call(t, "PUT", "/v1/optouts/default/sms/+358409999999", `{"source":"api"}`); code/100 != 2 {
		t.Fatalf("put opt-out: %d %s", code, b)
	}
	// 100 characters with ş, ğ, ı: 2 segments in UCS-2, 1 with the Turkish shift table.
	const turkish = "Sayın müşterimiz, faturanızın ödeme günü geçmiştir. Lütfen bugün ödeyiniz. Teşekkürler, iyi günler."
	later := time.Now().Add(time.Hour).UTC().Format(time.RFC3339)
	reqs := []string{
		`{"id":"s-fi","channel":"sms","to":"+358401234567","text":"Maksumuistutus: 12,50 € erääntyy 1.12."}`,
		`{"id":"s-se","channel":"sms","to":"+46701234567","text":"Påminnelse: faktura förfaller {snart} 😀"}`,
		`{"id":"s-long","channel":"sms","to":"+358401234568","text":"` + strings.Repeat("Long reminder text. ", 12) + `"}`,
		`{"id":"s-tr","channel":"sms","to":"+905321234567","text":"` + turkish + `"}`,
		`{"id":"s-opt","channel":"sms","to":"+358409999999","text":"you opted out"}`,
		`{"id":"v-ok","channel":"voice","to":"+358402220001","pool":"callers"}`,
		`{"id":"v-busy","channel":"voice","to":"+358402220002","pool":"callers"}`,
		`{"id":"v-decl","channel":"voice","to":"+358402220003","pool":"callers"}`,
		`{"id":"s-later","channel":"sms","to":"+358401234569","text":"later","campaign":"spring","not_before":"` + later + `"}`,
	}
	code, b := s.call(t, "POST", "/v1/messages", "["+strings.Join(reqs, ",")+"]")
	if code != http.StatusAccepted {
		t.Fatalf("enqueue: %d %s", code, b)
	}
	// Invalid input is refused at the API with the field named, and never enqueued.
	code, b = s.call(t, "POST", "/v1/messages", `{"id":"bad","channel":"sms","to":"garbage","text":"x"}`)
	if code != http.StatusBadRequest || !strings.Contains(string(b), "to") {
		t.Fatalf("invalid enqueue: %d %s", code, b)
	}

	want := map[string]dispatch.Status{
		"s-fi": dispatch.StatusDelivered, "s-tr": dispatch.StatusDelivered, "s-se": dispatch.StatusDelivered, "s-long": dispatch.StatusDelivered,
		"s-opt": dispatch.StatusSuppressed, "v-ok": dispatch.StatusCompleted, "v-busy": dispatch.StatusBusy,
		"v-decl": dispatch.StatusDeclined,
	}
	waitFor(t, 60*time.Second, "terminal events", func() bool {
		for id := range want {
			if _, n := s.terminal(id); n == 0 {
				return false
			}
		}
		return true
	})
	waitFor(t, 10*time.Second, "s-later scheduled", func() bool {
		s.mu.Lock()
		defer s.mu.Unlock()
		for _, e := range s.events["s-later"] {
			if e.Status == dispatch.StatusScheduled {
				return true
			}
		}
		return false
	})
	code, b = s.call(t, "POST", "/v1/campaigns/spring/cancel", "")
	if code != 200 || !strings.Contains(string(b), `"cancelled":1`) {
		t.Fatalf("cancel: %d %s", code, b)
	}
	want["s-later"] = dispatch.StatusCancelled
	waitFor(t, 10*time.Second, "s-later cancelled", func() bool { _, n := s.terminal("s-later"); return n > 0 })

	for id, st := range want {
		ev, n := s.terminal(id)
		if n != 1 || ev.Status != st {
			t.Errorf("%s: %d terminal events, last %s (%s %s); want exactly one %s", id, n, ev.Status, ev.Reason, ev.Detail, st)
		}
	}
	// Routing by prefix: +358 to smsc-fi, +46 to the default route.
	if ev, _ := s.terminal("s-fi"); ev.Connection != "smsc-fi" || ev.Segments != 1 || ev.Encoding != "gsm7" {
		t.Errorf("s-fi: connection %q segments %d encoding %q", ev.Connection, ev.Segments, ev.Encoding)
	}
	if ev, _ := s.terminal("s-se"); ev.Connection != "smsc-all" || ev.Encoding != "ucs2" || ev.From != "Fallback" {
		t.Errorf("s-se: connection %q encoding %q from %q", ev.Connection, ev.Encoding, ev.From)
	}
	// The Turkish connection allows its national table, which saves a segment over UCS-2:
	// GSM-7 with the national language single shift IE (0x24, Turkish = 1) in the UDH.
	if ev, _ := s.terminal("s-tr"); ev.Connection != "smsc-tr" || ev.Segments != 1 || ev.Encoding != "gsm7" {
		t.Errorf("s-tr: connection %q segments %d encoding %q", ev.Connection, ev.Segments, ev.Encoding)
	}
	trSubmits := 0
	for _, sub := range s.smsc.Submits() {
		if strings.HasSuffix(sub.Dst, "905321234567") {
			trSubmits++
			if sub.DataCoding != 0 || sub.ESMClass&0x40 == 0 || !bytes.HasPrefix(sub.ShortMessage, []byte{0x03, 0x24, 0x01, 0x01}) {
				t.Errorf("s-tr submit: data_coding %#x esm_class %#x short_message % x", sub.DataCoding, sub.ESMClass, sub.ShortMessage[:8])
			}
		}
	}
	if trSubmits != 1 {
		t.Errorf("s-tr: %d submits, want 1", trSubmits)
	}
	if ev, _ := s.terminal("s-long"); ev.Segments != 2 {
		t.Errorf("s-long: %d segments, want 2", ev.Segments)
	}
	if ev, _ := s.terminal("v-ok"); ev.DurationMS <= 0 {
		t.Errorf("v-ok: duration_ms %d", ev.DurationMS)
	}
	// Caller IDs rotate through the pool (round robin: three calls, three numbers), and
	// the SIP side saw them in From and P-Asserted-Identity.
	callers := map[string]bool{}
	for _, id := range []string{"v-ok", "v-busy", "v-decl"} {
		ev, _ := s.terminal(id)
		callers[ev.From] = true
	}
	if len(callers) != 3 {
		t.Errorf("caller IDs %v: want 3 distinct from the pool", callers)
	}
	for _, c := range s.uas.Calls() {
		if !strings.Contains(c.PAI, "+35840111000") || !strings.Contains(c.From, "+35840111000") {
			t.Errorf("call to %s: From %q PAI %q", c.User, c.From, c.PAI)
		}
	}
	// The SMSC received exactly the expected segments (1 + 1 + 1 + 2) and nothing for the
	// opted-out or the cancelled recipient.
	if n := s.smsc.SubmitCount(); n != 5 {
		t.Errorf("SMSC received %d submits, want 5", n)
	}
	if n := s.smsc.CountByDest("358409999999") + s.smsc.CountByDest("+358409999999"); n != 0 {
		t.Errorf("opted-out recipient got %d submits", n)
	}
	// History and metrics.
	code, b = s.call(t, "GET", "/v1/messages/s-long", "")
	if code != 200 || !bytes.Contains(b, []byte(`"delivered"`)) || !bytes.Contains(b, []byte(`"submitted"`)) {
		t.Errorf("history: %d %s", code, b)
	}
	code, b = s.call(t, "GET", "/metrics", "")
	if code != 200 || !bytes.Contains(b, []byte("sendcore_dispatch_events_total")) || !bytes.Contains(b, []byte("sendcore_smpp_submits_total")) {
		t.Errorf("metrics: %d, %d bytes", code, len(b))
	}
	// Every metric the shipped Grafana dashboard queries is one this gateway exports (a
	// misspelt name is an empty panel that no other test notices).
	dash, err := os.ReadFile("../deploy/grafana/sendcore.json")
	if err != nil {
		t.Fatal(err)
	}
	for _, m := range regexp.MustCompile(`sendcore_[a-z_]+`).FindAllString(string(dash), -1) {
		family := strings.TrimSuffix(strings.TrimSuffix(strings.TrimSuffix(m, "_bucket"), "_sum"), "_count")
		if !bytes.Contains(b, []byte("# TYPE "+family+" ")) {
			t.Errorf("the dashboard queries %s, which /metrics does not export", m)
		}
	}
	code, b = s.call(t, "GET", "/v1/pools/callers", "")
	if code != 200 || !bytes.Contains(b, []byte("+358401110003")) {
		t.Errorf("pool view: %d %s", code, b)
	}
}

// TestRunAppliesProcs guarantees that the `procs` key takes effect for any caller of
// Run (`sendcore run`, bench, demo), not only for those that remember to apply it.
func TestRunAppliesProcs(t *testing.T) {
	if os.Getenv("GOMAXPROCS") != "" {
		t.Skip("GOMAXPROCS in the environment overrides the key")
	}
	defer runtime.GOMAXPROCS(runtime.GOMAXPROCS(0))
	want := runtime.GOMAXPROCS(0) + 1
	startSystem(t, fmt.Sprintf("procs: %d\n", want))
	if got := runtime.GOMAXPROCS(0); got != want {
		t.Fatalf("GOMAXPROCS %d with procs: %d", got, want)
	}
}
