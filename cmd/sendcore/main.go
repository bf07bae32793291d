package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"os"
	"os/signal"
	"runtime"
	"runtime/debug"
	"strings"
	"syscall"

	"github.com/sendcore/sendcore/gateway"
)

// Set by the linker: -ldflags "-X main.version=... -X main.commit=...".
var (
	version = "dev"
	commit  = ""
)

// Exit codes (contract §4).
const (
	exitOK      = 0
	exitFailure = 1
	exitUsage   = 2
)

type command struct {
	name, summary string
	run           func(ctx context.Context, args []string, stdio stdio) int
}

// stdio is where a command reads and writes; tests pass buffers.
type stdio struct {
	in       io.Reader
	out, err io.Writer
	environ  []string
}

func commands() []command {
	return []command{
		{"run", "run the gateway (sendcore run --config FILE)", cmdRun},
		{"demo", "everything embedded on loopback with a sample campaign", cmdDemo},
		{"bench", "load benchmark of the real pipeline", cmdBench},
		{"segment", "SMS segmentation calculator", cmdSegment},
		{"optout", "manage opt-outs: add|remove|check|import|export", cmdOptout},
		{"version", "print version, commit and Go version", cmdVersion},
	}
}

func main() {
	ctx, stop := signalContext()
	code := dispatchCommand(ctx, os.Args[1:], stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, environ: os.Environ()})
	stop()
	os.Exit(code)
}

// signalContext is cancelled by the first SIGINT/SIGTERM; a second one exits at once.
func signalContext() (context.Context, func()) {
	ctx, cancel := context.WithCancel(context.Background())
	ch := make(chan os.Signal, 2)
	signal.Notify(ch, os.Interrupt, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		select {
		case <-ch:
			cancel()
		case <-done:
			return
		}
		select {
		case <-ch:
			fmt.Fprintln(os.Stderr, "sendcore: second signal, exiting now")
			os.Exit(exitFailure)
		case <-done:
		}
	}()
	return ctx, func() { signal.Stop(ch); close(done); cancel() }
}

func dispatchCommand(ctx context.Context, args []string, io stdio) int {
	if len(args) == 0 || args[0] == "-h" || args[0] == "--help" || args[0] == "help" {
		usage(io.out)
		if len(args) == 0 {
			return exitUsage
		}
		return exitOK
	}
	for _, c := range commands() {
		if c.name == args[0] {
			return c.run(ctx, args[1:], io)
		}
	}
	fmt.Fprintf(io.err, "sendcore: unknown command %q\n\n", args[0])
	usage(io.err)
	return exitUsage
}

func usage(w io.Writer) {
	fmt.Fprintln(w, "sendcore — SMS and voice messaging gateway\n\nUsage: sendcore <command> [flags]\n\nCommands:")
	for _, c := range commands() {
		fmt.Fprintf(w, "  %-9s %s\n", c.name, c.summary)
	}
	fmt.Fprintln(w, "\nRun 'sendcore <command> --help' for a command's flags.")
}

// newFlagSet returns a flag set that reports to io.err and does not exit.
func newFlagSet(name string, io stdio) *flag.FlagSet {
	fs := flag.NewFlagSet("sendcore "+name, flag.ContinueOnError)
	fs.SetOutput(io.err)
	return fs
}

// parseFlags parses args; it returns an exit code and false when the command should stop.
func parseFlags(fs *flag.FlagSet, args []string) (int, bool) {
	if err := fs.Parse(args); err != nil {
		if errors.Is(err, flag.ErrHelp) {
			return exitOK, false
		}
		return exitUsage, false
	}
	return exitOK, true
}

// multiFlag collects repeated flags.
type multiFlag []string

func (m *multiFlag) String() string     { return strings.Join(*m, ",") }
func (m *multiFlag) Set(s string) error { *m = append(*m, s); return nil }

// configFlags are the flags every command that loads the configuration shares.
type configFlags struct {
	path      string
	sets      multiFlag
	dataDir   string
	logLevel  string
	logFormat string
}

func (c *configFlags) register(fs *flag.FlagSet) {
	fs.StringVar(&c.path, "config", "", "YAML configuration `file` (contract §5); none: embedded defaults")
	fs.Var(&c.sets, "set", "override one key, e.g. --set smpp.0.window=20 (repeatable; after file and environment)")
	fs.StringVar(&c.dataDir, "data-dir", "", "data directory (overrides data_dir)")
	fs.StringVar(&c.logLevel, "log-level", "", "debug|info|warn|error (overrides log.level)")
	fs.StringVar(&c.logFormat, "log-format", "", "text|json (overrides log.format)")
}

func (c *configFlags) load(io stdio) (gateway.Config, error) {
	sets := append([]string(nil), c.sets...)
	for k, v := range map[string]string{"data_dir": c.dataDir, "log.level": c.logLevel, "log.format": c.logFormat} {
		if v != "" {
			sets = append(sets, k+"="+v)
		}
	}
	return gateway.LoadConfig(c.path, io.environ, sets)
}

// configExit prints a configuration error and returns exit code 2.
func configExit(io stdio, err error) int {
	fmt.Fprintln(io.err, "sendcore:", err)
	return exitUsage
}

func cmdRun(ctx context.Context, args []string, io stdio) int {
	fs := newFlagSet("run", io)
	var cf configFlags
	cf.register(fs)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(io.err, "sendcore run: unexpected argument %q\n", fs.Arg(0))
		return exitUsage
	}
	cfg, err := cf.load(io)
	if err != nil {
		return configExit(io, err)
	}
	log := gateway.NewLogger(cfg.Log, io.err)
	gw, err := gateway.New(cfg, log)
	if err != nil {
		return configExit(io, err)
	}
	if err := gw.Run(ctx); err != nil {
		log.Error("sendcore failed", "err", err)
		return exitFailure
	}
	return exitOK
}

func cmdVersion(_ context.Context, args []string, io stdio) int {
	fs := newFlagSet("version", io)
	if code, ok := parseFlags(fs, args); !ok {
		return code
	}
	c := commit
	if c == "" {
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" {
					c = s.Value
				}
			}
		}
	}
	if c == "" {
		c = "unknown"
	}
	fmt.Fprintf(io.out, "sendcore %s\ncommit %s\n%s %s/%s\n", version, c, runtime.Version(), runtime.GOOS, runtime.GOARCH)
	return exitOK
}
