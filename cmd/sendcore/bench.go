package main

import (
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"github.com/prometheus/client_golang/prometheus"
	"io"
	"log/slog"
	"os"
	"runtime"
	"runtime/pprof"
	"strconv"
	"strings"
	"time"

	"github.com/sendcore/sendcore/bench"
	"github.com/sendcore/sendcore/bench/harness"
	"github.com/sendcore/sendcore/gateway"
	"github.com/sendcore/sendcore/gateway/sip/uastest"
	"github.com/sendcore/sendcore/gateway/smpp/smsctest"
	"github.com/sendcore/sendcore/rotation"
	"github.com/sendcore/sendcore/storage"
)

// benchFlags are the settings of one bench run (contract §7).
type benchFlags struct {
	requests     int
	duration     time.Duration
	rate         float64
	ucs2         float64
	multipart    float64
	voice        float64
	recipients   int
	optouts      int
	binds        int
	window       int
	partitions   int
	smscLatency  time.Duration
	smscThrottle float64
	receipts     bool
	receiptDelay time.Duration
	kafka        string
	smsc         string
	sip          string
	timeout      time.Duration
	warmup       int
	seed         uint64
	jsonPath     string
	quiet        bool
	logLevel     string
	cpuProfile   string
	memProfile   string
	mutexProfile string
	sets         multiFlag
}

// register defines the flags; a sweep defines binds, window and smsc latency as lists
// itself.
func (f *benchFlags) register(fs *flag.FlagSet, sweep bool) {
	fs.IntVar(&f.requests, "requests", 10000, "requests to produce (0 with --duration: as many as fit)")
	fs.DurationVar(&f.duration, "duration", 0, "produce for this long instead of a fixed count (with --requests 0)")
	fs.Float64Var(&f.rate, "rate", 0, "target requests/s, open loop; 0 = as fast as the broker takes them")
	fs.Float64Var(&f.ucs2, "ucs2", 0.1, "share of UCS-2 messages with emoji (1 segment)")
	fs.Float64Var(&f.multipart, "multipart", 0.1, "share of GSM-7 multi-part messages with extension characters (2 segments)")
	fs.Float64Var(&f.voice, "voice", 0, "share of voice calls (from a rotation pool; answered, 50 ms long)")
	fs.IntVar(&f.recipients, "recipients", 10000, "distinct recipient numbers")
	fs.IntVar(&f.optouts, "optouts", 0, "opt-outs preloaded into the data dir before start (numbers disjoint from the recipients)")
	fs.Var(&f.sets, "set", "override one gateway config key for the run, e.g. --set storage.memtable_bytes=16777216 (repeatable)")
	f.binds, f.window = 1, 10
	if !sweep {
		fs.IntVar(&f.binds, "binds", 1, "SMPP sessions (smpp.binds)")
		fs.IntVar(&f.window, "window", 10, "submit_sm in flight per session (smpp.window)")
		fs.DurationVar(&f.smscLatency, "smsc-latency", 0, "delay of every submit_sm_resp of the embedded SMSC")
	}
	fs.IntVar(&f.partitions, "partitions", 8, "partitions of the embedded broker's topics")
	fs.Float64Var(&f.smscThrottle, "smsc-throttle", 0, "embedded SMSC answers ESME_RTHROTTLED above this many submits/s (0 = never)")
	fs.BoolVar(&f.receipts, "receipts", true, "ask for delivery receipts and wait for them (terminal = delivered); false: done at submitted")
	fs.DurationVar(&f.receiptDelay, "receipt-delay", 0, "delay of the embedded SMSC's receipts")
	fs.StringVar(&f.kafka, "kafka", "", "external Kafka brokers (comma-separated); default: the embedded broker")
	fs.StringVar(&f.smsc, "smsc", "", "external SMSC host:port; default: the embedded SMSC simulator")
	fs.StringVar(&f.sip, "sip", "", "external SIP trunk host:port (UDP); default: the embedded SIP endpoint")
	fs.DurationVar(&f.timeout, "timeout", 2*time.Minute, "how long to wait for outcomes after the last request is produced")
	fs.IntVar(&f.warmup, "warmup", 200, "requests run before the measured ones, not measured (consumer group join, connections)")
	fs.Uint64Var(&f.seed, "seed", 1, "seed of the mix and the recipients")
	fs.StringVar(&f.jsonPath, "json", "", "write the JSON report to `file`")
	fs.BoolVar(&f.quiet, "quiet", false, "no progress output")
	fs.StringVar(&f.logLevel, "log-level", "error", "log level of the gateway and peers: debug|info|warn|error")
	fs.StringVar(&f.cpuProfile, "cpuprofile", "", "write a CPU profile of the measured phase (after warm-up) to `file`")
	fs.StringVar(&f.memProfile, "memprofile", "", "write an allocation profile (alloc_space/alloc_objects of the measured phase) to `file`")
	fs.StringVar(&f.mutexProfile, "mutexprofile", "", "write mutex and block contention profiles of the measured phase to `file` and `file`.block")
}

