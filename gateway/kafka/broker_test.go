package kafka

import (
	"context"
	"io"
	"log/slog"
	"testing"
	"time"

	kafkago "github.com/segmentio/kafka-go"
)

// TestEmbeddedBrokerRoundTrip guarantees that the embedded broker is a real Kafka-protocol
// peer for kafka-go: topics exist before any consumer joins, a group consumer receives
// what a RequireAll writer produced, and commits are accepted.
func TestEmbeddedBrokerRoundTrip(t *testing.T) {
	cfg := DefaultConfig()
	b, err := StartBroker(BrokerOptions{Partitions: 4, Topics: cfg.Topics()}, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	w := &kafkago.Writer{Addr: kafkago.TCP(b.Addrs()...), Topic: cfg.RequestsTopic, RequiredAcks: kafkago.RequireAll,
		Balancer: &kafkago.Hash{}, BatchTimeout: 5 * time.Millisecond}
	defer w.Close()
	const n = 200
	msgs := make([]kafkago.Message, n)
	for i := range msgs {
		msgs[i] = kafkago.Message{Key: []byte{byte(i)}, Value: []byte{byte(i), byte(i >> 8)}}
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatalf("produce: %v", err)
	}

	r := kafkago.NewReader(kafkago.ReaderConfig{Brokers: b.Addrs(), GroupID: "t", Topic: cfg.RequestsTopic,
		MaxWait: 50 * time.Millisecond, StartOffset: kafkago.FirstOffset})
	defer r.Close()
	seen := map[int]bool{}
	partitions := map[int]bool{}
	for len(seen) < n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("fetch after %d: %v", len(seen), err)
		}
		v := int(m.Value[0]) | int(m.Value[1])<<8
		if seen[v] {
			t.Fatalf("message %d delivered twice", v)
		}
		seen[v] = true
		partitions[m.Partition] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("commit: %v", err)
		}
	}
	if len(partitions) != 4 {
		t.Fatalf("want messages on 4 partitions, got %v", partitions)
	}
	// Every contract topic was pre-created with the configured partitions.
	conn, err := kafkago.DialContext(ctx, "tcp", b.Addrs()[0])
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	parts, err := conn.ReadPartitions(cfg.Topics()...)
	if err != nil {
		t.Fatal(err)
	}
	per := map[string]int{}
	for _, p := range parts {
		per[p.Topic]++
	}
	for _, topic := range cfg.Topics() {
		if per[topic] != 4 {
			t.Errorf("topic %s has %d partitions, want 4", topic, per[topic])
		}
	}
}

// TestEmbeddedBrokerRetention guarantees that an embedded broker given a retention
// deletes old records a segment at a time (its log is in memory: without this a long run
// grows without bound) and keeps the recent ones. (Close waits for its retention loop.)
func TestEmbeddedBrokerRetention(t *testing.T) {
	b, err := StartBroker(BrokerOptions{Partitions: 1, Topics: []string{"t"}, Retention: time.Second, SegmentBytes: 64 << 10},
		slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	defer b.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	w := &kafkago.Writer{Addr: kafkago.TCP(b.Addrs()...), Topic: "t", RequiredAcks: kafkago.RequireAll, BatchSize: 100, BatchTimeout: time.Millisecond}
	defer w.Close()
	produce := func(n int) {
		t.Helper()
		msgs := make([]kafkago.Message, n)
		for i := range msgs {
			msgs[i] = kafkago.Message{Value: make([]byte, 300)}
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			t.Fatal(err)
		}
	}
	cl := &kafkago.Client{Addr: kafkago.TCP(b.Addrs()...)}
	offsets := func() (first, last int64) {
		t.Helper()
		res, err := cl.ListOffsets(ctx, &kafkago.ListOffsetsRequest{Topics: map[string][]kafkago.OffsetRequest{
			"t": {kafkago.FirstOffsetOf(0), kafkago.LastOffsetOf(0)}}})
		if err != nil {
			t.Fatal(err)
		}
		p := res.Topics["t"][0]
		if p.Error != nil {
			t.Fatal(p.Error)
		}
		return p.FirstOffset, p.LastOffset
	}
	produce(2000) // ~600 KB: several 64 KiB segments
	if first, last := offsets(); first != 0 || last != 2000 {
		t.Fatalf("offsets %d..%d right after producing, want 0..2000", first, last)
	}
	time.Sleep(1100 * time.Millisecond) // older than the retention
	produce(500)
	deadline := time.Now().Add(10 * time.Second)
	for {
		first, last := offsets()
		if last != 2500 {
			t.Fatalf("last offset %d, want 2500", last)
		}
		if first >= 1500 {
			if first > 2000 {
				t.Fatalf("first offset %d: records younger than the retention were deleted", first)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("first offset still %d 10 s after the records aged out", first)
		}
		time.Sleep(100 * time.Millisecond)
	}
}
