package main

import (
	"bufio"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"math/rand/v2"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	kgo "github.com/segmentio/kafka-go"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/kafka"
	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
)

// child is this test binary re-executed as `sendcore <args>` (see TestMain).
type child struct {
	cmd    *exec.Cmd
	stderr *lockedBuffer
	ready  chan struct{}
	exited chan struct{}
}

type lockedBuffer struct {
	mu sync.Mutex
	b  strings.Builder
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}

func startChild(t *testing.T, env []string, args ...string) *child {
	t.Helper()
	cmd := exec.Command(os.Args[0], "-test.run=^$")
	cmd.Env = append(append(os.Environ(), "SENDCORE_TEST_MAIN=1", "SENDCORE_TEST_ARGS="+strings.Join(args, " ")), env...)
	pr, pw := io.Pipe()
	c := &child{cmd: cmd, stderr: &lockedBuffer{}, ready: make(chan struct{}), exited: make(chan struct{})}
	cmd.Stderr = pw
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	go func() {
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 1<<20), 1<<20)
		once := sync.Once{}
		for sc.Scan() {
			line := sc.Text()
			c.stderr.Write([]byte(line + "\n"))
			if strings.Contains(line, "sendcore ready") {
				once.Do(func() { close(c.ready) })
			}
		}
		_, _ = io.Copy(io.Discard, pr)
	}()
	go func() {
		_ = cmd.Wait()
		pw.Close()
		close(c.exited)
	}()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-c.exited
	})
	return c
}

func (c *child) waitReady(t *testing.T, d time.Duration) {
	t.Helper()
	select {
	case <-c.ready:
	case <-c.exited:
		t.Fatalf("sendcore exited before ready:\n%s", c.stderr.String())
	case <-time.After(d):
		t.Fatalf("sendcore not ready within %v:\n%s", d, c.stderr.String())
	}
}

// TestRunExampleConfigStopsOnSIGTERM guarantees the operator's first experience:
// `sendcore run --config config.example.yaml` starts (its SMSC and SIP peers need not be
// up), logs that it is ready, and stops cleanly within 5 s of SIGTERM with exit code 0.
func TestRunExampleConfigStopsOnSIGTERM(t *testing.T) {
	c := startChild(t, nil, "run", "--config", "../../config.example.yaml", "--data-dir", t.TempDir(),
		"--set", "control.addr=127.0.0.1:0", "--set", "sip.0.listen=127.0.0.1:0")
	c.waitReady(t, 60*time.Second)
	start := time.Now()
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case <-c.exited:
	case <-time.After(5 * time.Second):
		t.Fatalf("not stopped within 5s of SIGTERM:\n%s", c.stderr.String())
	}
	if code := c.cmd.ProcessState.ExitCode(); code != 0 {
		t.Fatalf("exit code %d after SIGTERM:\n%s", code, c.stderr.String())
	}
	if !strings.Contains(c.stderr.String(), "sendcore stopped") {
		t.Fatalf("no clean stop logged:\n%s", c.stderr.String())
	}
	t.Logf("stopped %v after SIGTERM", time.Since(start).Round(time.Millisecond))
}

