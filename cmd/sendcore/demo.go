package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/sendcore/sendcore/bench"
	"github.com/sendcore/sendcore/bench/harness"
	"github.com/sendcore/sendcore/dispatch"
	"github.com/sendcore/sendcore/gateway"
	"github.com/sendcore/sendcore/gateway/sip/uastest"
	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
	"github.com/sendcore/sendcore/rotation"
	"github.com/sendcore/sendcore/storage"
)

// demoToken is the demo's bootstrap admin token: printed in the curl examples, never
// used outside the demo.
const demoToken = "demo-admin-token-0123456789"

// callBehavior is the SIP endpoint's behaviour for each demo call kind.
func callBehavior(kind string) uastest.Behavior {
	switch kind {
	case bench.CallBusy:
		return uastest.Behavior{Status: 486}
	case bench.CallDecline:
		return uastest.Behavior{Status: 603}
	case bench.CallNoAnswr:
		return uastest.Behavior{RingForever: true}
	}
	return uastest.Behavior{Provisional: 1, HangupAfter: 700 * time.Millisecond}
}

func cmdDemo(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("demo", io)
	keep := fs.Bool("keep", false, "stay up after the campaign until Ctrl-C (explore the control plane)")
	short := fs.Bool("short", false, "shorter waits: scheduled requests 1 s ahead, unanswered calls ring 1 s (tests)")
	timeout := fs.Duration("timeout", 50*time.Second, "give up waiting for outcomes after this long")
	logLevel := fs.String("log-level", "error", "log level of the gateway and peers: debug|info|warn|error")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "sendcore demo: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(*logLevel)); err != nil {
		fmt.Fprintf(io.err, "sendcore demo: --log-level: %q is not debug, info, warn or error\n", *logLevel)
		return exitUsage
	}
	log := slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: lvl}))

	opts := bench.CampaignOptions{RunID: "demo-" + time.Now().UTC().Format("150405"), Now: time.Now()}
	if *short {
		opts.ScheduleIn, opts.RingTimeoutS = time.Second, 1
	}
	camp := bench.DemoCampaign(opts)
	pool := rotation.PoolConfig{Name: camp.Pool, Tenant: "default", Channel: "voice", Strategy: "round_robin", OnExhausted: "fail"}
	for _, n := range camp.PoolNumbers {
		pool.Numbers = append(pool.Numbers, rotation.NumberConfig{Number: n, Weight: 1, MaxPerHour: 60, MaxPerDay: 400})
	}
	calls := map[string]uastest.Behavior{}
	for to, kind := range camp.Calls {
		calls[to] = callBehavior(kind)
	}
	fmt.Fprintln(io.out, "sendcore demo: starting an embedded broker, an SMSC simulator, a SIP endpoint and the gateway on 127.0.0.1 ...")
	stack, err := harness.Start(ctx, harness.Options{
		SMSCOptions: smsctest.Options{Receipts: true, ReceiptDelay: 300 * time.Millisecond, ResponseDelay: 2 * time.Millisecond},
		Calls:       calls, Pools: []rotation.PoolConfig{pool}, Control: true, AdminToken: demoToken, Log: log,
		Prepare: func(db *storage.DB) error {
			for _, n := range camp.OptOuts {
				if err := db.SetOptOut(dispatch.OptOut{Tenant: "default", Channel: dispatch.ChannelAll, Address: n,
					OptedOut: true, Source: "demo", TS: time.Now().UTC()}); err != nil {
					return err
				}
			}
			return nil
		},
		Tune: func(cfg *gateway.Config) error {
			cfg.NodeID, cfg.Log.Level = "demo-1", *logLevel
			return nil
		},
	})
	if err != nil {
		fmt.Fprintln(io.err, "sendcore demo:", err)
		return exitFailure
	}
	defer stack.Close()
	links := bench.Links{Control: stack.ControlURL, Token: demoToken, Brokers: stack.Brokers, Kept: *keep}
	if stack.SMSC != nil {
		links.SMSC = stack.SMSC.Addr()
	}
	if stack.UAS != nil {
		links.SIP = stack.UAS.UDPAddr() + " (udp)"
	}
	fmt.Fprintf(io.out, "ready: kafka %v, control plane %s\n", stack.Brokers, stack.ControlURL)

	tally := bench.NewTally(opts.RunID+"-", true)
	cctx, stopConsume := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() {
		consumed <- bench.Consume(cctx, stack.Brokers, stack.Config.Kafka.EventsTopic, tally.Observe, log)
	}()
	defer func() {
		stopConsume()
		if err := <-consumed; err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(io.err, "sendcore demo: events consumer:", err)
		}
	}()

	fmt.Fprintf(io.out, "producing campaign %q: %d records (%d opted-out recipients, %d calls from pool %s %v)\n",
		camp.Name, len(camp.Items), len(camp.OptOuts), len(camp.Calls), camp.Pool, camp.PoolNumbers)
	start := time.Now()
	if err := produceItems(ctx, stack.Brokers, stack.Config.Kafka.RequestsTopic, camp.Items); err != nil {
		fmt.Fprintln(io.err, "sendcore demo: produce:", err)
		return exitFailure
	}
	want := camp.WantTerminals()
	wctx, cancel := context.WithTimeout(ctx, *timeout)
	pctx, stopProgress := context.WithCancel(wctx)
	progressDone := make(chan struct{})
	go func() {
		defer close(progressDone)
		bench.Progress{W: io.out, TTY: bench.IsTTY(io.out), Label: "demo"}.Run(pctx, func() bench.ProgressSample {
			s := tally.Snapshot()
			return bench.ProgressSample{Produced: int64(len(camp.Items)), Target: int64(want), Done: int64(s.Done) + s.ExtraTerminals,
				Note: fmt.Sprintf("%d segments, %d receipts", s.Segments, s.Receipts)}
		})
	}()
	waitErr := tally.WaitTerminals(wctx, want)
	elapsed := time.Since(start)
	stopProgress()
	<-progressDone
	cancel()
	if ctx.Err() != nil {
		fmt.Fprintln(io.err, "sendcore demo: interrupted")
		return exitFailure
	}
	if waitErr != nil {
		fmt.Fprintf(io.out, "timed out after %v waiting for outcomes\n", *timeout)
	}
	bad := camp.Check(tally)
	if err := camp.WriteSummary(io.out, tally.Snapshot(), elapsed, bad, links); err != nil {
		return exitFailure
	}
	if *keep {
		fmt.Fprintln(io.out, "\n--keep: staying up; Ctrl-C to stop.")
		select {
		case <-ctx.Done():
		case err := <-stack.Done():
			fmt.Fprintln(io.err, "sendcore demo: gateway stopped:", err)
			return exitFailure
		}
	}
	if len(bad) > 0 {
		return exitFailure
	}
	return exitOK
}

// produceItems writes the campaign in order, in one synchronous batch: records of one
// recipient stay in order (the duplicate comes after its original).
func produceItems(ctx context.Context, brokers []string, topic string, items []bench.Item) error {
	w := &kafka.Writer{Addr: kafka.TCP(brokers...), Topic: topic, Balancer: &kafka.Murmur2Balancer{},
		RequiredAcks: kafka.RequireAll, BatchTimeout: 5 * time.Millisecond, BatchSize: len(items) + 1, MaxAttempts: 5}
	msgs := make([]kafka.Message, len(items))
	for i, it := range items {
		msgs[i] = kafka.Message{Key: it.Key, Value: it.Value, Headers: []kafka.Header{{Key: "demo-seq", Value: []byte(strconv.Itoa(i))}}}
	}
	err := w.WriteMessages(ctx, msgs...)
	if cerr := w.Close(); err == nil {
		err = cerr
	}
	return err
}
