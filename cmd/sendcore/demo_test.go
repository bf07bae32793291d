package main

import (
	"bytes"
	"context"
	"strings"
	"testing"
	"time"
)

// The demo in short mode runs the whole sample campaign through the real pipeline and
// exits 0 only when every request reached its expected terminal status; its summary has
// every section the issue asks for.
func TestDemoShort(t *testing.T) {
	if testing.Short() {
		t.Skip("starts the whole gateway")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Second)
	defer cancel()
	var out, errb bytes.Buffer
	code := dispatchCommand(ctx, []string{"demo", "--short", "--timeout", "40s"}, stdio{in: strings.NewReader(""), out: &out, err: &errb})
	s := out.String()
	if code != exitOK {
		t.Fatalf("exit %d\nstdout:\n%s\nstderr:\n%s", code, s, errb.String())
	}
	for _, want := range []string{
		"every request reached its expected terminal status",
		"by terminal status", "delivered=", "suppressed=4", "rejected=4", "duplicate=1", "expired=1",
		"segments sent", "receipts", "calls by outcome", "completed=5", "busy=2", "declined=1", "no_answer=1",
		"calls from +358401110001", "calls from +358401110002", "calls from +358401110003",
		"throughput", "/metrics", "Authorization: Bearer " + demoToken, "/v1/messages/demo-",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("summary lacks %q\n%s", want, s)
		}
	}
}

func TestDemoUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"argument", []string{"demo", "extra"}, `unexpected argument "extra"`},
		{"bad log level", []string{"demo", "--log-level", "loud"}, "--log-level"},
		{"unknown flag", []string{"demo", "--nope"}, "nope"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			code, _, stderr := runCmd(t, tc.args...)
			if code != exitUsage || !strings.Contains(stderr, tc.want) {
				t.Fatalf("exit %d, stderr %q; want %d naming %q", code, stderr, exitUsage, tc.want)
			}
		})
	}
}
