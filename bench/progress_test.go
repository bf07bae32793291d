package bench

import (
	"bytes"
	"context"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestBar(t *testing.T) {
	for _, tc := range []struct {
		done, total int64
		want        string
	}{
		{0, 10, "[>         ]"},
		{5, 10, "[=====>    ]"},
		{10, 10, "[==========]"},
		{12, 10, "[==========]"},
		{0, 0, "[          ]"},
	} {
		if got := Bar(tc.done, tc.total, 10); got != tc.want {
			t.Errorf("Bar(%d, %d) = %q, want %q", tc.done, tc.total, got, tc.want)
		}
	}
}

// Not on a terminal, progress is plain lines, ending with one at the end of the run.
func TestProgressPlainLines(t *testing.T) {
	var buf bytes.Buffer
	var n atomic.Int64
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		Progress{W: &buf, Interval: 5 * time.Millisecond, Label: "bench"}.Run(ctx, func() ProgressSample {
			return ProgressSample{Produced: 100, Target: 100, Done: n.Add(10)}
		})
		close(done)
	}()
	deadline := time.Now().Add(5 * time.Second)
	for n.Load() < 30 && time.Now().Before(deadline) {
		time.Sleep(time.Millisecond)
	}
	cancel()
	<-done
	lines := strings.Split(strings.TrimSuffix(buf.String(), "\n"), "\n")
	if len(lines) < 3 || strings.Contains(buf.String(), "\r") || !strings.HasPrefix(lines[0], "bench 10/100 done, 100 produced") {
		t.Fatalf("output:\n%q", buf.String())
	}
}

func TestProgressTTYLine(t *testing.T) {
	l := Progress{TTY: true}.line(ProgressSample{Produced: 50, Done: 25, Note: "x"}, ProgressSample{}, time.Second, time.Second)
	if !strings.HasPrefix(l, "\r\x1b[K[") || !strings.Contains(l, "25/50 done") || !strings.Contains(l, "25/s") || strings.HasSuffix(l, "\n") {
		t.Fatalf("line %q", l)
	}
}
