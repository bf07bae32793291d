package bench

import (
	"context"
	"encoding/json"
	"log/slog"
	"strconv"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	gkafka "github.com/sendcore/sendcore/gateway/kafka"
)

const (
	reqTopic = "sendcore.requests"
	evTopic  = "sendcore.events"
)

func startBroker(t *testing.T, partitions int) []string {
	t.Helper()
	b, err := gkafka.StartBroker(gkafka.BrokerOptions{Partitions: partitions, Topics: []string{reqTopic, evTopic}}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(b.Close)
	return b.Addrs()
}

// readAll reads n records of topic from every partition, failing after a deadline.
func readAll(t *testing.T, brokers []string, topic string, partitions, n int) map[int][]kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	out := make(chan kafka.Message, n)
	for p := range partitions {
		go func() {
			r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, Topic: topic, Partition: p, MaxWait: 20 * time.Millisecond})
			defer r.Close()
			for {
				m, err := r.ReadMessage(ctx)
				if err != nil {
					return
				}
				out <- m
			}
		}()
	}
	got := map[int][]kafka.Message{}
	for range n {
		select {
		case m := <-out:
			got[m.Partition] = append(got[m.Partition], m)
		case <-ctx.Done():
			t.Fatalf("read %d of %d records", len(got), n)
		}
	}
	return got
}

// Every request reaches the requests topic once, keyed by recipient: one recipient's
// requests stay on one partition, in order.
func TestGeneratorProducesEveryRequestKeyed(t *testing.T) {
	brokers := startBroker(t, 4)
	const n = 3000
	g, err := NewGenerator(brokers, reqTopic, Traffic{Requests: n, RunID: "gen", Recipients: 50,
		Mix: Mix{UCS2: 0.1, Multipart: 0.1, Voice: 0.1}, VoicePool: "p", DLR: true, Seed: 1}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	st := g.Stats()
	var kinds int64
	for _, v := range st.ByKind {
		kinds += v
	}
	if st.Produced != n || st.Acked != n || st.Failed != 0 || kinds != n || st.End.Before(st.Start) {
		t.Fatalf("stats %+v", st)
	}
	got := readAll(t, brokers, reqTopic, 4, n)
	ids := map[string]bool{}
	partOf := map[string]int{}
	lastN := map[string]int{}
	for p, ms := range got {
		for _, m := range ms {
			var r Request
			if err := json.Unmarshal(m.Value, &r); err != nil {
				t.Fatal(err)
			}
			if string(m.Key) != r.To || ids[r.ID] {
				t.Fatalf("record key %q to %q id %q repeated %v", m.Key, r.To, r.ID, ids[r.ID])
			}
			ids[r.ID] = true
			if q, ok := partOf[r.To]; ok && q != p {
				t.Fatalf("recipient %s on partitions %d and %d", r.To, q, p)
			}
			partOf[r.To] = p
			seq, _ := strconv.Atoi(r.ID[len("gen-"):])
			if prev, ok := lastN[r.To]; ok && seq < prev {
				t.Fatalf("recipient %s: request %d after %d", r.To, seq, prev)
			}
			lastN[r.To] = seq
		}
	}
	if len(ids) != n {
		t.Fatalf("%d distinct ids, want %d", len(ids), n)
	}
}

// At a target rate the generator keeps to the schedule (open loop) and stamps each
// request with its due time.
func TestGeneratorRate(t *testing.T) {
	brokers := startBroker(t, 2)
	const n, rate = 300, 1000.0
	g, err := NewGenerator(brokers, reqTopic, Traffic{Requests: n, Rate: rate, RunID: "rate"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	start := time.Now()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if el := time.Since(start); el < 290*time.Millisecond {
		t.Fatalf("300 requests at 1000/s took %v, want at least 0.29 s", el)
	}
	st := g.Stats()
	got := readAll(t, brokers, reqTopic, 2, n)
	for _, ms := range got {
		for _, m := range ms {
			var r Request
			if err := json.Unmarshal(m.Value, &r); err != nil {
				t.Fatal(err)
			}
			seq, _ := strconv.Atoi(r.ID[len("rate-"):])
			t0, _ := strconv.ParseInt(r.Meta[MetaT0], 10, 64)
			want := st.Start.UnixNano() + int64(float64(seq)/rate*1e9)
			if d := t0 - want; d < -int64(time.Microsecond) || d > int64(time.Microsecond) {
				t.Fatalf("request %d t0 off its due time by %v", seq, time.Duration(d))
			}
		}
	}
}

// A duration run stops producing when the duration is over.
func TestGeneratorDuration(t *testing.T) {
	brokers := startBroker(t, 1)
	g, err := NewGenerator(brokers, reqTopic, Traffic{Duration: 200 * time.Millisecond, Rate: 500, RunID: "dur"}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := g.Run(ctx); err != nil {
		t.Fatal(err)
	}
	if st := g.Stats(); st.Acked < 80 || st.Acked > 110 {
		t.Fatalf("acked %d in 200 ms at 500/s, want about 100", st.Acked)
	}
}

// Consume feeds every event of the events topic to the tally, from the first offset
// (events keyed by id, as the pipeline writes them: one id's events stay in order).
func TestConsume(t *testing.T) {
	brokers := startBroker(t, 3)
	t0 := time.Now()
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: evTopic, Balancer: &kafka.Murmur2Balancer{}, RequiredAcks: kafka.RequireAll, BatchTimeout: time.Millisecond}
	var msgs []kafka.Message
	for i := range 200 {
		for _, st := range []string{"accepted", "submitted", "delivered"} {
			v, _ := json.Marshal(ev("c-"+strconv.Itoa(i), st, t0.Add(5*time.Millisecond), t0, 1))
			msgs = append(msgs, kafka.Message{Key: []byte("c-" + strconv.Itoa(i)), Value: v})
		}
	}
	msgs = append(msgs, kafka.Message{Value: []byte("not json")})
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	w.Close()
	ta := NewTally("c-", true)
	cctx, stop := context.WithCancel(ctx)
	done := make(chan error, 1)
	go func() { done <- Consume(cctx, brokers, evTopic, ta.Observe, slog.New(slog.DiscardHandler)) }()
	if err := ta.WaitDone(ctx, 200); err != nil {
		t.Fatal(err)
	}
	stop()
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	s := ta.Snapshot()
	if s.Outcomes["delivered"] != 200 || s.Segments != 200 || s.Latency.Count != 200 || !near(s.Latency.P99, 5) {
		t.Fatalf("snapshot %+v", s)
	}
}
