package bench

import (
	"context"
	"fmt"
	"io"
	"os"
	"strings"
	"time"

	"golang.org/x/term"
)

// IsTTY reports whether w is a terminal.
func IsTTY(w io.Writer) bool {
	f, ok := w.(*os.File)
	return ok && term.IsTerminal(int(f.Fd()))
}

// ProgressSample is what a progress display shows at one instant.
type ProgressSample struct {
	Produced int64 // requests produced so far
	Target   int64 // requests to produce; 0 when unknown (a duration run)
	Done     int64 // requests done
	Note     string
}

// Progress shows a run's progress on W: a bar redrawn in place on a terminal (TTY), or
// plain lines every Interval (default 1 s) otherwise.
type Progress struct {
	W        io.Writer
	TTY      bool
	Interval time.Duration
	Label    string
}

// Run shows sample() every interval until ctx is done, then shows it once more (ending
// the bar's line) and returns.
func (p Progress) Run(ctx context.Context, sample func() ProgressSample) {
	iv := p.Interval
	if iv <= 0 {
		iv = time.Second
		if p.TTY {
			iv = 200 * time.Millisecond
		}
	}
	start := time.Now()
	t := time.NewTicker(iv)
	defer t.Stop()
	var last ProgressSample
	lastAt := start
	for {
		select {
		case <-ctx.Done():
			s := sample()
			fmt.Fprint(p.W, p.line(s, last, time.Since(start), time.Since(lastAt)))
			if p.TTY {
				fmt.Fprintln(p.W)
			}
			return
		case now := <-t.C:
			s := sample()
			fmt.Fprint(p.W, p.line(s, last, now.Sub(start), now.Sub(lastAt)))
			last, lastAt = s, now
		}
	}
}

// line formats one sample; rate is done requests per second since the previous sample.
func (p Progress) line(s, prev ProgressSample, elapsed, since time.Duration) string {
	rate := 0.0
	if since > 0 {
		rate = float64(s.Done-prev.Done) / since.Seconds()
	}
	total := s.Target
	if total == 0 {
		total = s.Produced
	}
	var b strings.Builder
	if p.TTY {
		b.WriteString("\r\x1b[K")
	}
	if p.Label != "" {
		b.WriteString(p.Label + " ")
	}
	if p.TTY {
		b.WriteString(Bar(s.Done, total, 30) + " ")
	}
	fmt.Fprintf(&b, "%d/%d done, %d produced, %.0f/s, %s", s.Done, total, s.Produced, rate, elapsed.Round(100*time.Millisecond))
	if s.Note != "" {
		b.WriteString(", " + s.Note)
	}
	if !p.TTY {
		b.WriteString("\n")
	}
	return b.String()
}

// Bar draws done/total as a bar of width cells: "[=====>    ]".
func Bar(done, total int64, width int) string {
	filled := 0
	if total > 0 {
		filled = int(min(done, total) * int64(width) / total)
	}
	var b strings.Builder
	b.Grow(width + 2)
	b.WriteByte('[')
	for i := range width {
		switch {
		case i < filled:
			b.WriteByte('=')
		case i == filled && done < total:
			b.WriteByte('>')
		default:
			b.WriteByte(' ')
		}
	}
	b.WriteByte(']')
	return b.String()
}
