package main

import (
	"bytes"
	"context"
	"os"
	"strings"
	"testing"
)

// TestMain lets a test re-execute this test binary as the sendcore command: with
// SENDCORE_TEST_MAIN set, the binary runs the command line in SENDCORE_TEST_ARGS
// (space-separated) instead of the tests. Process-level tests (SIGKILL, SIGTERM) use it.
func TestMain(m *testing.M) {
	if os.Getenv("SENDCORE_TEST_MAIN") == "1" {
		ctx, stop := signalContext()
		code := dispatchCommand(ctx, strings.Fields(os.Getenv("SENDCORE_TEST_ARGS")),
			stdio{in: os.Stdin, out: os.Stdout, err: os.Stderr, environ: os.Environ()})
		stop()
		os.Exit(code)
	}
	os.Exit(m.Run())
}

func runCmd(t *testing.T, args ...string) (code int, stdout, stderr string) {
	t.Helper()
	var out, errb bytes.Buffer
	code = dispatchCommand(context.Background(), args, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	return code, out.String(), errb.String()
}

func TestHelpListsSubcommands(t *testing.T) {
	code, out, _ := runCmd(t, "--help")
	if code != exitOK {
		t.Fatalf("--help exit %d", code)
	}
	for _, c := range []string{"run", "demo", "bench", "segment", "optout", "version"} {
		if !strings.Contains(out, "  "+c+" ") {
			t.Errorf("--help does not list %q:\n%s", c, out)
		}
	}
	if code, _, errs := runCmd(t, "frobnicate"); code != exitUsage || !strings.Contains(errs, `unknown command "frobnicate"`) {
		t.Errorf("unknown command: exit %d, %q", code, errs)
	}
}

func TestVersion(t *testing.T) {
	code, out, _ := runCmd(t, "version")
	if code != exitOK || !strings.Contains(out, "sendcore ") || !strings.Contains(out, "go1.") {
		t.Fatalf("version: exit %d\n%s", code, out)
	}
}

// TestRunRefusesBadConfig guarantees exit code 2 and a message naming the key for a
// wrong type, an unknown key and an out-of-range value.
func TestRunRefusesBadConfig(t *testing.T) {
	for _, tt := range []struct{ yaml, want string }{
		{"smpp:\n  - {name: a, addr: 127.0.0.1:1, window: 0}\n", "smpp[0].window: must be 1..1000, got 0"},
		{"kafka:\n  partitions: many\n", "kafka.partitions"},
		{"bogus: 1\n", "bogus"},
	} {
		p := t.TempDir() + "/c.yaml"
		if err := os.WriteFile(p, []byte(tt.yaml), 0o600); err != nil {
			t.Fatal(err)
		}
		code, _, errs := runCmd(t, "run", "--config", p)
		if code != exitUsage || !strings.Contains(errs, tt.want) {
			t.Errorf("%q: exit %d, stderr %q; want 2 naming %q", tt.yaml, code, errs, tt.want)
		}
	}
	if code, _, errs := runCmd(t, "run", "--set", "smpp.0.window=3"); code != exitUsage || !strings.Contains(errs, "smpp") {
		t.Errorf("--set on a missing entry: exit %d, %q", code, errs)
	}
}