// TestCrashRecoveryNothingLost guarantees that when the gateway process is killed with
// SIGKILL at random points and restarted, every request still ends in exactly one
// terminal event, and the SMSC saw a request's segments more than once only for submits
// whose outcome was unknown at a kill (bounded by the in-flight window of each kill).
func TestCrashRecoveryNothingLost(t *testing.T) {
	n, kills := 3000, 3
	if testing.Short() {
		n, kills = 600, 2
	}
	if s := os.Getenv("SENDCORE_CRASH_N"); s != "" {
		fmt.Sscan(s, &n)
	}
	const window, binds = 20, 2
	log := slog.New(slog.DiscardHandler)
	kcfg := kafka.DefaultConfig()
	kcfg.Partitions = 4
	broker, err := kafka.StartBroker(kafka.BrokerOptions{Partitions: 4, Topics: kcfg.Topics()}, log)
	if err != nil {
		t.Fatal(err)
	}
	defer broker.Close()
	smsc := smsctest.NewServer(smsctest.Options{Receipts: true, ReceiptDelay: 5 * time.Millisecond})
	defer smsc.Close()

	// dispatch.max_unconfirmed is left at its default: the connection's in-flight window
	// (window × binds, reported through dispatch.InFlightWindower). At most that many
	// sends per kill lack a durable outcome: the duplicate-send bound checked below.
	cfgPath := t.TempDir() + "/crash.yaml"
	dataDir := t.TempDir()
	if d := os.Getenv("SENDCORE_CRASH_LOG"); d != "" {
		dataDir = d + "/data" // kept for inspection
	}
	cfg := fmt.Sprintf(`node_id: crash
data_dir: %s
log: {level: info}
kafka:
  brokers: [%q]
  partitions: 4
smpp:
  - {name: smsc, addr: %q, binds: %d, window: %d, routes: ["*"], default_from: Crash}
control: {addr: ""}
dispatch: {shutdown_grace: 2s}
`, dataDir, broker.Addrs()[0], smsc.Addr(), binds, window)
	if err := os.WriteFile(cfgPath, []byte(cfg), 0o600); err != nil {
		t.Fatal(err)
	}

	// Produce every request up front: the gateway consumes them across kills.
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	w := &kgo.Writer{Addr: kgo.TCP(broker.Addrs()...), Topic: kcfg.RequestsTopic, RequiredAcks: kgo.RequireAll,
		Balancer: &kgo.Murmur2Balancer{}, BatchTimeout: 5 * time.Millisecond, BatchSize: 1000}
	msgs := make([]kgo.Message, n)
	for i := range msgs {
		to := fmt.Sprintf("+35840%07d", i)
		msgs[i] = kgo.Message{Key: []byte(to), Value: fmt.Appendf(nil,
			`{"id":"c-%d","channel":"sms","to":%q,"text":"crash c-%d"}`, i, to, i)}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()

	// Collect events from the start of the events topic. An event published again after a
	// kill (from the outbox) carries the bytes of its first publication, so a consumer
	// drops exact repeats: terminal events count once per distinct (id, status, ts);
	// the repeats are counted apart.
	terminal := map[string][]dispatch.Status{}
	all := map[string][]string{}
	seen := map[string]bool{}
	repeats := 0
	var mu sync.Mutex
	r := kgo.NewReader(kgo.ReaderConfig{Brokers: broker.Addrs(), GroupID: "crash-test", Topic: kcfg.EventsTopic,
		StartOffset: kgo.FirstOffset, MaxWait: 50 * time.Millisecond})
	defer r.Close()
	rctx, rcancel := context.WithCancel(ctx)
	var rwg sync.WaitGroup
	rwg.Add(1)
	go func() {
		defer rwg.Done()
		for {
			m, err := r.ReadMessage(rctx)
			if err != nil {
				return
			}
			var ev dispatch.Event
			if json.Unmarshal(m.Value, &ev) == nil {
				mu.Lock()
				all[ev.ID] = append(all[ev.ID], string(ev.Status)+"/"+ev.Node+"/"+ev.Reason)
				k := ev.ID + "\x00" + string(ev.Status) + "\x00" + ev.TS.Format(time.RFC3339Nano)
				switch {
				case seen[k]:
					repeats++
				case ev.Status.Terminal():
					terminal[ev.ID] = append(terminal[ev.ID], ev.Status)
				}
				seen[k] = true
				mu.Unlock()
			}
		}
	}()
	done := func() int {
		mu.Lock()
		defer mu.Unlock()
		return len(terminal)
	}

	rng := rand.New(rand.NewPCG(uint64(time.Now().UnixNano()), 7))
	for k := 0; k < kills; k++ {
		c := startChild(t, nil, "run", "--config", cfgPath)
		c.waitReady(t, 60*time.Second)
		before := smsc.SubmitCount()
		// Kill once it is mid-run: some submits made, many requests still to go.
		deadline := time.Now().Add(30 * time.Second)
		target := before + 1 + rng.IntN(n/(kills+1))
		for smsc.SubmitCount() < target && time.Now().Before(deadline) && done() < n {
			time.Sleep(2 * time.Millisecond)
		}
		sig := syscall.SIGKILL
		if os.Getenv("SENDCORE_CRASH_QUIT") != "" {
			sig = syscall.SIGQUIT // debugging: the child dumps its goroutines
		}
		if err := c.cmd.Process.Signal(sig); err != nil {
			t.Fatal(err)
		}
		<-c.exited
		t.Logf("kill %d: SMSC at %d submits, %d/%d terminal", k+1, smsc.SubmitCount(), done(), n)
		if dir := os.Getenv("SENDCORE_CRASH_LOG"); dir != "" {
			_ = os.WriteFile(fmt.Sprintf("%s/child-%d.log", dir, k+1), []byte(c.stderr.String()), 0o600)
		}
	}
	c := startChild(t, nil, "run", "--config", cfgPath)
	c.waitReady(t, 60*time.Second)
	deadline := time.Now().Add(5 * time.Minute)
	for done() < n && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := c.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	<-c.exited
	rcancel()
	rwg.Wait()

	mu.Lock()
	defer mu.Unlock()
	if len(terminal) != n {
		missing := []string{}
		for i := 0; i < n && len(missing) < 10; i++ {
			if _, ok := terminal[fmt.Sprintf("c-%d", i)]; !ok {
				missing = append(missing, fmt.Sprintf("c-%d", i))
			}
		}
		for _, id := range missing {
			sent := 0
			for _, s := range smsc.Submits() {
				if string(s.ShortMessage) == "crash "+id {
					sent++
				}
			}
			t.Logf("%s: events %v, sends %d", id, all[id], sent)
		}
		t.Fatalf("%d of %d requests have a terminal event; missing e.g. %v\nlast child log:\n%s", len(terminal), n, missing, tail(c.stderr.String(), 30))
	}
	multi := 0
	for id, sts := range terminal {
		if len(sts) != 1 {
			multi++
			if multi < 5 {
				t.Errorf("%s: %d distinct terminal events %v", id, len(sts), sts)
			}
		}
		if sts[0] != dispatch.StatusDelivered {
			t.Errorf("%s: terminal %s, want delivered", id, sts[0])
		}
	}
	if multi > 0 {
		t.Fatalf("%d requests with more than one terminal event", multi)
	}
	// Sends per request id: the text carries the id.
	sends := map[string]int{}
	for _, s := range smsc.Submits() {
		sends[string(s.ShortMessage)]++
	}
	dup := 0
	for i := 0; i < n; i++ {
		switch c := sends[fmt.Sprintf("crash c-%d", i)]; {
		case c == 0:
			t.Errorf("c-%d never reached the SMSC", i)
		case c > 1:
			dup += c - 1
			if dup <= 5 && os.Getenv("SENDCORE_CRASH_LOG") != "" {
				var subs []string
				for _, s := range smsc.Submits() {
					if string(s.ShortMessage) == fmt.Sprintf("crash c-%d", i) {
						subs = append(subs, fmt.Sprintf("%s/%d/seq%d", s.MessageID, s.Status, s.Seq))
					}
				}
				t.Logf("c-%d: sent %d times %v, events %v", i, c, subs, all[fmt.Sprintf("c-%d", i)])
			}
		}
	}
	bound := kills * window * binds
	t.Logf("%d requests, %d kills: %d duplicate sends (bound: in-flight window %d per kill), %d events re-published identically", n, kills, dup, window*binds, repeats)
	if dup > bound {
		t.Fatalf("%d duplicate sends exceed the in-flight bound %d", dup, bound)
	}
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}