// settings returns every flag's value, by flag name.
func settings(fs *flag.FlagSet) map[string]string {
	m := map[string]string{}
	fs.VisitAll(func(f *flag.Flag) { m[f.Name] = f.Value.String() })
	return m
}

func cmdBench(ctx context.Context, args []string, io stdio) int {
	if len(args) > 0 && args[0] == "sweep" {
		return cmdBenchSweep(ctx, args[1:], io)
	}
	fs := newFlagSet("bench", io)
	fs.Usage = func() {
		fmt.Fprintln(io.err, "Usage: sendcore bench [flags]\n       sendcore bench sweep [flags]  (sendcore bench sweep --help)\n\nFlags:")
		fs.PrintDefaults()
	}
	var f benchFlags
	f.register(fs, false)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "sendcore bench: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	if err := f.validate(); err != nil {
		fmt.Fprintln(io.err, "sendcore bench:", err)
		return exitUsage
	}
	r, err := runBench(ctx, f, settings(fs), io, "bench")
	if err != nil {
		fmt.Fprintln(io.err, "sendcore bench:", err)
		if errors.Is(err, bench.ErrInvalid) {
			return exitUsage
		}
		return exitFailure
	}
	if err := r.WriteTable(io.out); err != nil {
		return exitFailure
	}
	if f.jsonPath != "" {
		if err := r.WriteJSONFile(f.jsonPath); err != nil {
			fmt.Fprintln(io.err, "sendcore bench:", err)
			return exitFailure
		}
	}
	if bad := r.Check(); len(bad) > 0 {
		fmt.Fprintln(io.err, "sendcore bench: inconsistent run:", strings.Join(bad, "; "))
		return exitFailure
	}
	return exitOK
}

func (f benchFlags) validate() error {
	switch {
	case f.requests < 0:
		return fmt.Errorf("--requests: must be >= 0, got %d", f.requests)
	case f.requests == 0 && f.duration <= 0:
		return errors.New("--requests or --duration: one must be set")
	case f.optouts < 0:
		return fmt.Errorf("--optouts: must be >= 0, got %d", f.optouts)
	case f.binds < 1:
		return fmt.Errorf("--binds: must be >= 1, got %d", f.binds)
	case f.window < 1:
		return fmt.Errorf("--window: must be >= 1, got %d", f.window)
	case f.partitions < 1:
		return fmt.Errorf("--partitions: must be >= 1, got %d", f.partitions)
	case f.warmup < 0:
		return fmt.Errorf("--warmup: must be >= 0, got %d", f.warmup)
	case f.timeout <= 0:
		return fmt.Errorf("--timeout: must be > 0, got %v", f.timeout)
	}
	m := bench.Mix{UCS2: f.ucs2, Multipart: f.multipart, Voice: f.voice}
	if err := m.Validate(); err != nil {
		return fmt.Errorf("--ucs2/--multipart/--voice: %w", err)
	}
	var lvl slog.Level
	if err := lvl.UnmarshalText([]byte(f.logLevel)); err != nil {
		return fmt.Errorf("--log-level: %q is not debug, info, warn or error", f.logLevel)
	}
	for _, s := range f.sets {
		if !strings.Contains(s, "=") {
			return fmt.Errorf("--set: %q is not key=value", s)
		}
	}
	return nil
}

// benchPool is the voice pool of bench runs: caller numbers without caps.
var benchPoolNumbers = []string{"+358401119001", "+358401119002", "+358401119003", "+358401119004"}

func benchPool() rotation.PoolConfig {
	p := rotation.PoolConfig{Name: "bench-callers", Tenant: "default", Channel: "voice", Strategy: "round_robin", OnExhausted: "fail"}
	for _, n := range benchPoolNumbers {
		p.Numbers = append(p.Numbers, rotation.NumberConfig{Number: n, Weight: 1})
	}
	p.Health.Off = true
	return p
}

func splitList(s string) []string {
	var out []string
	for _, p := range strings.Split(s, ",") {
		if p = strings.TrimSpace(p); p != "" {
			out = append(out, p)
		}
	}
	return out
}

