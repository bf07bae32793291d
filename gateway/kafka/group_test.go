package kafka_test

import (
	"context"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway/kafka"
)

// member runs one Source of the test group, acknowledging every record at once.
type member struct {
	cancel  context.CancelFunc
	drained chan struct{}
	done    chan error

	mu    sync.Mutex
	seen  map[string]int  // record value -> deliveries
	parts map[string]bool // partitions delivered from
}

func join(t *testing.T, cfg kafka.Config, brokers []string) *member {
	t.Helper()
	client, err := kafka.NewClient(cfg, brokers, "n", slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { client.Close() })
	ctx, cancel := context.WithCancel(context.Background())
	m := &member{cancel: cancel, drained: make(chan struct{}), done: make(chan error, 1), seen: map[string]int{}, parts: map[string]bool{}}
	go func() {
		m.done <- client.Source().Run(ctx, func(r dispatch.Record) {
			m.mu.Lock()
			m.seen[string(r.Value)]++
			m.parts[strings.Split(r.Source, "/")[1]] = true
			m.mu.Unlock()
			r.Ack()
		}, m.drained)
	}()
	return m
}

func (m *member) leave(t *testing.T) {
	t.Helper()
	m.cancel()
	close(m.drained)
	select {
	case err := <-m.done:
		if err != nil {
			t.Fatalf("Run: %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("Run did not return after shutdown")
	}
}

func (m *member) count(values []string) (n int, parts int) {
	m.mu.Lock()
	defer m.mu.Unlock()
	for _, v := range values {
		if m.seen[v] > 0 {
			n++
		}
	}
	return n, len(m.parts)
}

// TestGroupMembersShareAndHandOverPartitions guarantees that the requests consumer is a
// real consumer-group member: a second member takes over part of the partitions, a
// member that leaves hands its partitions over, every record is delivered through the
// changes, and finished offsets are committed (a member joining afterwards is not handed
// the records again).
func TestGroupMembersShareAndHandOverPartitions(t *testing.T) {
	cfg := testConfig()
	broker := startBroker(t, cfg)
	batch := func(from, n int) []string {
		var keys, vals []string
		for i := from; i < from+n; i++ {
			keys = append(keys, fmt.Sprintf("key-%d", i))
			vals = append(vals, fmt.Sprintf("rec-%d", i))
		}
		bs := make([][]byte, len(vals))
		for i, v := range vals {
			bs[i] = []byte(v)
		}
		produce(t, broker.Addrs(), cfg.RequestsTopic, keys, bs)
		return vals
	}
	union := func(values []string, ms ...*member) int {
		n := 0
		for _, v := range values {
			for _, m := range ms {
				if c, _ := m.count([]string{v}); c > 0 {
					n++
					break
				}
			}
		}
		return n
	}

	first := batch(0, 200)
	a := join(t, cfg, broker.Addrs())
	waitUntil(t, 30*time.Second, "the first member reads the first batch", func() bool {
		n, _ := a.count(first)
		return n == len(first)
	})
	b := join(t, cfg, broker.Addrs())
	// The group rebalances at the first member's next heartbeat: produce until the
	// second member is handed records.
	var second []string
	waitUntil(t, 60*time.Second, "the second member is handed partitions", func() bool {
		second = append(second, batch(200+len(second), 20)...)
		nb, _ := b.count(second)
		return nb > 0
	})
	waitUntil(t, 30*time.Second, "the members read every record of the second batch between them", func() bool {
		return union(second, a, b) == len(second)
	})
	if na, _ := a.count(second); na == 0 {
		t.Error("the first member read none of the second batch")
	}
	next := 200 + len(second)
	a.leave(t)
	third := batch(next, 400)
	waitUntil(t, 60*time.Second, "the remaining member reads every partition", func() bool {
		n, parts := b.count(third)
		return n == len(third) && parts == cfg.Partitions
	})
	b.leave(t)

	// Everything was acknowledged and committed: a new member gets nothing old.
	c := join(t, cfg, broker.Addrs())
	fourth := batch(next+400, 50)
	waitUntil(t, 60*time.Second, "a new member reads new records", func() bool {
		n, _ := c.count(fourth)
		return n == len(fourth)
	})
	if n, _ := c.count(append(append(first, second...), third...)); n > 0 {
		t.Errorf("a member joining after commits was handed %d records finished before", n)
	}
	c.leave(t)
}

// TestSourceFetchesFromEveryLeader guarantees that on a cluster of several brokers, where
// the partitions have different leaders, the consumer fetches each broker's partitions
// from it (one fetch loop per leader) and delivers every record.
func TestSourceFetchesFromEveryLeader(t *testing.T) {
	cfg := testConfig()
	cfg.Partitions = 6
	cluster, err := kfake.NewCluster(kfake.NumBrokers(3), kfake.SeedTopics(int32(cfg.Partitions), cfg.Topics()...))
	if err != nil {
		t.Fatal(err)
	}
	defer cluster.Close()
	brokers := cluster.ListenAddrs()
	leaders := map[int32]bool{}
	for p := range int32(cfg.Partitions) {
		leaders[cluster.LeaderFor(cfg.RequestsTopic, p)] = true
	}
	if len(leaders) < 2 {
		t.Fatalf("partitions led by %d brokers; the test needs several", len(leaders))
	}
	var keys, vals []string
	for i := range 300 {
		keys, vals = append(keys, fmt.Sprintf("k-%d", i)), append(vals, fmt.Sprintf("v-%d", i))
	}
	bs := make([][]byte, len(vals))
	for i, v := range vals {
		bs[i] = []byte(v)
	}
	produce(t, brokers, cfg.RequestsTopic, keys, bs)

	m := join(t, cfg, brokers)
	waitUntil(t, 30*time.Second, "every record from every partition", func() bool {
		n, parts := m.count(vals)
		return n == len(vals) && parts == cfg.Partitions
	})
	m.leave(t)
}

// TestSourceStopsAtMaxInFlight guarantees the consumer's back-pressure: with records
// delivered and not acknowledged up to kafka.max_in_flight it delivers no more, and it
// goes on as they are acknowledged.
func TestSourceStopsAtMaxInFlight(t *testing.T) {
	cfg := testConfig()
	cfg.MaxInFlight = 10
	broker := startBroker(t, cfg)
	var keys []string
	var vals [][]byte
	for i := range 100 {
		keys, vals = append(keys, fmt.Sprintf("k-%d", i)), append(vals, []byte(fmt.Sprintf("v-%d", i)))
	}
	produce(t, broker.Addrs(), cfg.RequestsTopic, keys, vals)
	client, err := kafka.NewClient(cfg, broker.Addrs(), "n", slog.New(slog.DiscardHandler), prometheus.NewRegistry())
	if err != nil {
		t.Fatal(err)
	}
	defer client.Close()
	acks := make(chan func(), 200)
	ctx, cancel := context.WithCancel(context.Background())
	drained := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		done <- client.Source().Run(ctx, func(r dispatch.Record) { acks <- r.Ack }, drained)
	}()
	waitUntil(t, 30*time.Second, "max_in_flight records delivered", func() bool { return len(acks) >= cfg.MaxInFlight })
	time.Sleep(300 * time.Millisecond) // several fetch rounds: nothing more may come
	if n := len(acks); n != cfg.MaxInFlight {
		t.Fatalf("%d records delivered unacknowledged, want at most %d", n, cfg.MaxInFlight)
	}
	got := 0
	for got < len(vals) {
		select {
		case ack := <-acks:
			ack()
			got++
		case <-time.After(30 * time.Second):
			t.Fatalf("stalled after %d records acknowledged", got)
		}
	}
	cancel()
	close(drained)
	if err := <-done; err != nil {
		t.Fatalf("Run: %v", err)
	}
}