// preloadOptOuts imports n opt-outs (OptOutNumber 0..n-1, channel all) in one streamed CSV.
func preloadOptOuts(n int) func(db *storage.DB) error {
	return func(db *storage.DB) error {
		pr, pw := io.Pipe()
		go func() {
			b := make([]byte, 0, 64<<10)
			for i := range n {
				b = append(b, bench.OptOutNumber(i)...)
				b = append(b, '\n')
				if len(b) > 60<<10 {
					if _, err := pw.Write(b); err != nil {
						return
					}
					b = b[:0]
				}
			}
			_, _ = pw.Write(b)
			pw.Close()
		}()
		res, err := db.ImportOptOutsCSV(pr, storage.ImportOptions{Source: "bench"})
		pr.CloseWithError(errors.New("import done"))
		if err != nil {
			return err
		}
		if res.Imported != n {
			return fmt.Errorf("opt-outs: imported %d of %d (%d rejected)", res.Imported, n, res.Rejected)
		}
		return nil
	}
}

// runBench runs one bench: the stack, the events tally, the generator, progress; it
// returns the report once every request is done or the timeout has passed after the
// last one was produced.
func runBench(ctx context.Context, f benchFlags, set map[string]string, io stdio, label string) (bench.Report, error) {
	var lvl slog.Level
	_ = lvl.UnmarshalText([]byte(f.logLevel))
	log := slog.New(slog.NewTextHandler(io.err, &slog.HandlerOptions{Level: lvl}))
	ho := harness.Options{
		Kafka: splitList(f.kafka), Partitions: f.partitions, SMSC: f.smsc, SIP: f.sip,
		SMSCOptions: smsctest.Options{ResponseDelay: f.smscLatency, ThrottleAbove: f.smscThrottle,
			Receipts: f.receipts, ReceiptDelay: f.receiptDelay, DisableRecording: true},
		DefaultCall: uastest.Behavior{HangupAfter: 50 * time.Millisecond},
		Binds:       f.binds, Window: f.window, Pools: []rotation.PoolConfig{benchPool()}, Log: log,
		Tune: func(cfg *gateway.Config) error {
			cfg.Log.Level = f.logLevel
			// The embedded broker keeps its log in the measured process's heap: without a
			// retention a 60 s run at 15k/s grew it by ~1 GB, and GC mark phases of
			// 100–170 ms showed in the gateway's latency. Every reader here is live, so
			// 30 s loses nothing. --set kafka.embedded_retention=0s keeps all.
			cfg.Kafka.EmbeddedRetention = 30 * time.Second
			for _, s := range f.sets {
				if err := cfg.Set(s); err != nil {
					return fmt.Errorf("--set: %w", err)
				}
			}
			return nil
		},
	}
	if f.optouts > 0 {
		ho.Prepare = preloadOptOuts(f.optouts)
	}
	stack, err := harness.Start(ctx, ho)
	if err != nil {
		return bench.Report{}, err
	}
	defer stack.Close()

	runID := "b" + strconv.FormatInt(time.Now().UnixNano(), 36)
	tally := bench.NewTally(runID+"-", f.receipts)
	tally.Expect(max(f.requests, int(f.rate*f.duration.Seconds())))
	warm := bench.NewTally(runID+"w-", f.receipts)
	cctx, stopConsume := context.WithCancel(ctx)
	consumed := make(chan error, 1)
	go func() {
		consumed <- bench.Consume(cctx, stack.Brokers, stack.Config.Kafka.EventsTopic, func(ev bench.Event) {
			tally.Observe(ev)
			warm.Observe(ev)
		}, log)
	}()
	defer func() {
		stopConsume()
		if err := <-consumed; err != nil && !errors.Is(err, context.Canceled) {
			fmt.Fprintln(io.err, "sendcore bench: events consumer:", err)
		}
	}()

	traffic := bench.Traffic{
		Requests: f.requests, Duration: f.duration, Rate: f.rate,
		Mix:        bench.Mix{UCS2: f.ucs2, Multipart: f.multipart, Voice: f.voice},
		Recipients: f.recipients, RunID: runID, Tenant: "default", Campaign: "bench",
		VoicePool: "bench-callers", DLR: f.receipts, Seed: f.seed,
	}
	if f.warmup > 0 { // the pipeline joins its group, connects and warms up: not measured
		wt := traffic
		wt.Requests, wt.Duration, wt.Rate, wt.RunID, wt.Seed = f.warmup, 0, 0, runID+"w", f.seed+1
		wg, err := bench.NewGenerator(stack.Brokers, stack.Config.Kafka.RequestsTopic, wt, log)
		if err != nil {
			return bench.Report{}, err
		}
		if err := wg.Run(ctx); err != nil {
			return bench.Report{}, fmt.Errorf("warm-up: %w", err)
		}
		wctx, cancel := context.WithTimeout(ctx, f.timeout)
		err = warm.WaitDone(wctx, int(wg.Stats().Acked))
		cancel()
		if err != nil {
			return bench.Report{}, fmt.Errorf("warm-up: %d of %d requests done: %w", warm.Snapshot().Done, f.warmup, err)
		}
	}
	gen, err := bench.NewGenerator(stack.Brokers, stack.Config.Kafka.RequestsTopic, traffic, log)
	if err != nil {
		return bench.Report{}, err
	}
	stopProfiles, err := startProfiles(f)
	if err != nil {
		return bench.Report{}, err
	}
	pctx, stopProgress := context.WithCancel(ctx)
	progressDone := make(chan struct{})
	if !f.quiet {
		go func() {
			defer close(progressDone)
			bench.Progress{W: io.err, TTY: bench.IsTTY(io.err), Label: label}.Run(pctx, func() bench.ProgressSample {
				st := gen.Stats()
				s := bench.ProgressSample{Produced: st.Acked, Target: int64(f.requests), Done: int64(tally.Snapshot().Done)}
				if p99, n := tally.RecentP99(); n > 0 {
					s.Note = fmt.Sprintf("p99 %.1f ms", float64(p99)/float64(time.Millisecond))
				}
				return s
			})
		}()
	} else {
		close(progressDone)
	}
	before := bench.SampleUsage()
	stagesBefore := bench.SampleStages(stackMetrics(stack))
	genErr := gen.Run(ctx)
	var waitErr error
	if genErr == nil {
		wctx, cancel := context.WithTimeout(ctx, f.timeout)
		waitErr = tally.WaitDone(wctx, int(gen.Stats().Acked))
		cancel()
	}
	after := bench.SampleUsage()
	stagesAfter := bench.SampleStages(stackMetrics(stack))
	if err := stopProfiles(); err != nil {
		fmt.Fprintln(io.err, "sendcore bench: profile:", err)
	}
	stopProgress()
	<-progressDone
	if genErr != nil {
		return bench.Report{}, genErr
	}
	r := bench.BuildReport(gen.Stats(), tally.Snapshot(), before, after, set)
	r.Stages = bench.Stages(stagesBefore, stagesAfter)
	if waitErr != nil && ctx.Err() != nil {
		return r, ctx.Err()
	}
	select {
	case err := <-stack.Done():
		return r, fmt.Errorf("gateway stopped during the run: %v", err)
	default:
	}
	return r, nil
}

func cmdBenchSweep(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("bench sweep", io)
	var f benchFlags
	f.register(fs, true)
	windows := fs.String("windows", "1,10,50,100", "windows to try (comma-separated)")
	bindsList := fs.String("binds", "1,2", "binds to try (comma-separated)")
	latencies := fs.String("smsc-latencies", "0,5ms", "SMSC response latencies to try (comma-separated durations)")
	svgPath := fs.String("svg", "", "write the chart (throughput and p99 against window) to `file` (SVG)")
	fs.Lookup("requests").DefValue = "5000"
	_ = fs.Set("requests", "5000")
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "sendcore bench sweep: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	ws, err1 := parseInts(*windows)
	bs, err2 := parseInts(*bindsList)
	ls, err3 := parseDurations(*latencies)
	for _, e := range []struct {
		flag string
		err  error
	}{{"--windows", err1}, {"--binds", err2}, {"--smsc-latencies", err3}} {
		if e.err != nil {
			fmt.Fprintf(io.err, "sendcore bench sweep: %s: %v\n", e.flag, e.err)
			return exitUsage
		}
	}
	if err := f.validate(); err != nil {
		fmt.Fprintln(io.err, "sendcore bench sweep:", err)
		return exitUsage
	}
	cells := bench.Grid(ws, bs, ls)
	for i := range cells {
		c := &cells[i]
		cf := f
		cf.window, cf.binds, cf.smscLatency = c.Window, c.Binds, c.SMSCLatency
		set := settings(fs)
		set["window"], set["binds"], set["smsc-latency"] = strconv.Itoa(c.Window), strconv.Itoa(c.Binds), c.SMSCLatency.String()
		label := fmt.Sprintf("[%d/%d binds %d window %d smsc %v]", i+1, len(cells), c.Binds, c.Window, c.SMSCLatency)
		r, err := runBench(ctx, cf, set, io, label)
		if err != nil {
			fmt.Fprintln(io.err, "sendcore bench sweep:", label, err)
			return exitFailure
		}
		c.Report = r
	}
	if err := bench.WriteSweepTable(io.out, cells); err != nil {
		return exitFailure
	}
	if err := writeSweepFiles(*svgPath, f.jsonPath, cells); err != nil {
		fmt.Fprintln(io.err, "sendcore bench sweep:", err)
		return exitFailure
	}
	return exitOK
}

// writeSweepFiles writes the chart to svgPath and the cells as JSON to jsonPath (each
// when not empty).
func writeSweepFiles(svgPath, jsonPath string, cells []bench.Cell) error {
	if svgPath != "" {
		if err := writeFile(svgPath, func(w io.Writer) error { return bench.WriteSweepSVG(w, cells) }); err != nil {
			return err
		}
	}
	if jsonPath != "" {
		return writeFile(jsonPath, func(w io.Writer) error {
			enc := json.NewEncoder(w)
			enc.SetIndent("", "  ")
			return enc.Encode(cells)
		})
	}
	return nil
}

func parseInts(s string) ([]int, error) {
	var out []int
	for _, p := range splitList(s) {
		n, err := strconv.Atoi(p)
		if err != nil || n < 1 {
			return nil, fmt.Errorf("%q is not a positive integer", p)
		}
		out = append(out, n)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func parseDurations(s string) ([]time.Duration, error) {
	var out []time.Duration
	for _, p := range splitList(s) {
		if p == "0" {
			out = append(out, 0)
			continue
		}
		d, err := time.ParseDuration(p)
		if err != nil || d < 0 {
			return nil, fmt.Errorf("%q is not a duration", p)
		}
		out = append(out, d)
	}
	if len(out) == 0 {
		return nil, errors.New("empty list")
	}
	return out, nil
}

func writeFile(path string, write func(io.Writer) error) error {
	fh, err := os.Create(path)
	if err != nil {
		return err
	}
	if err := write(fh); err != nil {
		fh.Close()
		return fmt.Errorf("%s: %w", path, err)
	}
	return fh.Close()
}

// startProfiles starts the profiles f asks for and returns the function that stops them
// and writes the files. The allocation profile counts from the call on: the rate is set
// to every 512 KiB (the runtime default) and the counters are read as a delta.
func startProfiles(f benchFlags) (func() error, error) {
	var stops []func() error
	if f.cpuProfile != "" {
		fh, err := os.Create(f.cpuProfile)
		if err != nil {
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		if err := pprof.StartCPUProfile(fh); err != nil {
			fh.Close()
			return nil, fmt.Errorf("--cpuprofile: %w", err)
		}
		stops = append(stops, func() error { pprof.StopCPUProfile(); return fh.Close() })
	}
	if f.memProfile != "" {
		runtime.GC()
		var before runtime.MemStats
		runtime.ReadMemStats(&before)
		stops = append(stops, func() error {
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			fmt.Fprintf(os.Stderr, "sendcore bench: measured phase: %d mallocs, %d bytes allocated, %d GCs\n",
				after.Mallocs-before.Mallocs, after.TotalAlloc-before.TotalAlloc, after.NumGC-before.NumGC)
			return writeFile(f.memProfile, func(w io.Writer) error { return pprof.Lookup("allocs").WriteTo(w, 0) })
		})
	}
	if f.mutexProfile != "" {
		runtime.SetMutexProfileFraction(10)
		runtime.SetBlockProfileRate(int(100 * time.Microsecond))
		stops = append(stops, func() error {
			runtime.SetMutexProfileFraction(0)
			runtime.SetBlockProfileRate(0)
			if err := writeFile(f.mutexProfile, func(w io.Writer) error { return pprof.Lookup("mutex").WriteTo(w, 0) }); err != nil {
				return err
			}
			return writeFile(f.mutexProfile+".block", func(w io.Writer) error { return pprof.Lookup("block").WriteTo(w, 0) })
		})
	}
	return func() error {
		var errs []error
		for _, s := range stops {
			errs = append(errs, s())
		}
		return errors.Join(errs...)
	}, nil
}

// stackMetrics is the gateway's metrics registry (nil without a gateway).
func stackMetrics(s *harness.Stack) prometheus.Gatherer {
	if s.Gateway == nil {
		return nil
	}
	return s.Gateway.Registry()
}
